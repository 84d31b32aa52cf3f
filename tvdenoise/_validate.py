"""Argument checks shared by the public functions (messages name the argument and the value)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .errors import InvalidParameterError

TV_KINDS = ("isotropic", "anisotropic")
COLOR_COUPLINGS = ("vectorial", "channelwise")
REDUCTIONS = ("sum", "mean", "none")


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise InvalidParameterError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def positive(name: str, value: object) -> float:
    number = _number(name, value)
    if not number > 0:
        raise InvalidParameterError(f"{name} must be > 0, got {value!r}")
    return number


def non_negative(name: str, value: object) -> float:
    number = _number(name, value)
    if not number >= 0:
        raise InvalidParameterError(f"{name} must be >= 0, got {value!r}")
    return number


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    return number
