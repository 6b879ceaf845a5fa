"""How a conv layer's weights become matrices for their spectrum (``metrics/spectral.py``): apart, so
that the result schema and the CLIs' parsers read the modes without importing torch."""
from __future__ import annotations

CONV_MODES = ("slices", "flatten")
DEFAULT_CONV_MODE = "slices"  # WeightWatcher's: the mode of the tidy table, the comparisons and the reports
