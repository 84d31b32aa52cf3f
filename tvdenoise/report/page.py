"""The self-contained HTML page of a report: summary table, convergence plots, pictures."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .pictures import ImagePictures
from .records import RECORD_FIELDS, ImageRecord, RunReport, iso_time, plain_value, totals

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-top: 1px solid #ccc; padding-top: 0.8em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 5px; text-align: left; }
.scroll { overflow-x: auto; }
#summary { font-size: 13px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.sortable th { cursor: pointer; background: #f3f3f3; user-select: none; }
table.sortable th[data-dir=asc]::after { content: " \\25B2"; }
table.sortable th[data-dir=desc]::after { content: " \\25BC"; }
tr.failed td { background: #fde8e8; }
tr.skipped td { background: #f4f4f4; color: #777; }
.meta { color: #555; }
code { background: #f3f3f3; padding: 0 3px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #555; max-width: 260px; }
img.crop { image-rendering: pixelated; }
table.params td, table.params th { font-size: 12px; padding: 1px 5px; }
"""

# Sorts the summary table by the clicked column: numbers (data-value) numerically, before
# text; a second click reverses.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var dir = th.dataset.dir === "asc" ? "desc" : "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var key = function (row) {
        var cell = row.cells[column];
        var text = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
        var number = parseFloat(text);
        return isNaN(number) ? [1, text.toLowerCase()] : [0, number];
      };
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
        return dir === "asc" ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}g}"
    return str(value)


def _cell(value: Any, digits: int = 4) -> str:
    text = html.escape(_fmt(value, digits))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value if math.isfinite(value) else (1e308 if value > 0 else -1e308)
        return f'<td class="num" data-value="{number!r}">{text}</td>'
    return f"<td>{text}</td>"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "status"),
    ("size", "size"),
    ("weight", "weight"),
    ("solver", "solver"),
    ("iterations", "iterations"),
    ("gap", "gap"),
    ("converged", "converged"),
    ("seconds", "seconds"),
)
_METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("psnr_in", "PSNR in"),
    ("psnr_out", "PSNR out"),
    ("ssim_in", "SSIM in"),
    ("ssim_out", "SSIM out"),
)


def _summary_table(records: Sequence[ImageRecord], with_metrics: bool) -> str:
    columns = _SUMMARY_COLUMNS + (_METRIC_COLUMNS if with_metrics else ())
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in (("", "#"), ("", "image")))
    head += "".join(f'<th data-key="{key}">{html.escape(title)}</th>' for key, title in columns)
    rows = []
    for index, record in enumerate(records, 1):
        cells = [_cell(index), f'<td><a href="#image-{index}">{html.escape(record.name)}</a></td>']
        for key, _ in columns:
            if key == "size":
                size = (
                    f"{record.width}x{record.height}x{record.channels}"
                    if record.width is not None
                    else ""
                )
                pixels = (record.width or 0) * (record.height or 0)
                cells.append(f'<td class="num" data-value="{pixels}">{size}</td>')
            else:
                cells.append(_cell(getattr(record, key)))
        rows.append(f'<tr class="{html.escape(record.status)}">{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table class="sortable" id="summary"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _decade_ticks(low: float, high: float) -> list[int]:
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    if last - first < 1:
        last = first + 1
    step = max(1, math.ceil((last - first) / 6))
    return (
        list(range(first, last + 1, step))
        if (last - first) % step == 0
        else [
            *range(first, last, step),
            last,
        ]
    )


def _linear_ticks(low: float, high: float) -> list[float]:
    """About four round ticks (multiples of 1, 2 or 5 times a power of ten) in [low, high].

    >>> _linear_ticks(10, 150)
    [50.0, 100.0, 150.0]
    """
    if high <= low:
        return [low]
    raw = (high - low) / 4
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) // step) + 1)]


def _thin(points: list[tuple[float, float]], most: int = 80) -> list[tuple[float, float]]:
    if len(points) <= most:
        return points
    step = len(points) / most
    kept = [points[int(i * step)] for i in range(most)]
    return [*kept, points[-1]] if kept[-1] != points[-1] else kept


