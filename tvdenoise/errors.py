"""The project's error hierarchy.

Every error a user can cause derives from :class:`TVDenoiseError`, so the command line can turn
it into one line on stderr and an exit code, and a script can catch one type.
"""

from __future__ import annotations


class TVDenoiseError(Exception):
    """Base class of every error tvdenoise raises on purpose."""


class InvalidParameterError(TVDenoiseError, ValueError):
    """A parameter has a value outside what is allowed (a usage error, exit code 2)."""


class ImageReadError(TVDenoiseError):
    """An input file is missing, unreadable, or not an image tvdenoise can decode."""


class ImageWriteError(TVDenoiseError):
    """An output file cannot be written (exists, no permission, disk full, bad format)."""


class ConfigError(TVDenoiseError):
    """A configuration file or preset is invalid (a usage error, exit code 2)."""


class ClusterError(TVDenoiseError):
    """A Dask cluster cannot be used: the ``dask`` extra is missing or the scheduler cannot be
    reached (a usage error, exit code 2)."""
