"""``python -m learnct.reconstruct``: the ``learnct-reconstruct`` command."""

import sys

from learnct.reconstruct.cli import main

if __name__ == "__main__":
    sys.exit(main())
