"""The high-level :func:`denoise`: option checks, the weight choice, the solver call (the
input conversion is in :mod:`tvdenoise.conversion`)."""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from . import _validate
from ._validate import DEFAULT_MAX_ITER, DEFAULT_TGV_RATIO, DEFAULT_TOL
from .auto_weight import SEARCH_TOL, WeightChoice, search_weight, with_choice
from .conversion import to_batch
from .errors import InvalidParameterError
from .fidelity import MaskedL2Fidelity, get_fidelity
from .nonlocal_graph import DEFAULT_SCALE, build_graph
from .progress import SOLVING, Stage
from .solvers import Callback, IterationInfo, Problem, solve

__all__ = ["PRECISION_FRACTION", "choose_weight", "denoise", "output_step", "resolve_device"]

#: With ``precision``, stop when the certified RMS distance to the minimiser is at most this
#: fraction of the output's step (rounding to the step itself adds 0.29 of a step, RMS).
PRECISION_FRACTION = 0.5
# Set by :func:`choice_only`: ``denoise(weight="auto")`` then returns the weight choice and
# skips the final solve (a caller that wants the weight alone does not pay for the image).
_CHOICE_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("choice_only", default=False)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; other names are checked to exist."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise InvalidParameterError(
            f"device must be auto, cpu, cuda or cuda:N, got {device!r}"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"device {device!r} requested but CUDA is not available")
    return resolved


