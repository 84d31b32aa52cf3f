"""The per-image records of a report and the run they belong to."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validate import DEFAULT_TGV_RATIO
from .._version import __version__
from ..errors import InvalidParameterError
from ..image_io import SUPPORTED_EXTENSIONS, ImageFile
from ..metrics import psnr, ssim
from ..settings import SolveSettings
from .pictures import ImagePictures

if TYPE_CHECKING:
    from ..solvers.base import SolveRecord


#: Report formats by file extension.
REPORT_FORMATS = {".json": "json", ".csv": "csv", ".html": "html", ".htm": "html"}
STATUSES = ("ok", "failed", "skipped")
SCHEMA_VERSION = 1


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
    tgv_ratio : float or None
        alpha0 / alpha1 of ``tv="tgv"``; None for the other models.
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
    frames, fps, audio : int, float, bool or None
        For a video clip: frames written, frame rate, and whether its audio was copied;
        None for images.
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
    tgv_ratio: float | None = None
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
    frames: int | None = None
    fps: float | None = None
    audio: bool | None = None
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
        The effective settings (after config files and defaults) as their flat
        ``{key: value}`` table (:meth:`tvdenoise.settings.RunSettings.values`): JSON-able
        values; others (paths, devices) are written as strings.
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
    settings: SolveSettings | Mapping[str, Any],
    *,
    device: str | None = None,
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
    settings : SolveSettings or mapping
        The options passed to ``denoise``: ``weight``, ``beta``, ``tv``, ``color``,
        ``fidelity`` and, from a mapping, ``device`` are read (missing ones are left None).
    device : str, optional
        The device the image was solved on (overrides a mapping's ``device``).
    seconds : float, optional
        Wall seconds spent on the image; by default the solve's own time.
    weight : float, optional
        The weight actually used, when it differs from the settings' weight (automatic).
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
    options = settings.denoise_options() if isinstance(settings, SolveSettings) else settings
    device = device if device is not None else options.get("device")
    used_weight = weight if weight is not None else options.get("weight")
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
        beta=None if options.get("beta") is None else float(options["beta"]),
        tv=options.get("tv"),
        tgv_ratio=(
            float(options.get("tgv_ratio", DEFAULT_TGV_RATIO))
            if options.get("tv") == "tgv"
            else None
        ),
        color=options.get("color"),
        fidelity=options.get("fidelity"),
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
    loaded before the failure, adds its size and dtype. ``output`` means the output written,
    as in every record (and in ``--json``): a skipped image's existing output, None for a
    failed one, whatever ``output_path`` its job planned.

    >>> failed_record("a.png", "a_denoised.png", ValueError("a.png: not an image")).error
    'a.png: not an image'
    >>> failed_record("a.png", "a_denoised.png", "a.png: not an image").output is None
    True
    """
    if status not in ("failed", "skipped"):
        raise InvalidParameterError(f"status must be failed or skipped, got {status!r}")
    text = (str(error) or type(error).__name__) if isinstance(error, BaseException) else error
    lines = text.strip().splitlines()
    return ImageRecord(
        input=os.fspath(input_path),
        output=None if output_path is None or status == "failed" else os.fspath(output_path),
        status=status,
        error=lines[0] if lines else status,
        seconds=seconds,
        **(_shape_fields(image) if image is not None else {}),
    )


def record_from_line(
    line: Mapping[str, Any],
    *,
    history: Sequence[tuple[int, float, float | None]] = (),
    pictures: ImagePictures | None = None,
) -> ImageRecord:
    """The record of one image from its ``--json`` line (a mapping of the same keys: what a
    key means there it means here); keys a record has no field for are left out.

    An interrupted image is recorded as failed, with the reason. Example:

    >>> line = {"input": "a.png", "output": None, "status": "interrupted", "error": None,
    ...         "weight": 0.1, "solver": "rof", "max_iter": 500}
    >>> record = record_from_line(line)
    >>> record.status, record.error, record.weight, record.solver
    ('failed', 'interrupted: stopped by a signal, nothing written', 0.1, 'rof')
    """
    values: dict[str, Any] = {name: line.get(name) for name in RECORD_FIELDS if name != "history"}
    if values["status"] == "interrupted":
        values["status"] = "failed"
        values["error"] = values["error"] or "interrupted: stopped by a signal, nothing written"
    values["weight_auto"] = bool(values["weight_auto"])
    record = ImageRecord(**values, history=list(history))
    record.pictures = pictures
    return record


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


def plain_value(value: Any) -> Any:
    """A JSON-able copy: non-finite floats become None, unknown objects their ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return plain_value(value.item())
    if isinstance(value, Mapping):
        return {str(key): plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(item) for item in value]
    if isinstance(value, datetime):
        return iso_time(value)
    return str(value)


def iso_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")
