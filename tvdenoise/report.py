"""Reports of a run: per-image records, pictures, and JSON / CSV / HTML files.

A run produces one :class:`ImageRecord` per input (built with :func:`image_record` or
:func:`failed_record`, cheap and picklable, so worker processes can send them back), and
optionally an :class:`ImagePictures` for the first few images (small PNG thumbnails made with
:func:`make_pictures` while the full images are still in memory; a batch of thousands never
holds them all). :func:`write_report` writes the records with a :class:`RunReport` as:

- ``.json``: one object, ``{"tool", "version", "command", "settings", "started", "finished",
  "totals", "images": [...]}``, valid against ``tvdenoise/schemas/report.schema.json``
  (:func:`report_schema`);
- ``.csv``: a header and one row per image (the record's fields, without the history);
- ``.html``: one self-contained page (pictures as ``data:`` URIs, plots as inline SVG, a small
  inline script to sort the summary table; nothing is fetched from the network).

This module imports neither torch nor the command line.

Examples
--------
>>> import numpy as np
>>> import tvdenoise as tvd
>>> from tvdenoise.report import RunReport, image_record, make_pictures, write_report
>>> noisy = np.random.default_rng(0).uniform(size=(32, 32))
>>> denoised, solve = tvd.denoise(noisy, weight=0.1, return_record=True)
>>> settings = {"weight": 0.1, "beta": 1.0, "tv": "isotropic", "color": "vectorial",
...             "fidelity": "l2", "device": "cpu"}
>>> record = image_record("in.png", "out.png", noisy, solve, settings)
>>> record.pictures = make_pictures(noisy, denoised)
>>> record.status, record.width, record.channels
('ok', 32, 1)
>>> write_report("run.html", RunReport(settings=settings), [record])  # doctest: +SKIP
PosixPath('run.html')
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validate import positive_int
from ._version import __version__
from .errors import InvalidParameterError
from .image_io import SUPPORTED_EXTENSIONS, ImageFile
from .io.atomic import check_target, write_atomically
from .metrics import psnr, ssim, window_sums

if TYPE_CHECKING:
    from .solvers.base import SolveRecord

__all__ = [
    "REPORT_FORMATS",
    "ImagePictures",
    "ImageRecord",
    "RunReport",
    "failed_record",
    "find_reference",
    "image_record",
    "make_pictures",
    "reference_metrics",
    "report_format",
    "report_schema",
    "totals",
    "write_report",
]

#: Report formats by file extension.
REPORT_FORMATS = {".json": "json", ".csv": "csv", ".html": "html", ".htm": "html"}
STATUSES = ("ok", "failed", "skipped")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ImagePictures:
    """Small PNG pictures of one image for the HTML report (made by :func:`make_pictures`).

    Attributes
    ----------
    input_png, output_png, residual_png : bytes
        Thumbnails (longest side at most ``max_size``) of the noisy input, the denoised
        output, and the residual ``input - output`` mapped so that 0 is mid-grey and
        ``+-residual_scale`` are white and black.
    crop_input_png, crop_output_png : bytes
        The same window of input and output at full resolution (1:1, not resampled).
    thumbnail_size : tuple of int
        ``(width, height)`` of the thumbnails.
    crop : tuple of int
        ``(top, left, height, width)`` of the crop in the full image.
    residual_scale : float
        The absolute residual shown as full white / black (the 99.5th percentile of
        ``|input - output|``).
    """

    input_png: bytes
    output_png: bytes
    residual_png: bytes
    crop_input_png: bytes
    crop_output_png: bytes
    thumbnail_size: tuple[int, int]
    crop: tuple[int, int, int, int]
    residual_scale: float


@dataclass
class ImageRecord:
    """What happened to one image: the parameters, the solve, and its quality.

    Picklable and small (the history is a list of tuples), so worker processes can return
    it. Fields that do not apply are None: the solve figures of a failed image, PSNR / SSIM
    without a reference, ``sigma`` unless the weight was chosen from a noise estimate.

    Attributes
    ----------
    input, output : str
        The input file and the output written (``output`` None when nothing was written).
    status : {"ok", "failed", "skipped"}
    error : str or None
        One-line reason for a failed or skipped image.
    width, height, channels : int
        Image size; ``channels`` counts colour channels (alpha excluded, see ``alpha``).
    dtype : str
        The input's sample type (``"uint8"``, ``"uint16"``, ``"float32"``, ...).
    bit_depth : int
        Bits per sample (8, 16, 32, ...).
    alpha : bool
        Whether the input has an alpha channel (passed through, not denoised).
    weight : float
        The regularisation weight used.
    weight_auto : bool
        Whether ``weight`` was chosen automatically (from the estimated ``sigma``).
    sigma : float or None
        Estimated noise standard deviation (in [0, 1] units), when one was estimated.
    beta, tv, color, fidelity : float, str
        The energy's options (see :func:`tvdenoise.denoise`).
    solver : str
        The solver that ran (``auto`` resolved), from :class:`~tvdenoise.SolveRecord`.
    device : str
        ``"cpu"``, ``"cuda:0"``, ...
    iterations, energy, gap, relative_change, converged, stop_reason, local_minimum
        From :class:`~tvdenoise.SolveRecord`: final energy, relative primal-dual gap (or its
        bound; None where the solver has none), last relative change, and why it stopped.
    seconds : float
        Wall-clock seconds for the image (the solve alone unless the caller timed more).
    psnr_in, psnr_out, ssim_in, ssim_out : float or None
        PSNR (dB) and SSIM of the noisy input and of the output against the reference.
    history : list of (int, float, float or None)
        ``(iteration, energy, gap)`` at every evaluated iteration.
    pictures : ImagePictures or None
        Thumbnails for the HTML report; not written to JSON or CSV.
    """

    input: str
    output: str | None = None
    status: str = "ok"
    error: str | None = None
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    dtype: str | None = None
    bit_depth: int | None = None
    alpha: bool | None = None
    weight: float | None = None
    weight_auto: bool = False
    sigma: float | None = None
    beta: float | None = None
    tv: str | None = None
    color: str | None = None
    fidelity: str | None = None
    solver: str | None = None
    device: str | None = None
    iterations: int | None = None
    energy: float | None = None
    gap: float | None = None
    relative_change: float | None = None
    converged: bool | None = None
    stop_reason: str | None = None
    local_minimum: bool | None = None
    seconds: float | None = None
    psnr_in: float | None = None
    psnr_out: float | None = None
    ssim_in: float | None = None
    ssim_out: float | None = None
    history: list[tuple[int, float, float | None]] = field(default_factory=list)
    pictures: ImagePictures | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The input's file name (what tables and headings show)."""
        return Path(self.input).name or self.input


