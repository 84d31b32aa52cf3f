"""A run's settings as typed, frozen objects: one field per option (no torch, no numpy).

:class:`RunSettings` holds five groups, each a frozen dataclass that pickles (Dask sends it to
its workers)::

    SolveSettings   what is minimised and how: weight, sigma, beta, tv, ..., spacing
    ReadSettings    how inputs are found and read: max_pixels, mask, stack, recursive
    OutputSettings  how outputs are named and written: suffix, name, format, quality, ...
    TileSettings    when and how large images are cut into tiles
    ExecSettings    where the work runs: device, workers, batch_size, dask_scheduler

A field's metadata (a :class:`Setting`) gives its config-file key, its check and its help
text, so the config keys (:data:`tvdenoise.config.KEYS`), ``--show-config`` and the command
line's help are derived from the fields: a new option is one field here. A check returns the
normalised value or raises with a message that starts with the name it is given (the key, or
the flag on the command line).

:meth:`RunSettings.resolve` layers defaults < preset < config file < command line and makes
every check across options in one place.

Examples
--------
>>> settings = RunSettings.of(weight=0.1, tv="isotropic", max_memory="512MiB")
>>> settings.solve.weight, settings.solve.tv, settings.tiles.budget
(0.1, 'isotropic', 536870912)
>>> settings.solve.denoise_options()["weight"]
0.1
>>> RunSettings.of(weight="auto", fidelity="l1")
Traceback (most recent call last):
...
tvdenoise.errors.ConfigError: --weight auto chooses the weight for Gaussian noise \
(--fidelity l2); give --weight for --fidelity l1
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import _validate
from .errors import ConfigError
from .io import formats
from .tiling import DEFAULT_MAX_MEMORY, DEFAULT_OVERLAP

__all__ = [
    "COMPRESSION_CHOICES",
    "DEFAULT_MAX_PIXELS",
    "NAME_FIELDS",
    "SIGMA_MAX",
    "STACK_MODES",
    "ExecSettings",
    "OutputSettings",
    "ReadSettings",
    "RunSettings",
    "Setting",
    "SolveSettings",
    "TileSettings",
    "check_setting",
    "parse_memory",
]

#: How multi-page files (TIFF pages, GIF/WebP frames, 3-D .npy) are denoised.
STACK_MODES = ("off", "frames", "volume")
#: Default decompression-bomb guard; equals tvdenoise.image_io.DEFAULT_MAX_PIXELS (tested).
DEFAULT_MAX_PIXELS = 178_956_970
#: What the ``compression`` setting takes: keep the input's, or one TIFF outputs are written with.
COMPRESSION_CHOICES = ("keep", *formats.TIFF_COMPRESSIONS)
#: Fields a ``--name`` template may use.
NAME_FIELDS = ("stem", "suffix", "ext", "tag", "name")
#: The largest noise level that ``sigma`` accepts: a standard deviation of half the whole
#: [0, 1] range is no longer noise on an image.
SIGMA_MAX = 0.5
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_MEMORY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Setting:
    """What a settings field is: its name, config key, check, help text and allowed values.

    ``key`` None marks an option of the command line alone (``overwrite``: replacing files
    must be asked for there), which config files and ``--show-config`` leave out.
    """

    name: str
    key: str | None
    check: Check
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        """The command-line option, ``--max-iter`` for ``max_iter``."""
        return "--" + self.name.replace("_", "-")


def _setting(
    default: Any,
    check: Check,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    config: bool = True,
) -> Any:
    # The name (and so the key) is the field's, filled in by _fields().
    meta = Setting("", "" if config else None, check, help, choices)
    return field(default=default, metadata={"setting": meta})


# --- checks: each returns the normalised value or raises naming ``name`` ---------------------


def parse_memory(text: str | int) -> int:
    """Bytes in a size such as ``"2GiB"``, ``"512M"``, ``"1.5g"`` or ``"1000000"``.

    Units are binary (K = 1024); ``B``, ``iB`` and lower case are accepted.

    Raises
    ------
    ConfigError
        For anything else, or a size that is not positive.

    Examples
    --------
    >>> parse_memory("2GiB"), parse_memory("512m"), parse_memory(4096)
    (2147483648, 536870912, 4096)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _MEMORY.fullmatch(str(text).strip())
        if match is None:
            raise ConfigError(
                f"memory size must be a number with an optional unit K, M, G or T (binary), "
                f"like 2GiB or 512M; got {text!r}"
            )
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not value >= 1:
        raise ConfigError(f"memory size must be at least one byte, got {text!r}")
    return int(value)