def denoise(
    image: Any,
    weight: float | str = 0.1,
    beta: float = 1.0,
    tv: str = "symmetric",
    color: str = "vectorial",
    fidelity: str = "l2",
    solver: str = "auto",
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    eps: float | None = None,
    callback: Callback | None = None,
    check_every: int | None = None,
    time_limit: float | None = None,
    return_record: bool = False,
    progress: bool = False,
    sigma: float | None = None,
    seed: int = 0,
    spacing: Sequence[float] | None = None,
    volume: bool = False,
    precision: float | str | None = "auto",
    multiscale: bool = False,
    mask: Any = None,
    *,
    tgv_ratio: float = DEFAULT_TGV_RATIO,
    on_stage: Callable[[Stage], object] | None = None,
) -> Any:
    """Denoise an image by minimising ``fidelity(u, f) + weight * TV_beta(u)``.

    Parameters
    ----------
    image : numpy.ndarray, PIL.Image.Image or torch.Tensor
        ``(H, W)`` or ``(H, W, C)`` array (integers are scaled to [0, 1] by their dtype's
        maximum, floats used as they are), a PIL image (its alpha is kept unchanged), or a
        float tensor ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``. Every channel of an array
        or tensor is denoised, a fourth one too: to keep an alpha channel untouched, pass a
        PIL image or split the alpha off first.
    weight : float or "auto"
        Regularisation strength lambda, > 0; with beta = 1 and ``color="channelwise"`` it means
        what it means in scikit-image's ``denoise_tv_chambolle``. ``"auto"`` chooses it by
        minimising Stein's unbiased risk estimate (:mod:`tvdenoise.auto_weight`; L2 fidelity
        only), at about 3 to 4 times the cost of one solve.
    beta : float
        Exponent on the gradient magnitude, > 0. beta < 1 is non-convex (local minimum).
    tv : {"symmetric", "isotropic", "anisotropic", "tgv", "nonlocal"}
        ``"symmetric"`` (the default) is isotropic TV averaged over the forward and the
        backward difference stencils: no bias towards one diagonal, and it scores higher than
        ``"isotropic"`` (forward differences only, scikit-image's ``denoise_tv_chambolle``
        model) on every benchmark row (benchmarks/RESULTS.md), at about twice the time per
        iteration. ``"anisotropic"`` sums the absolute differences. ``"tgv"`` is second-order
        total generalised variation (affine regions cost nothing: no staircasing on smooth
        gradients), ``weight`` its first-order weight alpha1 and ``tgv_ratio * weight`` its
        second-order one (:mod:`tvdenoise.solvers.tgv`). ``"nonlocal"`` is TV on a graph
        linking each pixel to its most similar pixels, built from the default model's result
        at the weight (:mod:`tvdenoise.nonlocal_graph`; 2-D images). Both need beta = 1 and
        are solved exactly with a certified gap (solver ``auto`` or ``chambolle_pock``).
    color : {"vectorial", "channelwise"}
    fidelity : {"l2", "l1", "poisson"}
        Data term: ``"l2"`` is ``1/2 ||u - f||^2`` (Gaussian noise); ``"l1"`` is
        ``||u - f||_1`` (impulse, salt-and-pepper noise); ``"poisson"`` is the Kullback-Leibler
        divergence ``sum(u - f log u)`` up to a constant (photon counts; needs ``f >= 0``, the
        result is >= 0). All three are solved exactly for beta = 1.
    solver : {"auto", "chambolle_pock", "accelerated", "gd", "adam"}
    max_iter : int
        Iteration cap.
    tol : float
        Stop when the relative primal-dual gap (beta = 1) or its certified bound (beta > 1) or
        the stationarity measure (beta < 1) falls to ``tol``.
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; by default the input tensor's device
        (CPU for arrays and PIL images).
    dtype : torch.dtype
        Working precision, float32 (default) or float64.
    eps : float, optional
        Smoothing of the TV term. By default 0 for beta >= 2 and for beta = 1 with the exact
        solvers (``auto``, ``chambolle_pock``); otherwise 1e-3 for 1 <= beta < 2 and 1e-2 for
        beta < 1, so descent methods see a smooth energy.
    callback : callable, optional
        Called with a :class:`tvdenoise.solvers.IterationInfo` at every evaluated iteration
        of the solve (its ``gap`` and ``target`` measure the way to the stop).
    check_every : int, optional
        Evaluate energy and gap (and call ``callback``) every this many iterations; by
        default 25 for the fused ``rof`` kernel (its check costs about two iterations) and
        10 for the other solvers.
    time_limit : float, optional
        Stop after about this many seconds.
    return_record : bool
        Also return the :class:`tvdenoise.solvers.SolveRecord`. With ``weight="auto"`` it is
        an :class:`tvdenoise.auto_weight.AutoWeightRecord` of the final solve, whose
        ``weight_choice`` (:class:`tvdenoise.WeightChoice`) holds the chosen weight, the
        sigma used, whether it was estimated, and the trials.
    progress : bool
        Show a ``tqdm`` progress bar of iterations (a widget in Jupyter, text on stderr
        elsewhere), updated every ``check_every`` iterations with the gap. Off by default.
    sigma : float, optional
        With ``weight="auto"``: the Gaussian noise level on the image's [0, 1] scale, instead
        of estimating it with :func:`tvdenoise.estimate_sigma`.
    seed : int
        With ``weight="auto"``: seed of the risk estimate's random probe (same seed, same
        result).
    spacing : sequence of float, optional
        Grid step per spatial axis, ``(dy, dx)`` for images or ``(dz, dy, dx)`` for volumes
        (for a z-stack whose z-step is larger than its pixel size); differences are divided by
        it. Three steps imply ``volume=True``.
    volume : bool
        Treat the input as a volume (3-D differences): a ``(D, H, W)`` or ``(D, H, W, C)``
        array, or a ``(D, H, W)``, ``(C, D, H, W)`` or ``(N, C, D, H, W)`` tensor (5-D tensors
        are always volumes).
    precision : float, "auto" or None
        The step between output values on the [0, 1] scale (1/255 for 8-bit output). With the
        L2 fidelity the exact solvers also stop when their certified root-mean-square distance
        to the exact minimiser, ``sqrt(2 gap / n)``, is at most half of it: closer than the
        rounding to that step can show (the record's ``stop_reason`` is then
        ``"precision"`` and its ``gap`` the relative gap reached). ``"auto"`` (default): the
        step of an integer array's dtype (1/255 for ``uint8``, 1/65535 for ``uint16``) or of
        a PIL image's mode; None for floats and tensors, which stop on ``tol`` alone.
    multiscale : bool
        For the L2 fidelity, beta = 1 and 2-D images of half a megapixel or more, start the
        exact solvers from the solutions of coarser copies of the problem, primal and dual
        (:mod:`tvdenoise.solvers.multiscale`; the same minimiser, certified by the fine gap).
        Off by default: with the precision stop on 4 and 12 MP photos it saved 3 to 20 % of
        the work but no wall time, and cost up to 0.06 dB (benchmarks/RESULTS.md).
    mask : array or tensor, optional
        How much to trust each value, in the image's layout without channels (``(H, W)``,
        ``(D, H, W)`` for volumes) or with them: 1 (or True, or an integer mask's maximum)
        trusts the data fully, 0 ignores it, so TV fills the value in from its neighbours
        (:class:`tvdenoise.fidelity.MaskedL2Fidelity`; weights are floored at
        :data:`tvdenoise.fidelity.MASK_FLOOR`). The image may hold NaN or infinite values
        where the mask is 0; they are replaced by the mean of the unmasked values before the
        solve, and the output holds TV's fill there. L2 fidelity only; with
        ``weight="auto"`` the weight is chosen on the image with the holes so filled, then
        the masked problem is solved with it.
    on_stage : callable, optional
        Called with a :class:`tvdenoise.progress.Stage` as each stage begins: with
        ``weight="auto"`` "estimating noise" (unless ``sigma`` is given), then "choosing the
        weight" at each trial of the search; "solving" before the solve whose iterations
        ``callback`` sees (for ``tv="nonlocal"`` also before its pilot solve, detail
        "pilot"). For a progress display; an exception it raises ends the call.

    Returns
    -------
    Same type, layout and float dtype as ``image`` (integer arrays come back in their dtype),
    and the record when ``return_record`` is true.

    Raises
    ------
    InvalidParameterError
        For an unsupported image type or shape, or an out-of-range option.

    References
    ----------
    L. Rudin, S. Osher, E. Fatemi, Physica D 60 (1992); A. Chambolle, T. Pock, J. Math.
    Imaging Vis. 40 (2011).

    Examples
    --------
    >>> import numpy as np
    >>> noisy = np.random.default_rng(0).normal(0.5, 0.1, (32, 32))
    >>> clean = denoise(noisy, weight=0.1)
    >>> bool(clean.std() < noisy.std())
    True
    """
    auto = isinstance(weight, str) and weight == "auto"
    if sigma is not None and not auto:
        raise InvalidParameterError(f"sigma is only used with weight='auto', got weight={weight!r}")
    options = _validate.validate_options(
        weight=1.0 if auto else weight,
        beta=beta,
        tv=tv,
        color=color,
        fidelity=fidelity,
        solver=solver,
        max_iter=max_iter,
        tol=tol,
        eps=eps,
    )
    tgv_ratio = _validate.positive("tgv_ratio", tgv_ratio)
    if check_every is not None:
        check_every = _validate.positive_int("check_every", check_every)
    if time_limit is not None:
        time_limit = _validate.positive("time_limit", time_limit)
    if dtype not in (torch.float32, torch.float64):
        raise InvalidParameterError(f"dtype must be torch.float32 or torch.float64, got {dtype}")

    step = output_step(image) if precision == "auto" else precision
    if step is not None:
        step = _validate.positive("precision", step)
    steps = _validate.spacing("spacing", spacing)
    volume = volume or (steps is not None and len(steps) == 3)
    batch, back = to_batch(image, volume)
    steps = _validate.spacing("spacing", steps, batch.dim() - 2)
    if auto and batch.dim() != 4:
        raise InvalidParameterError(
            "weight='auto' chooses weights for 2-D images; give a numeric weight for volumes"
        )
    if options["tv"] == "nonlocal" and batch.dim() != 4:
        raise InvalidParameterError("tv='nonlocal' is for 2-D images; use another tv for volumes")
    weights = None
    if mask is not None:
        if options["fidelity"] != "l2":
            raise InvalidParameterError(
                f"mask works with fidelity l2 only, got fidelity {options['fidelity']!r}"
            )
        if options["tv"] in ("tgv", "nonlocal"):
            raise InvalidParameterError(
                f"mask works with tv symmetric, isotropic or anisotropic, got tv {options['tv']!r}"
            )
        weights = _mask_weights(mask, batch)
        batch = _fill_masked(batch, weights)
    elif not _all_finite(batch):
        raise InvalidParameterError("image contains NaN or infinite values")
    if options["fidelity"] == "poisson" and bool((batch < 0).any()):
        raise InvalidParameterError(
            "fidelity poisson needs counts >= 0, got an image with negative values"
        )
    target = batch.device if device is None else resolve_device(device)
    f = batch.to(device=target, dtype=dtype)
    problem = Problem(
        f,
        options["weight"],
        options["beta"],
        options["tv"],
        options["color"],
        get_fidelity(options["fidelity"]),
        options["eps"],
        steps,
        tgv_ratio=tgv_ratio,
    )
    init = dual = None
    pilot_choice: WeightChoice | None = None
    if options["tv"] == "nonlocal":
        with torch.no_grad():
            problem, pilot_choice = _with_graph(
                problem,
                auto,
                sigma,
                options,
                seed=seed,
                time_limit=time_limit,
                on_stage=on_stage,
            )
    if auto:
        with torch.no_grad():
            choice, init, dual = search_weight(
                problem,
                sigma if pilot_choice is None else pilot_choice.sigma,
                solver=options["solver"],
                max_iter=options["max_iter"],
                tol=options["tol"],
                seed=seed,
                time_limit=time_limit,
                on_stage=on_stage,
            )
        if pilot_choice is not None:
            choice = replace(
                choice,
                sigma_estimated=pilot_choice.sigma_estimated,
                iterations=choice.iterations + pilot_choice.iterations,
                seconds=choice.seconds + pilot_choice.seconds,
                sigma_seconds=pilot_choice.sigma_seconds,
            )
        if _CHOICE_ONLY.get():
            return choice
        problem = replace(problem, weight=choice.weight)
    if weights is not None:
        problem = replace(
            problem, fidelity=MaskedL2Fidelity(weights.to(device=target, dtype=dtype))
        )
    autograd = options["solver"] in ("gd", "adam")
    # The bar is closed on the way out, also when the solver raises (no stale widget).
    bar = _progress_bar(options["max_iter"]) if progress else None
    if bar is not None:
        callback = _with_bar(bar, callback)
    if on_stage is not None:
        on_stage(Stage(SOLVING))
    with torch.enable_grad() if autograd else torch.no_grad(), _closing(bar):
        u, record = solve(
            problem,
            options["solver"],
            max_iter=options["max_iter"],
            tol=options["tol"],
            callback=callback,
            check_every=check_every,
            time_limit=time_limit,
            init=init,
            dual=dual,
            distance=None if step is None else PRECISION_FRACTION * step,
            multiscale=multiscale,
        )
    if auto:
        record = with_choice(record, choice)
    result = back(u)
    return (result, record) if return_record else result