# Columns of the CSV file and keys of each JSON image object, in order.
RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ImageRecord) if f.name != "pictures")
CSV_FIELDS = tuple(name for name in RECORD_FIELDS if name != "history")


@dataclass
class RunReport:
    """The run a report describes.

    Attributes
    ----------
    command : list of str
        The command line (``sys.argv``), or empty for a library run.
    settings : dict
        The effective settings (after config files and defaults): JSON-able values; others
        (paths, devices) are written as strings.
    started, finished : datetime
        When the run started and ended (timezone-aware; ``finished`` defaults to the time
        the report is written).
    version : str
        The tvdenoise version.
    """

    command: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished: datetime | None = None
    version: str = __version__


def _shape_fields(image: ImageFile | np.ndarray) -> dict[str, Any]:
    pixels = image.pixels if isinstance(image, ImageFile) else np.asarray(image)
    alpha = image.alpha is not None if isinstance(image, ImageFile) else False
    if pixels.ndim not in (2, 3):
        raise InvalidParameterError(
            f"image must be (H, W) or (H, W, C), got shape {tuple(pixels.shape)}"
        )
    bits = 1 if pixels.dtype == np.bool_ else int(pixels.dtype.itemsize * 8)
    return {
        "height": int(pixels.shape[0]),
        "width": int(pixels.shape[1]),
        "channels": int(pixels.shape[2]) if pixels.ndim == 3 else 1,
        "dtype": str(pixels.dtype),
        "bit_depth": bits,
        "alpha": alpha,
    }


