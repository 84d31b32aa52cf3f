"""Settings of a run: defaults, presets, TOML config files and their precedence (no torch).

A run's settings come from four layers, each overriding the one before::

    built-in defaults  <  --preset NAME  <  --config FILE.toml  <  options on the command line

Config files and presets are flat TOML tables whose keys are the long option names with
``_`` for ``-`` (``max_iter = 500``). :func:`to_toml` writes settings back in that form, so the
output of ``tvdenoise --show-config`` can be saved and fed back with ``--config``.
Presets ship with the package (``configs/`` in the source tree); :func:`preset_names` lists them.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import _validate
from .errors import ConfigError
from .io import formats
from .tiling import DEFAULT_MAX_MEMORY, DEFAULT_OVERLAP

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DEFAULTS",
    "KEYS",
    "NAME_FIELDS",
    "check_value",
    "load_config",
    "load_preset",
    "parse_memory",
    "preset_names",
    "to_toml",
]

#: Output formats ``--format`` accepts (``jpg`` and ``tif`` are aliases): the format table's.
FORMATS = formats.OPTIONS
FORMAT_ALIASES = formats.OPTION_ALIASES
#: How multi-page files (TIFF pages, GIF/WebP frames, 3-D .npy) are denoised.
STACK_MODES = ("off", "frames", "volume")
#: Default decompression-bomb guard; equals tvdenoise.image_io.DEFAULT_MAX_PIXELS (tested).
DEFAULT_MAX_PIXELS = 178_956_970
#: Fields a ``--name`` template may use.
NAME_FIELDS = ("stem", "suffix", "ext", "tag", "name")
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_MEMORY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


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


def _memory(key: str, value: Any) -> str:
    try:
        parse_memory(value)
    except ConfigError as error:
        raise ConfigError(f"{key}: {error}") from None
    return str(value)


def _non_negative_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _device(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N; got {value!r}")
    return value


def _format(key: str, value: Any) -> str:
    if isinstance(value, str):
        value = FORMAT_ALIASES.get(value.lower(), value.lower())
    return _validate.choice(key, value, FORMATS)


def _suffix(key: str, value: Any) -> str:
    text = _string(key, value)
    if "/" in text or os.sep in text:
        raise ConfigError(f"{key} must not contain a path separator, got {value!r}")
    return text


def _name_template(key: str, value: Any) -> str:
    template = _string(key, value)
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    except ValueError as error:
        raise ConfigError(f"{key}: bad template {value!r} ({error})") from None
    unknown = [field for field in fields if field not in NAME_FIELDS]
    if unknown:
        raise ConfigError(
            f"{key}: unknown field {{{unknown[0]}}} in {value!r}; "
            f"allowed: {', '.join('{' + f + '}' for f in NAME_FIELDS)}"
        )
    if "stem" not in fields and "name" not in fields:
        raise ConfigError(f"{key} must contain {{stem}} or {{name}}, got {value!r}")
    if "/" in template or os.sep in template:
        raise ConfigError(f"{key} must not contain a path separator, got {value!r}")
    return template


def _quality(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ConfigError(f"{key} must be an integer from 1 to 100, got {value!r}")
    return value


def _max_pixels(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0 (0: no limit), got {value!r}")
    return value


def _mask(key: str, value: Any) -> str:
    """ "nan" (mask the NaN pixels of float images) or the path of a mask image."""
    text = _string(key, value)
    if not text:
        raise ConfigError(f"{key} must be 'nan' or a mask image's path, got {value!r}")
    return "nan" if text.lower() == "nan" else text


def _weight(key: str, value: Any) -> float | str:
    """A number > 0, or "auto" (chosen per image by minimising SURE)."""
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number > 0 or auto, got {value!r}") from None
    return _validate.positive(key, value)


def _sigma(key: str, value: Any) -> float:
    """Noise level on the [0, 1] scale; "25/255" style fractions are accepted."""
    if isinstance(value, str):
        try:
            top, _, bottom = value.partition("/")
            value = float(top) / float(bottom) if bottom else float(top)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(
                f"{key} must be a number > 0 (on the [0, 1] scale) or a fraction like 25/255, "
                f"got {value!r}"
            ) from None
    sigma = _validate.positive(key, value)
    if sigma > SIGMA_MAX:
        # A person thinking in 0-255 levels: 15 would flatten the image at weight ~80.
        raise ConfigError(
            f"{key} is a noise level on the [0, 1] scale and at most {SIGMA_MAX:g}, "
            f"got {sigma:g}; for {sigma:g} on the 0-255 scale write {sigma:g}/255"
        )
    return sigma


#: The largest noise level that ``sigma`` accepts: a standard deviation of half the whole
#: [0, 1] range is no longer noise on an image.
SIGMA_MAX = 0.5


def _scheduler_address(key: str, value: Any) -> str:
    """A Dask scheduler address such as ``tcp://host:8786`` (checked when connecting)."""
    address = _string(key, value).strip()
    if not address:
        raise ConfigError(f"{key} must be a scheduler address like tcp://host:8786, got {value!r}")
    return address


