"""The on-disk layout shared by every CLI: ``<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``."""
from __future__ import annotations

import os


def run_subdir(*, dataset: str, arch: str, seed: int, subsample_classes: int = 0, noise: float = 0.0) -> str:
    """Relative folder of one run, as in the reference (``noise_<r>`` with ``r`` in percent)."""
    parts = [f"{dataset}_{subsample_classes}" if subsample_classes > 0 else dataset]
    if noise < 0:
        parts.append("pixel_shuffle")
    elif noise > 0:
        parts.append(f"noise_{int(round(noise * 100))}")
    parts += [arch, str(seed)]
    return os.path.join(*parts)
