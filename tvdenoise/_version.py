"""The package version (its own module, so modules that print it need not import the package
root, whose lazy public names would point back at them)."""

__version__ = "0.1.0"