def history_svg(history: Sequence[tuple[int, float, float | None]]) -> str:
    """A log-scale plot of the relative gap and the relative energy excess per iteration.

    The energy is shown as ``(E - E_min) / |E_min|``, ``E_min`` the lowest energy recorded:
    the energy itself changes by a fraction of a percent once the image is smooth, invisible
    on any axis, while its excess falls over decades like the gap (the point where the excess
    is 0 is left out). The gap is the solver's relative primal-dual gap (or its bound), the
    accuracy certificate it stops on.
    """
    width, height = 340, 190
    left, right, top, bottom = 48, 10, 10, 34
    iterations = [float(h[0]) for h in history]
    energies = [h[1] for h in history if math.isfinite(h[1])]
    series: list[tuple[str, str, list[tuple[float, float]]]] = []
    if energies:
        lowest = min(energies)
        scale = abs(lowest) if lowest != 0 else 1.0
        excess = [
            (float(h[0]), (h[1] - lowest) / scale)
            for h in history
            if math.isfinite(h[1]) and h[1] - lowest > 0
        ]
        series.append(("(E \u2212 E_min) / E_min", "#d62728", excess))
    gaps = [(float(h[0]), h[2]) for h in history if h[2] is not None and h[2] > 0]
    series.append(("relative gap", "#1f77b4", [(x, float(y)) for x, y in gaps]))
    values = [y for _, _, points in series for _, y in points if math.isfinite(y)]
    out = [
        f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" font-family="sans-serif" font-size="10">',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" '
        f'height="{height - top - bottom}" fill="none" stroke="#999"/>',
    ]
    if not values or not iterations:
        out.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no history</text></svg>'
        )
        return "".join(out)
    ticks = _decade_ticks(min(values), max(values))
    y_low, y_high = ticks[0], ticks[-1]
    x_low, x_high = min(iterations), max(iterations)
    x_span = (x_high - x_low) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x_low) / x_span * plot_w

    def py(y: float) -> float:
        return top + (y_high - math.log10(y)) / (y_high - y_low) * plot_h

    for tick in ticks:
        y = py(10.0**tick)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">1e{tick}</text>'
        )
    for x in _linear_ticks(x_low, x_high):
        out.append(
            f'<text x="{px(x):.1f}" y="{height - bottom + 12}" text-anchor="middle">{x:.0f}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">iteration</text>'
    )
    legend_y = top + 12
    for label, colour, points in series:
        points = _thin([(x, y) for x, y in points if math.isfinite(y)])
        if not points:
            continue
        coordinates = " ".join(f"{px(x):.0f},{py(y):.0f}" for x, y in points)
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coordinates}"/>'
        )
        out.append(
            f'<line x1="{width - right - 120}" x2="{width - right - 104}" y1="{legend_y - 3}" '
            f'y2="{legend_y - 3}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{width - right - 100}" y="{legend_y}">{html.escape(label)}</text>'
        )
        legend_y += 13
    out.append("</svg>")
    return "".join(out)


_PARAMETER_FIELDS = (
    "input", "output", "status", "error", "width", "height", "channels", "dtype", "bit_depth",
    "alpha", "weight", "weight_auto", "sigma", "beta", "tv", "tgv_ratio", "color", "fidelity",
    "device",
)  # fmt: skip


def _params_table(record: ImageRecord, names: Iterable[str]) -> str:
    rows = []
    for name in names:
        value = getattr(record, name)
        if value is None:
            continue
        rows.append(f"<tr><th>{name}</th>{_cell(value, 6)}</tr>")
    return f'<table class="params">{"".join(rows)}</table>'


def _params_tables(record: ImageRecord) -> str:
    """Two tables side by side: the image and its parameters; the solve and its quality."""
    rest = [n for n in RECORD_FIELDS if n not in _PARAMETER_FIELDS and n != "history"]
    return _params_table(record, _PARAMETER_FIELDS) + _params_table(record, rest)


def _figure(png: bytes, caption: str, size: tuple[int, int], css: str = "") -> str:
    width, height = size
    return (
        f'<figure><img src="{_data_uri(png)}" width="{width}" height="{height}" '
        f'alt="{html.escape(caption)}"{css}><figcaption>{html.escape(caption)}</figcaption>'
        "</figure>"
    )


def _thumbnails_html(pictures: ImagePictures) -> str:
    size = pictures.thumbnail_size
    residual = (
        "residual input \u2212 output (grey = 0, white / black = "
        f"\u00b1{pictures.residual_scale:.3g})"
    )
    return "".join(
        [
            _figure(pictures.input_png, "input", size),
            _figure(pictures.output_png, "output", size),
            _figure(pictures.residual_png, residual, size),
        ]
    )


def _crops_html(pictures: ImagePictures) -> str:
    top, left, crop_h, crop_w = pictures.crop
    zoom = (2 * crop_w, 2 * crop_h)
    where = f"rows {top}-{top + crop_h - 1}, columns {left}-{left + crop_w - 1}"
    crop = ' class="crop"'
    return _figure(
        pictures.crop_input_png,
        f"input, 1:1 crop of the most textured region ({where}), shown 2x",
        zoom,
        crop,
    ) + _figure(pictures.crop_output_png, "output, same crop, shown 2x", zoom, crop)


