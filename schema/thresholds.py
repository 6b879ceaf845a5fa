"""The thresholds and defaults every report states its claims with (the single-run report, the family
report and the ranking)."""
from metrics.conv_modes import DEFAULT_CONV_MODE

SIGNIFICANCE = 0.01  # a layer is biased when its sign test of mass = 0.5 has p below this
CRITICAL_DROP = 0.10  # a layer is critical when resetting it to epoch 0 costs more than this share of top-1
SPECTRA_CONV_MODE = DEFAULT_CONV_MODE  # the spectra the reports read: WeightWatcher's conv slices
