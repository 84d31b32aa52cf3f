"""File input and output beside the maths: what tvdenoise writes to disk, and how.

The submodules import neither torch nor the maths (the import contracts in pyproject.toml
check it); this package file imports nothing, so ``tvdenoise --help`` pays for none of them.
"""