def _memory(name: str, value: Any) -> str:
    try:
        parse_memory(value)
    except ConfigError as error:
        raise ConfigError(f"{name}: {error}") from None
    return str(value)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def _device(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ConfigError(f"{name} must be auto, cpu, cuda or cuda:N; got {value!r}")
    return value


def _choice(allowed: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> str:
        return _validate.choice(name, value, allowed)

    return check


def _format(name: str, value: Any) -> str:
    if isinstance(value, str):
        value = formats.OPTION_ALIASES.get(value.lower(), value.lower())
    return _validate.choice(name, value, formats.OPTIONS)


def _suffix(name: str, value: Any) -> str:
    text = _string(name, value)
    if "/" in text or os.sep in text:
        raise ConfigError(f"{name} must not contain a path separator, got {value!r}")
    return text


def _name_template(name: str, value: Any) -> str:
    template = _string(name, value)
    try:
        fields = [item for _, item, _, _ in string.Formatter().parse(template) if item]
    except ValueError as error:
        raise ConfigError(f"{name}: bad template {value!r} ({error})") from None
    unknown = [item for item in fields if item not in NAME_FIELDS]
    if unknown:
        raise ConfigError(
            f"{name}: unknown field {{{unknown[0]}}} in {value!r}; "
            f"allowed: {', '.join('{' + f + '}' for f in NAME_FIELDS)}"
        )
    if "stem" not in fields and "name" not in fields:
        raise ConfigError(f"{name} must contain {{stem}} or {{name}}, got {value!r}")
    if "/" in template or os.sep in template:
        raise ConfigError(f"{name} must not contain a path separator, got {value!r}")
    return template


def _quality(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ConfigError(f"{name} must be an integer from 1 to 100, got {value!r}")
    return value


def _max_pixels(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0 (0: no limit), got {value!r}")
    return value


def _mask(name: str, value: Any) -> str:
    """ "nan" (mask the NaN pixels of float images) or the path of a mask image."""
    text = _string(name, value)
    if not text:
        raise ConfigError(f"{name} must be 'nan' or a mask image's path, got {value!r}")
    return "nan" if text.lower() == "nan" else text


def _weight(name: str, value: Any) -> float | str:
    """A number > 0, or "auto" (chosen per image by minimising SURE)."""
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number > 0 or auto, got {value!r}") from None
    return _validate.positive(name, value)


def _sigma(name: str, value: Any) -> float:
    """Noise level on the [0, 1] scale; "25/255" style fractions are accepted."""
    if isinstance(value, str):
        try:
            top, _, bottom = value.partition("/")
            value = float(top) / float(bottom) if bottom else float(top)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(
                f"{name} must be a number > 0 (on the [0, 1] scale) or a fraction like 25/255, "
                f"got {value!r}"
            ) from None
    sigma = _validate.positive(name, value)
    if sigma > SIGMA_MAX:
        # A person thinking in 0-255 levels: 15 would flatten the image at weight ~80.
        raise ConfigError(
            f"{name} is a noise level on the [0, 1] scale and at most {SIGMA_MAX:g}, "
            f"got {sigma:g}; for {sigma:g} on the 0-255 scale write {sigma:g}/255"
        )
    return sigma


def _scheduler_address(name: str, value: Any) -> str:
    """A Dask scheduler address such as ``tcp://host:8786`` (checked when connecting)."""
    address = _string(name, value).strip()
    if not address:
        raise ConfigError(f"{name} must be a scheduler address like tcp://host:8786, got {value!r}")
    return address


def _spacing(name: str, value: Any) -> tuple[float, ...]:
    """Grid steps: a TOML array or a comma-separated string of 2 (dy, dx) or 3 (dz, dy, dx)
    positive numbers."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    try:
        steps = tuple(float(item) for item in items)
    except (TypeError, ValueError):
        steps = ()
    if len(steps) not in (2, 3) or not all(math.isfinite(h) and h > 0 for h in steps):
        raise ConfigError(
            f"{name} must be 2 (dy, dx) or 3 (dz, dy, dx) positive grid steps, such as "
            f"'1,1' or '2.5,1,1', got {value!r}"
        )
    return steps


# --- the groups ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolveSettings:
    """What is minimised and how (the options of :func:`tvdenoise.denoise`)."""

    weight: float | str = _setting(
        "auto",
        _weight,
        "Regularisation weight > 0, or auto: chosen per image by minimising SURE.",
    )
    sigma: float | None = _setting(
        None,
        _sigma,
        "Noise level for --weight auto, on the [0, 1] scale (at most 0.5) or as 25/255 "
        "(default: estimated from each image).",
    )
    beta: float = _setting(1.0, _validate.positive, "Exponent on the gradient magnitude, > 0.")
    tv: str = _setting(
        "symmetric",
        _choice(_validate.MODEL_KINDS),
        "Discretisation of the total variation, or a model beyond local TV: tgv (no "
        "staircasing on smooth shading) or nonlocal (keeps repeated texture).",
        choices=_validate.MODEL_KINDS,
    )
    tgv_ratio: float = _setting(
        _validate.DEFAULT_TGV_RATIO,
        _validate.positive,
        "With --tv tgv: alpha0 / alpha1, the cost of curvature against that of jumps.",
    )
    color: str = _setting(
        "vectorial",
        _choice(_validate.COLOR_COUPLINGS),
        "How colour channels are coupled.",
        choices=_validate.COLOR_COUPLINGS,
    )
    fidelity: str = _setting(
        "l2",
        _choice(_validate.FIDELITY_NAMES),
        "Data term: l2 (Gaussian noise), l1 (impulse noise) or poisson (counts).",
        choices=_validate.FIDELITY_NAMES,
    )
    solver: str = _setting(
        "auto",
        _choice(_validate.SOLVER_NAMES),
        "Minimisation method.",
        choices=_validate.SOLVER_NAMES,
    )
    max_iter: int = _setting(_validate.DEFAULT_MAX_ITER, _validate.positive_int, "Iteration cap.")
    tol: float = _setting(
        _validate.DEFAULT_TOL, _validate.non_negative, "Relative gap (or its bound) to stop at."
    )
    spacing: tuple[float, ...] | None = _setting(
        None,
        _spacing,
        "Grid steps, 'dy,dx' or with --stack volume 'dz,dy,dx' (e.g. '3,1,1' for a "
        "z-step three times the pixel size).",
    )

    @property
    def auto(self) -> bool:
        """Whether the weight is chosen per image (``weight="auto"``)."""
        return self.weight == "auto"

    def denoise_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`tvdenoise.denoise` these settings give (also the
        settings of each image's ``--json`` line, in this order)."""
        options: dict[str, Any] = {
            "weight": self.weight,
            "beta": self.beta,
            "tv": self.tv,
            **({"tgv_ratio": self.tgv_ratio} if self.tv == "tgv" else {}),
            "color": self.color,
            "fidelity": self.fidelity,
            "solver": self.solver,
            "max_iter": self.max_iter,
            "tol": self.tol,
        }
        if self.auto and self.sigma is not None:
            options["sigma"] = self.sigma
        if self.spacing is not None:
            options["spacing"] = self.spacing
        return options


@dataclass(frozen=True)
class ReadSettings:
    """How inputs are found and read."""

    max_pixels: int = _setting(
        DEFAULT_MAX_PIXELS,
        _max_pixels,
        "Refuse larger images (decompression-bomb guard); 0: no limit.",
    )
    mask: str | None = _setting(
        None,
        _mask,
        "Leave pixels out of the data term (TV fills them): 'nan' for the NaN pixels of "
        "float images (FITS always), or a mask image, black where the data is ignored.",
    )
    stack: str = _setting(
        "off",
        _choice(STACK_MODES),
        "Multi-page files: off, frames (each page alone) or volume (3-D TV).",
        choices=STACK_MODES,
    )
    recursive: bool = _setting(False, _boolean, "Include subfolders of folder inputs.")

    @property
    def pixel_limit(self) -> int | None:
        """``max_pixels`` as the readers take it: None for no limit."""
        return self.max_pixels or None


@dataclass(frozen=True)
class OutputSettings:
    """How outputs are named and written."""

    suffix: str = _setting("_denoised", _suffix, "Added to each output's stem.")
    name: str | None = _setting(
        None,
        _name_template,
        "Output name template, e.g. '{stem}_tv{suffix}': {stem}, {name}, {suffix} "
        "(extension with dot), {ext}, {tag} (the --suffix text).",
    )
    format: str | None = _setting(
        None,
        _format,
        "Convert outputs to this format ("
        + ", ".join(f"{alias} for {name}" for alias, name in formats.OPTION_ALIASES.items())
        + ").",
        choices=formats.OPTIONS,
    )
    quality: int | None = _setting(
        None, _quality, "JPEG/WebP quality 1-100 (default: the input JPEG's, else 95)."
    )
    compression: str = _setting(
        "keep",
        _choice(COMPRESSION_CHOICES),
        "TIFF outputs: keep the input TIFF's compression (deflate when it is another, or "
        "the input no TIFF), or write none, deflate, lzw, zstd or packbits.",
        choices=COMPRESSION_CHOICES,
    )
    skip_existing: bool = _setting(
        False, _boolean, "Leave existing outputs alone (resume an interrupted batch)."
    )
    overwrite: bool = _setting(False, _boolean, "Replace existing outputs.", config=False)


@dataclass(frozen=True)
class TileSettings:
    """When and how large 2-D images are denoised in tiles (:mod:`tvdenoise.tiling`)."""

    tile: int = _setting(
        0,
        _non_negative_int,
        "Denoise in overlapping tiles of PX x PX pixels (bounded memory for huge images); "
        "0: only when the image exceeds --max-memory.",
    )
    tile_overlap: int = _setting(
        DEFAULT_OVERLAP,
        _non_negative_int,
        "Overlap between tiles; 64 keeps tiled results within 1e-3 of untiled ones.",
    )
    max_memory: str = _setting(
        DEFAULT_MAX_MEMORY,
        _memory,
        "Solver memory budget per worker, e.g. 2GiB; larger images are tiled, and clips "
        "denoised with --stack volume in shorter chunks of frames.",
    )

    @property
    def budget(self) -> int:
        """``max_memory`` in bytes."""
        return parse_memory(self.max_memory)


@dataclass(frozen=True)
class ExecSettings:
    """Where and how the work runs."""

    device: str = _setting("auto", _device, "auto (CUDA when available), cpu, cuda or cuda:N.")
    workers: int = _setting(1, _validate.positive_int, "Parallel worker processes.")
    batch_size: int = _setting(
        1,
        _validate.positive_int,
        "Denoise up to N same-size images as one batch (fast on a GPU; fixed weight).",
    )
    dask_scheduler: str | None = _setting(
        None,
        _scheduler_address,
        "Denoise on a Dask cluster's workers, e.g. tcp://host:8786 (needs tvdenoise[dask] and "
        "a filesystem shared with the workers; --workers is ignored).",
    )


@dataclass(frozen=True)
class RunSettings:
    """Every setting of a run, in five groups; build it with :meth:`resolve` or :meth:`of`."""

    solve: SolveSettings = field(default_factory=SolveSettings)
    read: ReadSettings = field(default_factory=ReadSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    tiles: TileSettings = field(default_factory=TileSettings)
    exec: ExecSettings = field(default_factory=ExecSettings)

    #: The group classes, by the attribute that holds them.
    GROUPS: ClassVar[dict[str, type[Any]]] = {
        "solve": SolveSettings,
        "read": ReadSettings,
        "output": OutputSettings,
        "tiles": TileSettings,
        "exec": ExecSettings,
    }

    @staticmethod
    def fields() -> dict[str, tuple[str, Setting]]:
        """``{name: (group, Setting)}`` for every option, config keys and command-line ones."""
        return dict(_FIELDS)

    def values(self, *, keys_only: bool = True) -> dict[str, Any]:
        """The settings as a flat ``{key: value}`` table (what a config file holds); with
        ``keys_only=False`` also the command line's own options (``overwrite``)."""
        return {
            name: getattr(getattr(self, group), name)
            for name, (group, meta) in _FIELDS.items()
            if meta.key is not None or not keys_only
        }

    def replace(self, **changes: Any) -> RunSettings:
        """These settings with some options changed (checked values, by name)."""
        groups: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            if name not in _FIELDS:
                raise ConfigError(f"unknown setting {name!r}; allowed: {', '.join(_FIELDS)}")
            groups.setdefault(_FIELDS[name][0], {})[name] = value
        return dataclasses.replace(
            self,
            **{
                group: dataclasses.replace(getattr(self, group), **values)
                for group, values in groups.items()
            },
        )

    @classmethod
    def of(cls, **options: Any) -> RunSettings:
        """The defaults with ``options`` (keys as in a config file) changed, all checked."""
        return cls.resolve(config_file=options)

    @classmethod
    def resolve(
        cls,
        defaults: RunSettings | None = None,
        preset: Mapping[str, Any] | None = None,
        config_file: Mapping[str, Any] | None = None,
        command_line: Mapping[str, Any] | None = None,
        *,
        denoise: bool = True,
        clips: bool = False,
    ) -> RunSettings:
        """Layer the settings, each layer overriding the one before, and check them together.

        Parameters
        ----------
        defaults : RunSettings, optional
            The bottom layer (the built-in defaults when None).
        preset, config_file : mapping, optional
            ``{key: value}`` tables as :func:`tvdenoise.config.load_config` returns them.
        command_line : mapping, optional
            The options given on the command line, by name; messages name their flags.
        denoise : bool
            False for a run that only reads (``--estimate-noise``): the checks of options
            that only the denoising uses are skipped.
        clips : bool
            True when every input is a video clip: ``--stack volume`` then takes the
            automatic weight (chosen once per clip, on its first frame; see :meth:`check`).

        Raises
        ------
        ConfigError
            A value outside what its key allows, or options that contradict each other.
        """
        settings = defaults if defaults is not None else cls()
        for layer, flags in ((preset, False), (config_file, False), (command_line, True)):
            if layer:
                settings = settings.replace(
                    **{
                        name: check_setting(name, value, flag=flags)
                        for name, value in layer.items()
                    }
                )
        settings.check(denoise=denoise, clips=clips)
        return settings

    def check(self, *, denoise: bool = True, clips: bool = False) -> None:
        """Every check across options (the values themselves were checked on the way in).

        ``clips`` says that every input is a video clip, whose automatic weight is chosen
        once, on its first frame (:mod:`tvdenoise.streaming`), so ``--stack volume`` may
        take it; ``denoise`` is as for :meth:`resolve`.

        Raises
        ------
        ConfigError
            Naming the options (as flags) and what to change.
        """
        solve, read, tiles = self.solve, self.read, self.tiles
        try:
            if solve.tv in ("tgv", "nonlocal"):
                _validate.model_solver_applies(solve.tv, solve.solver, solve.beta, 0.0, "--tv")
            else:
                eps = _validate.default_eps(solve.beta, solve.solver)
                _validate.solver_applies(solve.solver, solve.beta, eps, "--solver")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if solve.tv == "nonlocal" and read.stack == "volume":
            raise ConfigError(
                "--tv nonlocal is for 2-D images; use another --tv with --stack volume"
            )
        if solve.auto and solve.fidelity != "l2" and denoise:
            raise ConfigError(
                f"--weight auto chooses the weight for Gaussian noise (--fidelity l2); give "
                f"--weight for --fidelity {solve.fidelity}"
            )
        if solve.auto and read.stack == "volume" and denoise and not clips:
            raise ConfigError("--stack volume needs a numeric --weight (auto is for 2-D images)")
        spacing = solve.spacing
        if spacing is not None and (len(spacing) == 3) != (read.stack == "volume"):
            raise ConfigError(
                f"--spacing has {len(spacing)} steps: give 3 (dz, dy, dx) with --stack volume "
                "and 2 (dy, dx) otherwise"
            )
        if tiles.tile and tiles.tile_overlap >= tiles.tile:
            raise ConfigError(
                f"--tile-overlap ({tiles.tile_overlap}) must be smaller than --tile ({tiles.tile})"
            )
        if solve.sigma is not None and not solve.auto:
            raise ConfigError("--sigma is used only with --weight auto")
        if self.output.overwrite and self.output.skip_existing:
            raise ConfigError("--overwrite and --skip-existing contradict each other; choose one")

    @property
    def batching(self) -> bool:
        """Whether same-size images are denoised together: ``batch_size > 1``, a fixed weight
        (an automatic weight is chosen per image), single-page images, and no ``mask`` (a
        masked image is solved on its own, with its NaN pixels or the mask image)."""
        return (
            self.exec.batch_size > 1
            and not self.solve.auto
            and self.read.stack == "off"
            and self.read.mask is None
        )


def _fields() -> Iterator[tuple[str, tuple[str, Setting]]]:
    for group, kind in RunSettings.GROUPS.items():
        for item in dataclasses.fields(kind):
            meta: Setting = item.metadata["setting"]
            key = None if meta.key is None else item.name
            yield item.name, (group, dataclasses.replace(meta, name=item.name, key=key))


#: ``{name: (group, Setting)}``, in group order, then field order.
_FIELDS: dict[str, tuple[str, Setting]] = dict(_fields())


def check_setting(name: str, value: Any, *, flag: bool = False, where: str | None = None) -> Any:
    """Normalise one option's value or raise ConfigError naming ``where`` (a file) and the
    key, or with ``flag=True`` the command-line option (``--max-iter``)."""
    if name not in _FIELDS:
        raise ConfigError(f"unknown setting {name!r}; allowed: {', '.join(_FIELDS)}")
    meta = _FIELDS[name][1]
    label = meta.flag if flag else name
    try:
        return meta.check(label, value)
    except (ConfigError, ValueError) as error:
        message = str(error)
        raise ConfigError(f"{where}: {message}" if where else message) from None
