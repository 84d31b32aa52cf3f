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
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import formats
from .settings import (
    DEFAULT_MAX_PIXELS,
    NAME_FIELDS,
    SIGMA_MAX,
    STACK_MODES,
    RunSettings,
    check_setting,
    parse_memory,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DEFAULTS",
    "DEFAULT_MAX_PIXELS",
    "KEYS",
    "NAME_FIELDS",
    "SIGMA_MAX",
    "STACK_MODES",
    "check_value",
    "load_config",
    "load_preset",
    "parse_memory",
    "preset_names",
    "resolve",
    "to_toml",
]

#: Output formats ``--format`` accepts (``jpg`` and ``tif`` are aliases): the format table's.
FORMATS = formats.OPTIONS
FORMAT_ALIASES = formats.OPTION_ALIASES

#: Every config key: its default and its check, from the fields of
#: :class:`~tvdenoise.settings.RunSettings` (in their order). A check returns the normalised
#: value or raises InvalidParameterError / ConfigError with a message that starts with the key.
KEYS: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    name: (getattr(getattr(RunSettings(), group), name), meta.check)
    for name, (group, meta) in RunSettings.fields().items()
    if meta.key is not None
}
DEFAULTS: dict[str, Any] = {key: default for key, (default, _) in KEYS.items()}


def check_value(key: str, value: Any, *, where: str | None = None, flag: bool = False) -> Any:
    """Normalise one setting or raise ConfigError naming ``where`` (a file) and the key.

    With ``flag=True`` the message names the command-line option (``--max-iter``).
    """
    return check_setting(key, value, where=where, flag=flag)


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


def to_toml(settings: RunSettings | Mapping[str, Any], header: str = "") -> str:
    """Settings as TOML that :func:`load_config` reads back to the same values.

    Unset optional settings (None) are written as comments, since TOML has no null.
    """
    if isinstance(settings, RunSettings):
        settings = settings.values()
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key in KEYS:
        value = settings.get(key)
        if value is None:
            lines.append(f"# {key} = (not set)")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def resolve(
    *,
    preset: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    command_line: Mapping[str, Any] | None = None,
    denoise: bool = True,
    clips: bool = False,
) -> RunSettings:
    """The settings of a run: defaults < ``preset`` < ``config_file`` < ``command_line``.

    Reads the preset and the file, then :meth:`RunSettings.resolve
    <tvdenoise.settings.RunSettings.resolve>` layers and checks them (see there).
    """
    return RunSettings.resolve(
        None,
        load_preset(preset) if preset is not None else None,
        load_config(config_file) if config_file is not None else None,
        command_line,
        denoise=denoise,
        clips=clips,
    )