def _with_graph(
    problem: Problem,
    auto: bool,
    sigma: float | None,
    options: dict[str, Any],
    *,
    seed: int,
    time_limit: float | None,
    on_stage: Callable[[Stage], object] | None = None,
) -> tuple[Problem, WeightChoice | None]:
    """The nonlocal problem with its graph, built on a pilot: the default model (symmetric TV,
    the same colour and fidelity) solved to ``SEARCH_TOL`` at the given weight, or with
    ``auto`` at its own automatic weight. The graph's weight scale follows the pilot's weight
    (:data:`tvdenoise.nonlocal_graph.DEFAULT_SCALE` times it, over sqrt(C) for vectorial
    colour). With ``auto``, also the pilot's weight choice; its time and iterations (search,
    pilot solve and graph) count as the nonlocal choice's."""
    started = time.perf_counter()
    pilot_problem = replace(problem, tv="symmetric", graph=None)
    solve_options: dict[str, Any] = dict(
        max_iter=options["max_iter"], tol=max(options["tol"], SEARCH_TOL), time_limit=time_limit
    )
    pilot_choice = None
    init = dual = None
    if auto:
        pilot_choice, init, dual = search_weight(
            pilot_problem,
            sigma,
            max_iter=options["max_iter"],
            seed=seed,
            time_limit=time_limit,
            on_stage=on_stage,
        )
        pilot_problem = replace(pilot_problem, weight=pilot_choice.weight)
    if on_stage is not None:
        on_stage(Stage(SOLVING, "pilot"))
    pilot, record = solve(pilot_problem, "auto", init=init, dual=dual, **solve_options)
    channels = problem.f.shape[1] if problem.color == "vectorial" else 1
    scale = DEFAULT_SCALE * pilot_problem.weight / math.sqrt(channels)
    graph = build_graph(pilot, scale=scale)
    if pilot_choice is not None:
        pilot_choice = replace(
            pilot_choice,
            iterations=pilot_choice.iterations + record.iterations,
            seconds=time.perf_counter() - started,
        )
    return replace(problem, graph=graph), pilot_choice