def image_record(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str] | None,
    image: ImageFile | np.ndarray,
    solve: SolveRecord,
    settings: Mapping[str, Any],
    *,
    seconds: float | None = None,
    weight: float | None = None,
    weight_auto: bool = False,
    sigma: float | None = None,
    metrics: Mapping[str, float] | None = None,
) -> ImageRecord:
    """Build the record of a successfully denoised image.

    Parameters
    ----------
    input_path, output_path : str or os.PathLike
        The input file and the output written (None if none was).
    image : ImageFile or numpy.ndarray
        The input as loaded (its size, channels, dtype and alpha are recorded).
    solve : SolveRecord
        What :func:`tvdenoise.denoise` returned with ``return_record=True``.
    settings : mapping
        The options passed to ``denoise``: ``weight``, ``beta``, ``tv``, ``color``,
        ``fidelity`` and ``device`` are read (missing ones are left None).
    seconds : float, optional
        Wall seconds spent on the image; by default the solve's own time.
    weight : float, optional
        The weight actually used, when it differs from ``settings["weight"]`` (automatic).
    weight_auto : bool
        Whether the weight was chosen automatically.
    sigma : float, optional
        The estimated noise level behind an automatic weight.
    metrics : mapping, optional
        ``psnr_in``, ``psnr_out``, ``ssim_in``, ``ssim_out`` from :func:`reference_metrics`.

    Returns
    -------
    ImageRecord
        With ``status="ok"``.
    """
    device = settings.get("device")
    used_weight = weight if weight is not None else settings.get("weight")
    extra = dict(metrics or {})
    unknown = set(extra) - {"psnr_in", "psnr_out", "ssim_in", "ssim_out"}
    if unknown:
        raise InvalidParameterError(f"metrics has unknown keys: {', '.join(sorted(unknown))}")
    return ImageRecord(
        input=os.fspath(input_path),
        output=None if output_path is None else os.fspath(output_path),
        **_shape_fields(image),
        weight=None if used_weight is None else float(used_weight),
        weight_auto=bool(weight_auto),
        sigma=None if sigma is None else float(sigma),
        beta=None if settings.get("beta") is None else float(settings["beta"]),
        tv=settings.get("tv"),
        color=settings.get("color"),
        fidelity=settings.get("fidelity"),
        solver=solve.solver,
        device=None if device is None else str(device),
        iterations=solve.iterations,
        energy=solve.energy,
        gap=solve.gap,
        relative_change=solve.relative_change,
        converged=solve.converged,
        stop_reason=solve.stop_reason,
        local_minimum=solve.local_minimum,
        seconds=solve.seconds if seconds is None else float(seconds),
        psnr_in=extra.get("psnr_in"),
        psnr_out=extra.get("psnr_out"),
        ssim_in=extra.get("ssim_in"),
        ssim_out=extra.get("ssim_out"),
        history=[(h.iteration, h.energy, h.gap) for h in solve.history],
    )


def failed_record(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str] | None,
    error: BaseException | str,
    *,
    status: str = "failed",
    image: ImageFile | np.ndarray | None = None,
    seconds: float | None = None,
) -> ImageRecord:
    """Build the record of an image that failed or was skipped.

    ``error`` (an exception or a message) is kept as one line; ``image``, when it was
    loaded before the failure, adds its size and dtype.

    >>> failed_record("a.png", "a_denoised.png", ValueError("a.png: not an image")).error
    'a.png: not an image'
    """
    if status not in ("failed", "skipped"):
        raise InvalidParameterError(f"status must be failed or skipped, got {status!r}")
    text = (str(error) or type(error).__name__) if isinstance(error, BaseException) else error
    lines = text.strip().splitlines()
    return ImageRecord(
        input=os.fspath(input_path),
        output=None if output_path is None else os.fspath(output_path),
        status=status,
        error=lines[0] if lines else status,
        seconds=seconds,
        **(_shape_fields(image) if image is not None else {}),
    )


