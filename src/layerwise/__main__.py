"""``python -m layerwise ...``: the same command line as the ``layerwise`` script."""

from layerwise.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