def choose_weight(
    image: Any,
    sigma: float | None = None,
    *,
    beta: float = 1.0,
    tv: str = "symmetric",
    color: str = "vectorial",
    fidelity: str = "l2",
    solver: str = "auto",
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    eps: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> WeightChoice:
    """Choose the TV weight for ``image`` by minimising SURE.

    The same as ``denoise(image, weight="auto", return_record=True)[1].weight_choice``,
    without the final solve at the chosen weight. One weight is chosen for a whole batch.

    Parameters
    ----------
    image : numpy.ndarray, PIL.Image.Image or torch.Tensor
        As for :func:`tvdenoise.denoise`.
    sigma : float, optional
        Standard deviation of the Gaussian noise on the image's [0, 1] scale (25/255 for
        sigma 25 in 8-bit units); estimated with :func:`tvdenoise.estimate_sigma` if omitted.
    beta, tv, color, fidelity, solver, max_iter, tol, eps, device, dtype
        As for :func:`tvdenoise.denoise`; ``fidelity`` must be ``"l2"``.
    seed : int
        Seed of the Monte-Carlo probe; the same seed gives the same weight.

    Returns
    -------
    WeightChoice

    Raises
    ------
    InvalidParameterError
        For a fidelity other than ``"l2"``, ``sigma <= 0``, a noise-free image, or any
        option :func:`tvdenoise.denoise` refuses.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = np.kron(rng.random((4, 4)), np.ones((16, 16)))
    >>> choice = choose_weight(clean + 0.1 * rng.standard_normal(clean.shape), sigma=0.1)
    >>> 0.03 < choice.weight < 0.3
    True
    """
    with choice_only():
        choice: WeightChoice = denoise(
            image,
            weight="auto",
            sigma=sigma,
            beta=beta,
            tv=tv,
            color=color,
            fidelity=fidelity,
            solver=solver,
            max_iter=max_iter,
            tol=tol,
            eps=eps,
            seed=seed,
            device=device,
            dtype=dtype,
        )
    return choice


@contextlib.contextmanager
def choice_only() -> Any:
    """Within it, ``denoise(..., weight="auto")`` returns its :class:`WeightChoice` and skips
    the final solve (in this thread or task)."""
    token = _CHOICE_ONLY.set(True)
    try:
        yield
    finally:
        _CHOICE_ONLY.reset(token)


def _mask_weights(mask: Any, batch: torch.Tensor) -> torch.Tensor:
    """The mask as data weights in [0, 1] in the batch's layout, ``(N or 1, C or 1,
    *spatial)``. Arrays are ``spatial`` or ``(*spatial, C)`` (channels last, as images);
    tensors ``spatial``, ``(C, *spatial)`` or ``(N, C, *spatial)`` (as tensor images)."""
    tensor = isinstance(mask, torch.Tensor)
    array = mask.detach().cpu().numpy() if tensor else np.asarray(mask)
    if array.dtype.kind == "u":
        values = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    elif array.dtype.kind in "bi":
        values = (array != 0).astype(np.float32)
    elif array.dtype.kind == "f":
        values = array.astype(np.float32)
    else:
        raise InvalidParameterError(f"mask must be numeric or boolean, got dtype {array.dtype}")
    spatial = tuple(batch.shape[2:])
    count, channels = batch.shape[:2]
    shaped: np.ndarray | None = None
    if values.shape == spatial:
        shaped = values[None, None]
    elif not tensor and values.ndim == len(spatial) + 1 and values.shape[:-1] == spatial:
        shaped = np.moveaxis(values, -1, 0)[None]
    elif tensor and values.ndim == len(spatial) + 1 and values.shape[1:] == spatial:
        shaped = values[None]
    elif tensor and values.ndim == len(spatial) + 2 and values.shape[2:] == spatial:
        shaped = values
    if shaped is None or shaped.shape[0] not in (1, count) or shaped.shape[1] not in (1, channels):
        raise InvalidParameterError(
            f"mask of shape {tuple(array.shape)} does not fit the image "
            f"({'x'.join(map(str, spatial))} pixels, {channels} channels)"
        )
    if not np.isfinite(shaped).all() or shaped.min() < 0 or shaped.max() > 1:
        raise InvalidParameterError("mask values must be in [0, 1] (or boolean)")
    return torch.from_numpy(np.ascontiguousarray(shaped))


def _fill_masked(batch: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Refuse non-finite values where the mask trusts the data; replace the values the mask
    ignores (weight 0, NaN) by a smooth fill from the trusted ones (:func:`_push_pull`), the
    solver's start and the data its floor weight pulls to."""
    finite = torch.isfinite(batch)
    if bool((~finite & (weights > 0)).any()):
        raise InvalidParameterError(
            "image contains NaN or infinite values where the mask is > 0 (mask them with 0)"
        )
    known = (weights > 0).expand_as(batch) & finite
    if bool(known.all()):
        return batch
    values = torch.where(known, batch, 0.0).double()
    filled = _push_pull(values, known.double())
    return torch.where(known, batch, filled.to(batch.dtype))


def _push_pull(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill unknown values (``known`` 0) from the known ones, coarse to fine: average the
    known values over 2x2 (2x2x2) blocks until every block has one, then interpolate back
    up, keeping known values (the push-pull scheme of Gortler et al., "The Lumigraph",
    SIGGRAPH 1996). Within a few iterations of the TV fill, and far better than a constant."""
    spatial = values.shape[2:]
    if bool(known.all()) or max(spatial) <= 1:
        total = known.sum(dim=tuple(range(2, values.dim())), keepdim=True)
        mean = values.sum(dim=tuple(range(2, values.dim())), keepdim=True) / total.clamp(min=1)
        return torch.where(known > 0, values, mean.expand_as(values))
    pool = torch.nn.functional.avg_pool2d if values.dim() == 4 else torch.nn.functional.avg_pool3d
    kernel = tuple(2 if extent > 1 else 1 for extent in spatial)  # axes of length 1 stay
    coarse_weight = pool(known, kernel, ceil_mode=True)
    coarse = pool(values * known, kernel, ceil_mode=True) / coarse_weight.clamp(min=1e-300)
    coarse = _push_pull(coarse, (coarse_weight > 0).double())
    mode = "bilinear" if values.dim() == 4 else "trilinear"
    fine = torch.nn.functional.interpolate(coarse, size=spatial, mode=mode, align_corners=False)
    return torch.where(known > 0, values, fine)


def _all_finite(values: torch.Tensor) -> bool:
    """Whether every value is finite. A finite sum proves it (NaN and infinities propagate)
    in one reduction instead of a boolean copy of the image; only when the sum is not finite
    (a non-finite value, or an overflow of large values) are the values checked one by one."""
    return bool(torch.isfinite(values.sum())) or bool(torch.isfinite(values).all())


def output_step(image: Any) -> float | None:
    """The step between an image's values on the [0, 1] scale: ``1 / max`` of an integer
    array's dtype (1/255 for ``uint8``), 1/255 for 8-bit PIL modes and 1/65535 for 16-bit
    ones; None for float arrays, float PIL modes and tensors."""
    if isinstance(image, np.ndarray):
        kind = image.dtype.kind
        return 1.0 / float(np.iinfo(image.dtype).max) if kind in "ui" else None
    if isinstance(image, torch.Tensor):
        return None
    mode = getattr(image, "mode", None)
    if mode is None or mode == "F":
        return None
    if mode.startswith("I"):
        return 1.0 / 65535.0 if mode.startswith("I;16") else 1.0 / float(2**31 - 1)
    return 1.0 / 255.0


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="it", desc="denoise", leave=False)


def _closing(bar: Any) -> Any:
    return contextlib.nullcontext() if bar is None else bar


def _with_bar(bar: Any, callback: Callback | None) -> Callback:
    """``callback`` that also moves ``bar`` to the reported iteration."""

    def report(info: IterationInfo) -> None:
        bar.update(info.iteration - bar.n)
        if info.gap is not None:
            bar.set_postfix(gap=f"{info.gap:.1e}", refresh=False)
        if callback is not None:
            callback(info)

    return report