#: Recorded evaluations below which no convergence plot is drawn.
MIN_PLOT_POINTS = 3


def _without_path(error: str, path: str) -> str:
    """A failure's message without its leading path, where the page names the file already."""
    prefix = f"{path}: "
    return error[len(prefix) :] if error.startswith(prefix) else error


def _image_section(index: int, record: ImageRecord) -> str:
    title = f"{index}. {html.escape(record.name)}"
    parts = [f'<section id="image-{index}"><h2>{title}</h2>']
    pictures = record.pictures
    if record.status != "ok":
        error = html.escape(_without_path(record.error or "", record.input))
        parts.append(f"<p><b>{html.escape(record.status)}</b>: {error}</p>")
    elif record.frames is not None:
        fps = "" if record.fps is None else f" at {record.fps:g} frames/s"
        audio = "audio copied" if record.audio else "no audio"
        parts.append(
            f'<p class="meta">Video clip: {record.frames} frames{fps}, {audio}; pictures are '
            "made for still images only.</p>"
        )
    elif pictures is None:
        parts.append('<p class="meta">No pictures for this image (see --report-images).</p>')
    if pictures is not None:
        parts.append(f'<div class="row">{_thumbnails_html(pictures)}</div>')
    row = _crops_html(pictures) if pictures is not None else ""
    if record.status == "ok" and len(record.history) >= MIN_PLOT_POINTS:
        row += (
            f"<figure>{history_svg(record.history)}<figcaption>Relative primal-dual gap and "
            "relative energy excess over the lowest energy recorded, per iteration (log "
            "scale).</figcaption></figure>"
        )
    elif record.status == "ok":
        # A plot of one or two points is an empty box or a segment: say what there is.
        checks = len(record.history)
        gap = "" if record.gap is None else f", relative gap {record.gap:.2g}"
        parts.append(
            f'<p class="meta">{record.iterations} iterations{gap}; the solver measured its '
            f"gap {checks} time{'s' if checks != 1 else ''}, too few points for a "
            "convergence plot.</p>"
        )
    if row:
        parts.append(f'<div class="row">{row}</div>')
    parts.append(f'<div class="row">{_params_tables(record)}</div></section>')
    return "".join(parts)


def html_text(run: RunReport, records: Sequence[ImageRecord]) -> str:
    counts = totals(records)
    with_metrics = any(r.psnr_out is not None for r in records)
    started, finished = iso_time(run.started), iso_time(run.finished)
    duration = ""
    if run.finished is not None:
        duration = f" (wall time {(run.finished - run.started).total_seconds():.1f} s)"
    command = " ".join(run.command)
    settings = "".join(
        f"<tr><th>{html.escape(str(key))}</th>{_cell(plain_value(value), 6)}</tr>"
        for key, value in run.settings.items()
    )
    failures = [r for r in records if r.status == "failed"]
    if failures:
        failure_items = "".join(
            f'<li><a href="#image-{records.index(r) + 1}">{html.escape(r.input)}</a>: '
            f"{html.escape(_without_path(r.error or '', r.input))}</li>"
            for r in failures
        )
        failure_html = f"<ul>{failure_items}</ul>"
    else:
        failure_html = "<p>None.</p>"
    summary = (
        f"{counts['images']} images: {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped; {counts['converged']} converged; "
        f"{counts['seconds']:.2f} s of processing, summed over the images"
    )
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>tvdenoise report {html.escape(started or '')}</title>",
        f"<style>{_STYLE}</style></head><body><h1>tvdenoise report</h1>",
        f'<p class="meta">tvdenoise {html.escape(run.version)}, started '
        f"{html.escape(started or '')}, finished {html.escape(finished or '')}{duration}</p>",
    ]
    if command:
        parts.append(f"<p><code>{html.escape(command)}</code></p>")
    parts.append(f"<p>{html.escape(summary)}</p>")
    if settings:
        parts.append(
            f'<details><summary>Settings</summary><table class="params">{settings}</table>'
            "</details>"
        )
    parts += [
        '<h2>Summary</h2><p class="meta">Click a column heading to sort. '
        + (
            "PSNR in dB and SSIM against the reference, of the input (in) and of the output "
            "(out).</p>"
            if with_metrics
            else "No reference images were given (--reference), so no PSNR or SSIM.</p>"
        ),
        _summary_table(records, with_metrics),
        f"<h2>Failures</h2>{failure_html}",
        *(_image_section(i, r) for i, r in enumerate(records, 1)),
        f"<script>{_SCRIPT}</script></body></html>\n",
    ]
    return "".join(parts)
