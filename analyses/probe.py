"""The probe set of DSE and HSIC: a fixed draw of validation samples (else test samples).

``--dse-samples`` samples drawn with ``--dse-seed``: the same samples at every snapshot of a run,
in train.py and in compute_dse.py, so their numbers agree.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from utils.errors import UserError


def probe_positions(size: int, samples: int, seed: int) -> np.ndarray:
    """Positions (ascending) of ``samples`` of ``size`` drawn without replacement by ``default_rng(seed)``;
    every position when ``samples >= size``."""
    if samples >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, size=samples, replace=False))


def probe_split(data, samples: int, seed: int):
    """The probe: a fixed subset of ``data.val`` (a ``datasets.DataBundle``), else of ``data.test``."""
    split = data.val if data.val is not None else data.test
    if len(split) < 2:
        raise UserError(f"the {split.name} split has {len(split)} sample(s); DSE needs at least 2")
    positions = probe_positions(len(split), samples, seed)
    return dataclasses.replace(split, indices=split.indices[positions], targets=split.targets[positions],
                               _device_images={})


def probe_record(probe, seed: int) -> dict:
    """Which samples were measured: the split, their number, the seed of the draw and their indices
    into the dataset (summaries keep all but the indices)."""
    return {"split": probe.name, "size": len(probe), "seed": seed, "indices": [int(i) for i in probe.indices]}
