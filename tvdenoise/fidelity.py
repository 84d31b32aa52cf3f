"""Data-fidelity terms: value, gradient and proximal operator.

Each fidelity measures how far a candidate ``u`` is from the noisy data ``f``; solvers combine
it with ``weight * TV_beta(u)``. All tensors are batches ``(N, C, H, W)``; values are per sample.
"""

from __future__ import annotations

from typing import Protocol

import torch

from . import _validate

__all__ = ["FIDELITIES", "Fidelity", "L2Fidelity", "get_fidelity"]


class Fidelity(Protocol):
    name: str
    strong_convexity: float

    def value(self, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor: ...

    def gradient(self, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor: ...

    def prox(self, v: torch.Tensor, f: torch.Tensor, tau: float) -> torch.Tensor: ...


class L2Fidelity:
    """Gaussian noise: ``1/2 ||u - f||^2``, per sample.

    Its proximal operator is ``argmin_u 1/2 ||u - f||^2 + 1/(2 tau) ||u - v||^2
    = (v + tau f) / (1 + tau)``; it is 1-strongly convex.
    """

    name = "l2"
    strong_convexity = 1.0

    def value(self, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        r = (u - f).double()
        return 0.5 * (r * r).sum(dim=tuple(range(1, u.dim())))

    def gradient(self, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return u - f

    def prox(self, v: torch.Tensor, f: torch.Tensor, tau: float) -> torch.Tensor:
        return (v + tau * f) / (1.0 + tau)


FIDELITIES: dict[str, Fidelity] = {"l2": L2Fidelity()}
assert tuple(FIDELITIES) == _validate.FIDELITY_NAMES


def get_fidelity(name: str) -> Fidelity:
    """The fidelity registered under ``name`` (``"l2"``)."""
    return FIDELITIES[_validate.choice("fidelity", name, _validate.FIDELITY_NAMES)]