def _spacing(key: str, value: Any) -> tuple[float, ...]:
    """Grid steps: a TOML array or a comma-separated string of 2 (dy, dx) or 3 (dz, dy, dx)
    positive numbers."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    try:
        steps = tuple(float(item) for item in items)
    except (TypeError, ValueError):
        steps = ()
    if len(steps) not in (2, 3) or not all(math.isfinite(h) and h > 0 for h in steps):
        raise ConfigError(
            f"{key} must be 2 (dy, dx) or 3 (dz, dy, dx) positive grid steps, such as "
            f"'1,1' or '2.5,1,1', got {value!r}"
        )
    return steps


def _tol(key: str, value: Any) -> float:
    return _validate.non_negative(key, value)


def _max_iter(key: str, value: Any) -> int:
    return _validate.positive_int(key, value)


#: Every setting: its default and its check. A check returns the normalised value or raises
#: InvalidParameterError / ConfigError with a message that starts with the key.
KEYS: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    "weight": ("auto", _weight),
    "sigma": (None, _sigma),
    "beta": (1.0, _validate.positive),
    "tv": ("symmetric", lambda k, v: _validate.choice(k, v, _validate.TV_KINDS)),
    "color": ("vectorial", lambda k, v: _validate.choice(k, v, _validate.COLOR_COUPLINGS)),
    "fidelity": ("l2", lambda k, v: _validate.choice(k, v, _validate.FIDELITY_NAMES)),
    "solver": ("auto", lambda k, v: _validate.choice(k, v, _validate.SOLVER_NAMES)),
    "max_iter": (_validate.DEFAULT_MAX_ITER, _max_iter),
    "tol": (_validate.DEFAULT_TOL, _tol),
    "device": ("auto", _device),
    "workers": (1, _validate.positive_int),
    "suffix": ("_denoised", _suffix),
    "name": (None, _name_template),
    "format": (None, _format),
    "quality": (None, _quality),
    "max_pixels": (DEFAULT_MAX_PIXELS, _max_pixels),
    "mask": (None, _mask),
    "stack": ("off", lambda k, v: _validate.choice(k, v, STACK_MODES)),
    "spacing": (None, _spacing),
    "tile": (0, _non_negative_int),
    "tile_overlap": (DEFAULT_OVERLAP, _non_negative_int),
    "max_memory": (DEFAULT_MAX_MEMORY, _memory),
    "batch_size": (1, _validate.positive_int),
    "recursive": (False, _boolean),
    "skip_existing": (False, _boolean),
    "dask_scheduler": (None, _scheduler_address),
}
DEFAULTS: dict[str, Any] = {key: default for key, (default, _) in KEYS.items()}


def check_value(key: str, value: Any, *, where: str | None = None, flag: bool = False) -> Any:
    """Normalise one setting or raise ConfigError naming ``where`` (a file) and the key.

    With ``flag=True`` the message names the command-line option (``--max-iter``).
    """
    label = "--" + key.replace("_", "-") if flag else key
    check = KEYS[key][1]
    try:
        return check(label, value)
    except (ConfigError, ValueError) as error:
        message = str(error)
        raise ConfigError(f"{where}: {message}" if where else message) from None


def _check_table(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            hint = ""
            close = [k for k in KEYS if k.replace("_", "") == key.replace("-", "").lower()]
            if close:
                hint = f" (did you mean {close[0]}?)"
            raise ConfigError(
                f"{where}: unknown key {key!r}{hint}; allowed keys: {', '.join(sorted(KEYS))}"
            )
        settings[key] = check_value(key, value, where=where)
    return settings


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a TOML config file; return the settings it sets (and only those)."""
    where = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a folder, not a config file") from None
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such config file") from None
    except OSError as error:
        raise ConfigError(f"{where}: cannot read ({error.strerror or error})") from None
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a text file (TOML must be UTF-8)") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    return _check_table(table, where)


def _presets_folder() -> Path:
    """``tvdenoise/presets`` (installed; a link to ``configs/`` in the source tree)."""
    return Path(__file__).with_name("presets")


def preset_names() -> list[str]:
    """The names of the shipped presets, sorted."""
    return sorted(path.stem for path in _presets_folder().glob("*.toml"))


def load_preset(name: str) -> dict[str, Any]:
    """The settings of the shipped preset ``name`` (see :func:`preset_names`)."""
    names = preset_names()
    if name not in names:
        raise ConfigError(f"--preset {name}: unknown preset; available: {', '.join(names)}")
    return load_config(_presets_folder() / f"{name}.toml")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # pragma: no cover - checks refuse these
            raise ValueError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value), ensure_ascii=False)


def to_toml(settings: Mapping[str, Any], header: str = "") -> str:
    """Settings as TOML that :func:`load_config` reads back to the same values.

    Unset optional settings (None) are written as comments, since TOML has no null.
    """
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key in KEYS:
        value = settings.get(key)
        if value is None:
            lines.append(f"# {key} = (not set)")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