def reference_metrics(
    noisy: np.ndarray,
    denoised: np.ndarray,
    reference: np.ndarray,
    *,
    data_range: float = 1.0,
) -> dict[str, float]:
    """PSNR and SSIM of the noisy input and of the output against a clean reference.

    Parameters
    ----------
    noisy, denoised, reference : numpy.ndarray
        Float images ``(H, W)`` or ``(H, W, C)`` on one scale (``to_float`` of the files:
        [0, 1] for integer images); a trailing channel axis of length 1 is ignored.
    data_range : float
        The span of possible values, 1 for images scaled to [0, 1].

    Returns
    -------
    dict
        ``{"psnr_in", "psnr_out", "ssim_in", "ssim_out"}``, ready for :func:`image_record`.

    Raises
    ------
    InvalidParameterError
        If the reference's shape differs from the image's.
    """

    def squeeze(array: np.ndarray) -> np.ndarray:
        array = np.asarray(array)
        return array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array

    noisy, denoised, reference = squeeze(noisy), squeeze(denoised), squeeze(reference)
    if reference.shape != noisy.shape:
        raise InvalidParameterError(
            f"reference has shape {reference.shape}, the image has shape {noisy.shape}"
        )
    return {
        "psnr_in": psnr(noisy, reference, data_range=data_range),
        "psnr_out": psnr(denoised, reference, data_range=data_range),
        "ssim_in": ssim(noisy, reference, data_range=data_range),
        "ssim_out": ssim(denoised, reference, data_range=data_range),
    }


def find_reference(
    reference: str | os.PathLike[str], relative: str | os.PathLike[str]
) -> Path | None:
    """The clean reference of an input: ``reference`` itself if it is a file, else the file at
    ``relative`` (the input's path relative to its input folder) under the ``reference``
    folder, or one with the same stem and another image extension. None when there is none.
    """
    root = Path(reference)
    if root.is_file():
        return root
    if not root.is_dir():
        return None
    candidate = root / Path(relative)
    if candidate.is_file():
        return candidate
    for suffix in sorted(SUPPORTED_EXTENSIONS):
        for variant in (suffix, suffix.upper()):
            other = candidate.with_suffix(variant)
            if other.is_file():
                return other
    return None


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------


def _as_hwc(name: str, array: np.ndarray) -> np.ndarray:
    values = np.asarray(array, dtype=np.float64)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if not (values.ndim == 2 or (values.ndim == 3 and values.shape[2] == 3)):
        raise InvalidParameterError(
            f"{name} must be (H, W), (H, W, 1) or (H, W, 3), got shape {values.shape}"
        )
    return values


def _png(values: np.ndarray) -> bytes:
    from .image_io import encode_image, from_float

    return encode_image(from_float(np.clip(values, 0.0, 1.0), np.uint8), "PNG")


