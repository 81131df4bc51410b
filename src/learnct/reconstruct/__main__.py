"""``python -m learnct.reconstruct``: the ``learnct-reconstruct`` command."""

from learnct.reconstruct.cli import main

if __name__ == "__main__":
    main()
