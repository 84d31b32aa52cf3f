"""Reports: records, pictures, and the JSON / CSV / HTML files (parsed, validated, rendered)."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import math
import pickle
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import tvdenoise as tvd
from tvdenoise import report
from tvdenoise.errors import ImageWriteError, InvalidParameterError
from tvdenoise.image_io import load_image, save_image, to_float
from tvdenoise.report import (
    CSV_FIELDS,
    ImageRecord,
    RunReport,
    failed_record,
    find_reference,
    history_svg,
    image_record,
    make_pictures,
    reference_metrics,
    report_format,
    report_schema,
    write_report,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
SETTINGS = {
    "weight": 0.1,
    "beta": 1.0,
    "tv": "isotropic",
    "color": "vectorial",
    "fidelity": "l2",
    "device": "cpu",
}


@dataclasses.dataclass
class Batch:
    records: list[ImageRecord]
    clean: dict[str, np.ndarray]
    noisy: dict[str, np.ndarray]
    denoised: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """64x64 crops of the grey and a colour sample, denoised, with pictures and metrics,
    plus one failed and one skipped input."""
    folder = tmp_path_factory.mktemp("batch")
    records, clean, noisy_all, denoised_all = [], {}, {}, {}
    for name in ("camera", "astronaut"):
        window = (slice(64, 128), slice(96, 160))
        noisy_file = load_image(SAMPLES / f"{name}_noisy_sigma25.png")
        path = folder / f"{name} & <crop>.png"  # a name that needs escaping in HTML
        save_image(path, noisy_file.pixels[window])
        image = load_image(path)
        noisy = to_float(image.pixels)
        reference = to_float(load_image(SAMPLES / f"{name}.png").pixels[window])
        # A tight tolerance: enough gap evaluations for a convergence plot.
        denoised, solve = tvd.denoise(noisy, weight=0.1, return_record=True, tol=1e-6)
        metrics = reference_metrics(noisy, denoised, reference)
        record = image_record(path, folder / "out.png", image, solve, SETTINGS, metrics=metrics)
        record.pictures = make_pictures(noisy, denoised)
        records.append(record)
        clean[path.name], noisy_all[path.name], denoised_all[path.name] = (
            reference,
            noisy,
            denoised,
        )
    records.append(failed_record(folder / "broken.png", None, "broken.png: not an image\nmore"))
    records.append(failed_record(folder / "done.png", folder / "x.png", "exists", status="skipped"))
    return Batch(records, clean, noisy_all, denoised_all)


def _run() -> RunReport:
    return RunReport(command=["tvdenoise", "in/", "--report", "r.html"], settings=SETTINGS)


# --- records ----------------------------------------------------------------------------------


def test_image_record_takes_figures_from_file_and_solve(tmp_path: Path) -> None:
    pixels = (np.random.default_rng(0).uniform(size=(24, 40, 3)) * 65535).astype(np.uint16)
    save_image(tmp_path / "a.png", pixels)
    image = load_image(tmp_path / "a.png")
    _, solve = tvd.denoise(to_float(image.pixels), weight=0.1, return_record=True)
    record = image_record(tmp_path / "a.png", None, image, solve, SETTINGS, seconds=2.5)
    assert (record.width, record.height, record.channels) == (40, 24, 3)
    assert (record.dtype, record.bit_depth, record.alpha) == ("uint16", 16, False)
    assert record.solver in ("rof", "chambolle_pock")  # "auto" resolved for beta = 1
    assert record.iterations == solve.iterations and record.energy == solve.energy
    assert record.converged == solve.converged and record.seconds == 2.5
    assert record.weight == 0.1 and record.tv == "isotropic" and record.device == "cpu"
    assert [h[0] for h in record.history] == [h.iteration for h in solve.history]
    assert record.history[-1] == (solve.iterations, solve.energy, solve.gap)
    assert record.status == "ok" and record.error is None and record.psnr_in is None


def test_image_record_rejects_unknown_metric_names(batch: Batch) -> None:
    _, solve = tvd.denoise(np.zeros((8, 8)), weight=0.1, return_record=True)
    with pytest.raises(InvalidParameterError, match="psnr"):
        image_record("a.png", None, np.zeros((8, 8)), solve, SETTINGS, metrics={"psnr": 1.0})


def test_failed_record_keeps_first_line_and_status(batch: Batch) -> None:
    failed, skipped = batch.records[2], batch.records[3]
    assert failed.status == "failed" and failed.error == "broken.png: not an image"
    assert failed.iterations is None and failed.output is None
    assert skipped.status == "skipped" and skipped.error == "exists"
    with pytest.raises(InvalidParameterError, match="status"):
        failed_record("a", None, "x", status="ok")


def test_records_with_pictures_survive_pickling(batch: Batch) -> None:
    for record in batch.records:
        copy = pickle.loads(pickle.dumps(record))
        assert copy == record and copy.pictures == record.pictures


def test_reference_metrics_agree_with_skimage(batch: Batch) -> None:
    for record in batch.records[:2]:
        name = Path(record.input).name
        # float64 for scikit-image, which otherwise computes in the inputs' float32.
        clean, noisy, denoised = (
            np.asarray(images[name], dtype=np.float64)
            for images in (batch.clean, batch.noisy, batch.denoised)
        )
        axis = -1 if clean.ndim == 3 else None
        assert record.psnr_in == pytest.approx(
            peak_signal_noise_ratio(clean, noisy, data_range=1.0), abs=1e-9
        )
        assert record.psnr_out == pytest.approx(
            peak_signal_noise_ratio(clean, denoised, data_range=1.0), abs=1e-9
        )
        assert record.ssim_out == pytest.approx(
            structural_similarity(clean, denoised, data_range=1.0, channel_axis=axis), abs=1e-9
        )
        assert record.psnr_out > record.psnr_in and record.ssim_out > record.ssim_in


def test_reference_metrics_reject_a_reference_of_another_shape() -> None:
    with pytest.raises(InvalidParameterError, match="reference has shape"):
        reference_metrics(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 9)))


def test_find_reference_by_file_relative_path_and_other_extension(tmp_path: Path) -> None:
    (tmp_path / "ref" / "sub").mkdir(parents=True)
    (tmp_path / "ref" / "sub" / "a.png").write_bytes(b"x")
    (tmp_path / "ref" / "b.tif").write_bytes(b"x")
    assert find_reference(tmp_path / "ref", "sub/a.png") == tmp_path / "ref" / "sub" / "a.png"
    assert find_reference(tmp_path / "ref", "b.png") == tmp_path / "ref" / "b.tif"
    assert find_reference(tmp_path / "ref", "c.png") is None
    one = tmp_path / "ref" / "b.tif"
    assert find_reference(one, "anything/else.png") == one
    assert find_reference(tmp_path / "missing", "a.png") is None


# --- pictures ---------------------------------------------------------------------------------


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_pictures_thumbnails_are_at_most_256_pixels_and_keep_aspect() -> None:
    rng = np.random.default_rng(1)
    noisy = rng.uniform(size=(300, 520, 3))
    pictures = make_pictures(noisy, noisy * 0.5)
    assert pictures.thumbnail_size == (256, 148)
    for png in (pictures.input_png, pictures.output_png, pictures.residual_png):
        assert _decode(png).shape == (148, 256, 3)
    with pytest.raises(InvalidParameterError, match="at most 256"):
        make_pictures(noisy, noisy, max_size=512)


def test_small_images_are_not_enlarged() -> None:
    noisy = np.random.default_rng(2).uniform(size=(40, 30))
    pictures = make_pictures(noisy, noisy)
    assert pictures.thumbnail_size == (30, 40)
    np.testing.assert_array_equal(_decode(pictures.input_png), np.rint(noisy * 255))


def test_crop_is_one_to_one_at_the_most_textured_region() -> None:
    # Flat image with one checkerboard patch: the crop must contain the patch, unresampled.
    clean = np.full((200, 300), 0.5)
    rows, cols = np.indices((32, 32))
    clean[120:152, 200:232] = ((rows + cols) % 2).astype(float)
    noisy = clean + np.random.default_rng(3).normal(0, 0.05, clean.shape)
    pictures = make_pictures(np.clip(noisy, 0, 1), clean, crop_size=48)
    top, left, height, width = pictures.crop
    assert (height, width) == (48, 48)
    assert top <= 120 and top + height >= 152 and left <= 200 and left + width >= 232
    crop = _decode(pictures.crop_input_png)
    expected = np.rint(np.clip(noisy, 0, 1)[top : top + 48, left : left + 48] * 255)
    np.testing.assert_array_equal(crop, expected)


def test_residual_is_grey_at_zero_and_brighter_where_input_is_larger() -> None:
    noisy = np.full((20, 20), 0.5)
    denoised = noisy.copy()
    denoised[:, :10] -= 0.1  # residual +0.1 on the left half, 0 on the right
    residual = _decode(make_pictures(noisy, denoised).residual_png)
    assert np.all(residual[:, 10:] == 128)  # 0.5 -> 127.5 -> rounds to 128
    assert np.all(residual[:, :10] == 255)  # +scale is white
    assert make_pictures(noisy, denoised).residual_scale == pytest.approx(0.1)


def test_pictures_reject_mismatched_shapes() -> None:
    with pytest.raises(InvalidParameterError, match="same shape"):
        make_pictures(np.zeros((8, 8)), np.zeros((8, 8, 3)))
    with pytest.raises(InvalidParameterError, match=r"\(H, W, 3\)"):
        make_pictures(np.zeros((8, 8, 4)), np.zeros((8, 8, 4)))


# --- files ------------------------------------------------------------------------------------


def test_report_format_follows_the_extension() -> None:
    assert [report_format(p) for p in ("a.json", "b.CSV", "c.html", "d.htm")] == [
        "json",
        "csv",
        "html",
        "html",
    ]
    with pytest.raises(InvalidParameterError, match=r"\.json, \.csv or \.html"):
        report_format("run.txt")


def test_json_report_validates_against_the_schema(batch: Batch, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = write_report(tmp_path / "run.json", _run(), batch.records)
    data = json.loads(path.read_text("utf-8"))
    schema = report_schema()
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    validator.validate(data)
    assert data["totals"] == {
        "images": 4,
        "ok": 2,
        "failed": 1,
        "skipped": 1,
        "converged": sum(bool(r.converged) for r in batch.records),
        "seconds": pytest.approx(sum(r.seconds or 0 for r in batch.records)),
    }
    assert [image["input"] for image in data["images"]] == [r.input for r in batch.records]
    first = data["images"][0]
    assert first["psnr_out"] == batch.records[0].psnr_out
    assert first["history"][-1] == list(batch.records[0].history[-1])
    assert data["command"][0] == "tvdenoise" and data["settings"]["weight"] == 0.1
    # The schema is not vacuous: it rejects a wrong status and a missing field.
    broken = json.loads(path.read_text("utf-8"))
    broken["images"][0]["status"] = "done"
    assert not validator.is_valid(broken)
    del data["images"][1]["iterations"]
    assert not validator.is_valid(data)


def test_json_report_writes_infinite_psnr_as_null(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    image = np.random.default_rng(4).uniform(size=(16, 16))
    result, solve = tvd.denoise(image, weight=0.1, return_record=True)
    metrics = reference_metrics(image, result, image)
    assert metrics["psnr_in"] == math.inf
    record = image_record("a.png", None, image, solve, SETTINGS, metrics=metrics)
    settings = {**SETTINGS, "output": tmp_path, "nan": float("nan")}
    path = write_report(tmp_path / "r.json", RunReport(settings=settings), [record])
    data = json.loads(path.read_text("utf-8"))
    jsonschema.validate(data, report_schema())
    assert data["images"][0]["psnr_in"] is None and data["images"][0]["ssim_in"] == 1.0
    assert data["settings"]["output"] == str(tmp_path) and data["settings"]["nan"] is None


def test_csv_report_has_one_row_per_image(batch: Batch, tmp_path: Path) -> None:
    path = write_report(tmp_path / "run.csv", _run(), batch.records)
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(batch.records)
    assert tuple(rows[0]) == CSV_FIELDS and "history" not in rows[0]
    for row, record in zip(rows, batch.records, strict=True):
        assert row["input"] == record.input and row["status"] == record.status
    assert float(rows[0]["energy"]) == batch.records[0].energy  # full precision
    assert int(rows[1]["iterations"]) == batch.records[1].iterations
    assert rows[0]["converged"] in ("true", "false")
    assert rows[2]["error"] == "broken.png: not an image" and rows[2]["energy"] == ""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(name == tag for name, _ in self.tags)


def _parse(path: Path) -> _Collector:
    parser = _Collector()
    parser.feed(path.read_text("utf-8"))
    parser.close()
    return parser


def test_html_report_is_self_contained(batch: Batch, tmp_path: Path) -> None:
    path = write_report(tmp_path / "run.html", _run(), batch.records)
    text = path.read_text("utf-8")
    parsed = _parse(path)
    body = "".join(parsed.text)
    for record in batch.records:
        assert record.name in body
    assert "<crop>" in body and "&lt;crop&gt;" in text  # escaped in the source, shown as is
    # One plot per denoised image; failed and skipped ones have none.
    assert parsed.count("svg") == 2 and parsed.count("polyline") >= 2
    # Nothing is fetched: every image is a data URI, no stylesheet or script file, no URL.
    without_data = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"(?i)(https?:)?//[a-z0-9]", without_data)
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "iframe", "object", "embed")
        assert "src" not in attrs or (tag == "img" and attrs["src"].startswith("data:image/png"))
        href = attrs.get("href")
        assert href is None or href.startswith("#")
    images = [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert len(images) == 5 * 2  # input, output, residual and two crops per image
    for attrs in images:
        png = base64.b64decode(attrs["src"].split(",", 1)[1])
        assert max(_decode(png).shape[:2]) <= 256
    assert "broken.png: not an image" in body  # the failures section


def test_html_pictures_only_for_records_that_have_them(batch: Batch, tmp_path: Path) -> None:
    records = [batch.records[0], dataclasses.replace(batch.records[1], pictures=None)]
    parsed = _parse(write_report(tmp_path / "run.html", _run(), records))
    assert sum(tag == "img" for tag, _ in parsed.tags) == 5
    assert parsed.count("svg") == 2


def test_history_plot_is_log_scale() -> None:
    # Gaps falling by one decade per step lie on equally spaced heights.
    svg = history_svg([(10, 5.0, 1e-1), (20, 4.0, 1e-2), (30, 3.5, 1e-3), (40, 3.0, 1e-4)])
    polylines = re.findall(r'<polyline[^>]*stroke="([^"]+)"[^>]*points="([^"]+)"', svg)
    gap_points = next(points for colour, points in polylines if colour == "#1f77b4")
    heights = [float(pair.split(",")[1]) for pair in gap_points.split()]
    steps = np.diff(heights)
    assert np.all(steps > 20) and np.ptp(steps) <= 1  # equal up to whole-pixel rounding
    assert "no history" in history_svg([])


def test_html_without_pictures_stays_small_for_a_big_batch(tmp_path: Path) -> None:
    # 200 evaluated iterations (max_iter 2000, check_every 10): plots are thinned, so an
    # image without pictures costs a few KB however long its history.
    history = [(10 * k, 100.0 + 1.0 / k, 10.0 ** (-k / 40)) for k in range(1, 201)]
    record = ImageRecord("in/a.png", "out/a.png", width=64, height=64, channels=1,
                         weight=0.1, iterations=2000, energy=100.0, gap=1e-5, converged=False,
                         seconds=1.0, history=history)  # fmt: skip
    records = [dataclasses.replace(record, input=f"in/{i:04d}.png") for i in range(200)]
    path = write_report(tmp_path / "big.html", _run(), records)
    assert path.stat().st_size < 6_000 * len(records)
    assert _parse(path).count("svg") == 200


def test_write_report_is_atomic_and_respects_overwrite(batch: Batch, tmp_path: Path) -> None:
    path = tmp_path / "run.csv"
    path.write_text("old")
    with pytest.raises(ImageWriteError, match="exists"):
        write_report(path, _run(), batch.records, overwrite=False)
    assert path.read_text() == "old"
    write_report(path, _run(), batch.records)
    assert path.read_text("utf-8").startswith("input,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv"]  # no temporary left
    with pytest.raises(InvalidParameterError, match="unknown report format"):
        write_report(tmp_path / "run.xml", _run(), batch.records)


def test_public_types_are_dataclasses_and_exported() -> None:
    seen: list[object] = []
    _, record = tvd.denoise(np.zeros((8, 8)), weight=0.1, callback=seen.append, return_record=True)
    assert isinstance(record, tvd.SolveRecord) and dataclasses.is_dataclass(record)
    assert seen and all(isinstance(info, tvd.IterationInfo) for info in seen)
    assert tvd.ImageRecord is ImageRecord and tvd.write_report is write_report
    assert dataclasses.is_dataclass(tvd.RunReport)


def test_report_module_does_not_import_torch() -> None:
    code = "import sys, tvdenoise.report; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- rendering --------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_report_renders_in_headless_chromium(batch: Batch, tmp_path: Path) -> None:
    path = write_report(tmp_path / "run.html", _run(), batch.records)
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1000,1400", path.as_uri())
    rendered = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert rendered.shape == (1400, 1000, 3)
    # Not blank: text, tables and the pictures give many distinct colours and contrast.
    assert rendered.std() > 20 and len(np.unique(rendered.reshape(-1, 3), axis=0)) > 1000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_summary_table_sorts_by_clicked_column(batch: Batch, tmp_path: Path) -> None:
    path = write_report(tmp_path / "run.html", _run(), batch.records)
    click = "<script>document.querySelector('th[data-key=\"psnr_out\"]').click();</script>"
    path.write_text(path.read_text("utf-8").replace("</body>", click + "</body>"), "utf-8")
    dom = _chromium("--dump-dom", path.as_uri()).stdout
    summary = dom[dom.index('id="summary"') : dom.index("</table>", dom.index('id="summary"'))]
    order = re.findall(r'href="#image-(\d+)"', summary)
    by_psnr = sorted(range(2), key=lambda i: batch.records[i].psnr_out or 0.0)
    # Ascending on the first click; rows without a value (failed, skipped) come last.
    assert [int(i) for i in order[:2]] == [i + 1 for i in by_psnr]
    assert sorted(int(i) for i in order[2:]) == [3, 4]
    assert 'data-dir="asc"' in summary


def test_report_example_in_module_docstring_runs(tmp_path: Path) -> None:
    # The same calls as the module's example, written to a real file.
    noisy = np.random.default_rng(0).uniform(size=(32, 32))
    denoised, solve = tvd.denoise(noisy, weight=0.1, return_record=True)
    record = image_record("in.png", "out.png", noisy, solve, SETTINGS)
    record.pictures = make_pictures(noisy, denoised)
    written = report.write_report(tmp_path / "run.html", RunReport(settings=SETTINGS), [record])
    assert written.stat().st_size > 1000


def test_html_draws_no_plot_from_fewer_than_three_evaluations(batch: Batch, tmp_path: Path) -> None:
    # An automatic-weight run records one evaluation: a plot of it would be an empty box.
    few = dataclasses.replace(batch.records[0], history=[(34, 1.5, 2e-4)], gap=2e-4)
    many = batch.records[1]
    assert len(many.history) >= 3
    parsed = _parse(write_report(tmp_path / "run.html", _run(), [few, many]))
    body = " ".join(" ".join(parsed.text).split())
    assert parsed.count("svg") == 1
    assert (
        f"{few.iterations} iterations, relative gap 0.0002; the solver measured its gap 1 time,"
        in body
    )


def test_html_labels_times_and_says_when_there_is_no_reference(
    batch: Batch, tmp_path: Path
) -> None:
    from datetime import timedelta

    run = _run()
    run.finished = run.started + timedelta(seconds=5.1)
    bare = [dataclasses.replace(r, psnr_in=None, psnr_out=None, ssim_in=None, ssim_out=None)
            for r in batch.records]  # fmt: skip
    body = " ".join(" ".join(_parse(write_report(tmp_path / "a.html", run, bare)).text).split())
    seconds = sum(r.seconds or 0 for r in bare)
    assert f"{seconds:.2f} s of processing, summed over the images" in body
    assert "(wall time 5.1 s)" in body
    assert "No reference images were given" in body and "against the reference" not in body
    with_reference = [dataclasses.replace(bare[0], psnr_in=20.0, psnr_out=30.0)]
    body = " ".join(_parse(write_report(tmp_path / "b.html", run, with_reference)).text)
    assert "against the reference" in body and "No reference images" not in body


def test_html_names_a_failed_file_once(tmp_path: Path) -> None:
    failed = failed_record("broken/empty.jpg", None, "broken/empty.jpg: empty file (0 bytes)")
    text = write_report(tmp_path / "run.html", _run(), [failed]).read_text("utf-8")
    assert "broken/empty.jpg: broken/empty.jpg" not in text
    body = " ".join(_parse(tmp_path / "run.html").text)
    assert "broken/empty.jpg" in body and "empty file (0 bytes)" in body
    assert body.count("broken/empty.jpg") == 3  # the summary row, the failure list, the section
