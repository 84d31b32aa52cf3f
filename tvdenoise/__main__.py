"""``python -m tvdenoise``: the same as the ``tvdenoise`` command."""

from tvdenoise.cli import main

if __name__ == "__main__":
    main()
