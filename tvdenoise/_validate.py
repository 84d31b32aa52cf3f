"""Option names, defaults and checks shared by the library and the CLI (no torch import).

Messages name the option, the value received and what is allowed, e.g.
``weight must be > 0, got -0.1``; the CLI asks for flag names (``--weight``) instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import InvalidParameterError

TV_KINDS = ("isotropic", "anisotropic", "symmetric")
#: What ``denoise`` and the command line accept as ``tv``: the TV kinds, and the models
#: beyond local TV (second-order TGV, nonlocal TV), which only ``denoise`` solves.
MODEL_KINDS = (*TV_KINDS, "tgv", "nonlocal")
#: The beyond-TV models take these solvers (their own exact Chambolle-Pock method).
MODEL_SOLVERS = ("auto", "chambolle_pock")
#: alpha0 / alpha1 of ``tv="tgv"`` when none is given.
DEFAULT_TGV_RATIO = 2.0
COLOR_COUPLINGS = ("vectorial", "channelwise")
REDUCTIONS = ("sum", "mean", "none")
FIDELITY_NAMES = ("l2", "l1", "poisson")
SOLVER_NAMES = ("auto", "chambolle_pock", "rof", "accelerated", "gd", "adam")
EXACT_SOLVERS = ("auto", "chambolle_pock", "rof")
DEFAULT_MAX_ITER = 2000
#: The loosest relative gap at which the PSNR of the beta = 1 benchmark images (camera and
#: astronaut 512x512, retina 4 MP; benchmarks/bench_speed.py) is within 0.01 dB of the
#: converged result: 1e-3 already misses by 0.016 dB on retina, 3e-4 is within 0.004 dB.
DEFAULT_TOL = 3e-4


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


def spacing(name: str, value: object, ndim: int | None = None) -> tuple[float, ...] | None:
    """Per-axis grid steps: None (all 1) or a sequence of ``ndim`` numbers > 0."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidParameterError(f"{name} must be a sequence of numbers > 0, got {value!r}")
    steps = tuple(positive(name, v) for v in value)
    if ndim is not None and len(steps) != ndim:
        raise InvalidParameterError(
            f"{name} must have one step per spatial axis ({ndim}), got {len(steps)}: {value!r}"
        )
    if len(steps) not in (2, 3):
        raise InvalidParameterError(f"{name} must have 2 or 3 steps, got {value!r}")
    return steps


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    return number


def default_eps(beta: float, solver: str = "auto") -> float:
    """Smoothing used when none is given.

    None where the energy allows an exact or a smooth solve: beta = 1 with the exact
    primal-dual method, and beta >= 2 (differentiable). Otherwise a little, so descent methods
    see a gradient that is Lipschitz: 1e-3 for 1 <= beta < 2, 1e-2 for beta < 1.
    """
    if (beta == 1.0 and solver in EXACT_SOLVERS) or beta >= 2.0:
        return 0.0
    return 1e-3 if beta >= 1.0 else 1e-2


def validate_options(
    *,
    weight: Any,
    beta: Any,
    tv: Any,
    color: Any,
    fidelity: Any,
    solver: Any,
    max_iter: Any,
    tol: Any,
    eps: Any = None,
    flags: bool = False,
) -> dict[str, Any]:
    """Check the denoising options together; return them normalised, ``eps`` resolved.

    With ``flags=True`` messages use the CLI's names (``--max-iter``) instead of the keywords.
    """

    def name(keyword: str) -> str:
        return "--" + keyword.replace("_", "-") if flags else keyword

    options: dict[str, Any] = {
        "weight": positive(name("weight"), weight),
        "beta": positive(name("beta"), beta),
        "tv": choice(name("tv"), tv, MODEL_KINDS),
        "color": choice(name("color"), color, COLOR_COUPLINGS),
        "fidelity": choice(name("fidelity"), fidelity, FIDELITY_NAMES),
        "solver": choice(name("solver"), solver, SOLVER_NAMES),
        "max_iter": positive_int(name("max_iter"), max_iter),
        "tol": non_negative(name("tol"), tol),
    }
    options["eps"] = (
        default_eps(options["beta"], options["solver"])
        if eps is None
        else non_negative(name("eps"), eps)
    )
    if options["tv"] in ("tgv", "nonlocal"):
        if eps is None:
            options["eps"] = 0.0
        model_solver_applies(
            options["tv"], options["solver"], options["beta"], options["eps"], name("tv")
        )
    else:
        solver_applies(options["solver"], options["beta"], options["eps"], name("solver"))
    return options


def model_solver_applies(
    model: str, solver: str, beta: float, eps: float, name: str = "tv"
) -> None:
    """Refuse options the TGV and nonlocal models do not solve: they are convex beta = 1
    energies without smoothing, solved by their own primal-dual method."""
    if solver not in MODEL_SOLVERS or beta != 1.0 or eps != 0:
        raise InvalidParameterError(
            f"{name} {model} is solved for beta = 1 and eps = 0 by solver auto or "
            f"chambolle_pock; got solver={solver}, beta={beta:g}, eps={eps:g}"
        )


def solver_applies(solver: str, beta: float, eps: float, name: str = "solver") -> None:
    """Refuse a solver that cannot solve the problem: the exact primal-dual methods are for
    beta = 1 without smoothing only."""
    if solver in ("rof", "chambolle_pock") and (beta != 1.0 or eps != 0):
        raise InvalidParameterError(
            f"{name} {solver} needs beta = 1 and eps = 0, got "
            f"beta={beta:g}, eps={eps:g}; use auto or accelerated"
        )