def _thumbnail(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    from .image_io import from_float

    pixels = from_float(np.clip(values, 0.0, 1.0), np.uint8)
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels / 255.0
    small = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(small) / 255.0


def _most_textured(values: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """Top-left corner of the window with the largest total gradient magnitude."""
    grey = values if values.ndim == 2 else values.mean(axis=2)
    gradient = np.zeros_like(grey)
    gradient[:, :-1] += np.abs(np.diff(grey, axis=1))
    gradient[:-1, :] += np.abs(np.diff(grey, axis=0))
    sums = window_sums(gradient, height, width)
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


def make_pictures(
    noisy: np.ndarray,
    denoised: np.ndarray,
    *,
    max_size: int = 256,
    crop_size: int = 96,
) -> ImagePictures:
    """Thumbnails, residual and a 1:1 crop of one image, as PNG bytes for the HTML report.

    Call it while the images are in memory and keep only the result (a few hundred KB).

    Parameters
    ----------
    noisy, denoised : numpy.ndarray
        Float images in [0, 1] (values outside are clipped for display), ``(H, W)``,
        ``(H, W, 1)`` or ``(H, W, 3)``, same shape.
    max_size : int
        Longest side of the thumbnails, at most 256 (images already smaller are not
        enlarged).
    crop_size : int
        Side of the full-resolution crop (smaller for smaller images). The crop is the
        window where the denoised image has the largest total gradient magnitude: where
        structure survived, which is where over- or under-smoothing shows.

    Returns
    -------
    ImagePictures

    Raises
    ------
    InvalidParameterError
        For different or unsupported shapes, or sizes out of range.

    Examples
    --------
    >>> import numpy as np
    >>> pictures = make_pictures(np.zeros((300, 600)), np.zeros((300, 600)))
    >>> pictures.thumbnail_size, pictures.crop[2:]
    ((256, 128), (96, 96))
    """
    max_size = positive_int("max_size", max_size)
    if max_size > 256:
        raise InvalidParameterError(f"max_size must be at most 256, got {max_size}")
    crop_size = positive_int("crop_size", crop_size)
    noisy_values = _as_hwc("noisy", noisy)
    denoised_values = _as_hwc("denoised", denoised)
    if noisy_values.shape != denoised_values.shape:
        raise InvalidParameterError(
            f"noisy and denoised must have the same shape, got {noisy_values.shape} and "
            f"{denoised_values.shape}"
        )
    height, width = noisy_values.shape[:2]
    scale = min(1.0, max_size / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))

    residual = noisy_values - denoised_values
    residual_scale = float(np.percentile(np.abs(residual), 99.5))
    if not residual_scale > 0:
        residual_scale = 1.0
    stretched = 0.5 + residual / (2.0 * residual_scale)

    crop_height, crop_width = min(crop_size, height), min(crop_size, width)
    top, left = _most_textured(denoised_values, crop_height, crop_width)
    window = (slice(top, top + crop_height), slice(left, left + crop_width))
    return ImagePictures(
        input_png=_png(_thumbnail(noisy_values, size)),
        output_png=_png(_thumbnail(denoised_values, size)),
        residual_png=_png(_thumbnail(stretched, size)),
        crop_input_png=_png(noisy_values[window]),
        crop_output_png=_png(denoised_values[window]),
        thumbnail_size=size,
        crop=(top, left, crop_height, crop_width),
        residual_scale=residual_scale,
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def report_format(path: str | os.PathLike[str]) -> str:
    """The report format a path's extension names: ``"json"``, ``"csv"`` or ``"html"``.

    Call it when options are checked, before any work, so a bad name is a usage error.

    >>> report_format("run.HTML")
    'html'

    Raises
    ------
    InvalidParameterError
        For any other extension; the message names the allowed ones.
    """
    suffix = Path(path).suffix.lower()
    kind = REPORT_FORMATS.get(suffix)
    if kind is None:
        shown = suffix or "no extension"
        raise InvalidParameterError(
            f"report {os.fspath(path)!r}: unknown report format ({shown}); use .json, .csv or .html"
        )
    return kind


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that a ``.json`` report satisfies."""
    from importlib import resources

    text = resources.files("tvdenoise").joinpath("schemas/report.schema.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def totals(records: Sequence[ImageRecord]) -> dict[str, Any]:
    """Counts by status, converged images, and summed seconds of a list of records.

    >>> totals([ImageRecord("a.png", seconds=1.5, converged=True), failed_record("b", None, "x")])
    {'images': 2, 'ok': 1, 'failed': 1, 'skipped': 0, 'converged': 1, 'seconds': 1.5}
    """
    counts = {status: sum(r.status == status for r in records) for status in STATUSES}
    return {
        "images": len(records),
        **counts,
        "converged": sum(bool(r.converged) for r in records),
        "seconds": float(sum(r.seconds or 0.0 for r in records)),
    }


def write_report(
    path: str | os.PathLike[str],
    run: RunReport,
    records: Iterable[ImageRecord],
    *,
    overwrite: bool = True,
) -> Path:
    """Write a report of ``run`` in the format ``path``'s extension names, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        ``*.json``, ``*.csv`` or ``*.html``; its folder must exist.
    run : RunReport
        The run; ``run.finished`` None is written as now.
    records : iterable of ImageRecord
        One per input, in the order to show. In HTML, records with ``pictures`` get
        thumbnails and a crop; every image gets its plot and parameter table.
    overwrite : bool
        Replace an existing report (default). With False an existing ``path`` is an error.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InvalidParameterError
        For an unknown extension.
    ImageWriteError
        If the file cannot be written (the message starts with the path).
    """
    kind = report_format(path)
    records = list(records)
    if run.finished is None:
        run = dataclasses.replace(run, finished=datetime.now(timezone.utc))
    name = os.fspath(path)
    target = Path(name)
    check_target(target, name, overwrite)
    if kind == "json":
        text = _json_text(report_dict(run, records))
    elif kind == "csv":
        text = _csv_text(records)
    else:
        text = _html_text(run, records)
    write_atomically(target, text.encode("utf-8"), name, overwrite)
    return target


def _plain(value: Any) -> Any:
    """A JSON-able copy: non-finite floats become None, unknown objects their ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return _timestamp(value)
    return str(value)


def _timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _record_dict(record: ImageRecord) -> dict[str, Any]:
    return {name: _plain(getattr(record, name)) for name in RECORD_FIELDS}


def report_dict(run: RunReport, records: Sequence[ImageRecord]) -> dict[str, Any]:
    """The JSON report as a dict (what ``.json`` reports hold)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "tvdenoise",
        "version": run.version,
        "command": [str(part) for part in run.command],
        "settings": _plain(run.settings),
        "started": _timestamp(run.started),
        "finished": _timestamp(run.finished),
        "totals": totals(records),
        "images": [_record_dict(record) for record in records],
    }


def _json_text(report: dict[str, Any]) -> str:
    """Indented, except one line per image, so a long batch stays readable and diffable."""
    images = report["images"]
    head = json.dumps({**report, "images": []}, indent=1, allow_nan=False)
    lines = ",\n  ".join(json.dumps(image, allow_nan=False) for image in images)
    body = f"[\n  {lines}\n ]" if images else "[]"
    return head[: head.rindex("[]")] + body + head[head.rindex("[]") + 2 :] + "\n"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_text(records: Sequence[ImageRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for record in records:
        writer.writerow([_csv_cell(getattr(record, name)) for name in CSV_FIELDS])
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

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
    "alpha", "weight", "weight_auto", "sigma", "beta", "tv", "color", "fidelity", "device",
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


def _image_section(index: int, record: ImageRecord) -> str:
    title = f"{index}. {html.escape(record.name)}"
    parts = [f'<section id="image-{index}"><h2>{title}</h2>']
    pictures = record.pictures
    if record.status != "ok":
        error = html.escape(record.error or "")
        parts.append(f"<p><b>{html.escape(record.status)}</b>: {error}</p>")
    elif pictures is None:
        parts.append('<p class="meta">No pictures for this image (see --report-images).</p>')
    if pictures is not None:
        parts.append(f'<div class="row">{_thumbnails_html(pictures)}</div>')
    row = _crops_html(pictures) if pictures is not None else ""
    if record.status == "ok":
        row += (
            f"<figure>{history_svg(record.history)}<figcaption>Relative primal-dual gap and "
            "relative energy excess over the lowest energy recorded, per iteration (log "
            "scale).</figcaption></figure>"
        )
    if row:
        parts.append(f'<div class="row">{row}</div>')
    parts.append(f'<div class="row">{_params_tables(record)}</div></section>')
    return "".join(parts)


def _html_text(run: RunReport, records: Sequence[ImageRecord]) -> str:
    counts = totals(records)
    with_metrics = any(r.psnr_out is not None for r in records)
    started, finished = _timestamp(run.started), _timestamp(run.finished)
    duration = ""
    if run.finished is not None:
        duration = f" ({(run.finished - run.started).total_seconds():.1f} s)"
    command = " ".join(run.command)
    settings = "".join(
        f"<tr><th>{html.escape(str(key))}</th>{_cell(_plain(value), 6)}</tr>"
        for key, value in run.settings.items()
    )
    failures = [r for r in records if r.status == "failed"]
    if failures:
        failure_items = "".join(
            f'<li><a href="#image-{records.index(r) + 1}">{html.escape(r.input)}</a>: '
            f"{html.escape(r.error or '')}</li>"
            for r in failures
        )
        failure_html = f"<ul>{failure_items}</ul>"
    else:
        failure_html = "<p>None.</p>"
    summary = (
        f"{counts['images']} images: {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped; {counts['converged']} converged; "
        f"{counts['seconds']:.2f} s in total"
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
        '<h2>Summary</h2><p class="meta">Click a column heading to sort. PSNR in dB against '
        "the reference, of the input (in) and of the output (out).</p>",
        _summary_table(records, with_metrics),
        f"<h2>Failures</h2>{failure_html}",
        *(_image_section(i, r) for i, r in enumerate(records, 1)),
        f"<script>{_SCRIPT}</script></body></html>\n",
    ]
    return "".join(parts)
