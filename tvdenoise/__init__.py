"""tvdenoise: total-variation (ROF) image denoising, a command-line tool and a PyTorch library.

>>> import tvdenoise as tvd
>>> tvd.total_variation  # doctest: +ELLIPSIS
<function total_variation at ...>

The public names are loaded on first use, so ``tvdenoise --help`` never pays for importing
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_LAZY = {
    "total_variation": "tvdenoise.tv",
    "TVLoss": "tvdenoise.tv",
    "denoise": "tvdenoise.denoising",
    "load_image": "tvdenoise.image_io",
    "save_image": "tvdenoise.image_io",
    "ImageFile": "tvdenoise.image_io",
    "SolveRecord": "tvdenoise.solvers.base",
    "IterationInfo": "tvdenoise.solvers.base",
    "TVDenoiseError": "tvdenoise.errors",
    "InvalidParameterError": "tvdenoise.errors",
    "ImageReadError": "tvdenoise.errors",
    "ImageWriteError": "tvdenoise.errors",
    "ConfigError": "tvdenoise.errors",
    "ImageRecord": "tvdenoise.report",
    "RunReport": "tvdenoise.report",
    "write_report": "tvdenoise.report",
    "estimate_sigma": "tvdenoise.noise",
    "choose_weight": "tvdenoise.denoising",
    "WeightChoice": "tvdenoise.auto_weight",
}

__all__ = [
    "ConfigError",
    "ImageFile",
    "ImageReadError",
    "ImageRecord",
    "ImageWriteError",
    "InvalidParameterError",
    "IterationInfo",
    "RunReport",
    "SolveRecord",
    "TVDenoiseError",
    "TVLoss",
    "WeightChoice",
    "__version__",
    "choose_weight",
    "denoise",
    "estimate_sigma",
    "load_image",
    "save_image",
    "total_variation",
    "write_report",
]

if TYPE_CHECKING:
    from .auto_weight import WeightChoice
    from .denoising import choose_weight, denoise
    from .errors import (
        ConfigError,
        ImageReadError,
        ImageWriteError,
        InvalidParameterError,
        TVDenoiseError,
    )
    from .image_io import ImageFile, load_image, save_image
    from .noise import estimate_sigma
    from .report import ImageRecord, RunReport, write_report
    from .solvers.base import IterationInfo, SolveRecord
    from .tv import TVLoss, total_variation


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tvdenoise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
