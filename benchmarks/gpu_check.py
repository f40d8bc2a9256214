"""Thin script over :mod:`savi_plugin.bench.gpu` (also `savi bench`); see benchmarks/README.md and `--help`."""

import os
import sys

# Run from a source checkout without installing: make this checkout's savi_plugin importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from savi_plugin.bench.gpu import main

if __name__ == "__main__":
    sys.exit(main())
