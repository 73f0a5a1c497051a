"""``python -m layerwise ...``: the same command line as the ``layerwise`` script."""

from layerwise.cli import console

if __name__ == "__main__":
    console()
