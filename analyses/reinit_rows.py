"""Where the re-initialization sweep's replacement parameters come from: one row per checkpoint
named by ``--inits-from`` (a list file, a run directory, a snapshot or a glob), plus ``--rand``'s
fresh initializations, drawn from a seed stream that never coincides with the run's own init.
"""
from __future__ import annotations

import glob
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from analyses.loading import load_snapshot_model
from analyses.subject import Subject
from metrics.reinit import ResetRow
from models.init import DEFAULT as DEFAULT_CONV_INIT
from models.init import apply_conv_init, conv_init_of
from models.registry import get_model, model_options
from utils.checkpoints import one_per_epoch, resolve_snapshots, snapshot_sort_epoch
from utils.errors import UserError

logger = logging.getLogger(__name__)

RAND_KEY = "rand"
SNAPSHOT_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt", ".safetensors")
RAND_STREAM = 190201996  # arXiv 1902.01996: keeps re-randomizations apart from the run's own init


@dataclass(frozen=True)
class RowSource:
    """One heatmap row: its JSON key, its tensors and where they came from."""

    key: str
    source: str  # "snapshot" or "rand"
    row: ResetRow
    epoch: int | None = None
    path: Path | None = None
    seed: int | None = None


def init_rows(spec: str, subject: Subject, keep: set[str], *, skip_missing: bool,
              reference_order: bool = False) -> list[RowSource]:
    """One row per --inits-from snapshot, in epoch order (``reference_order``: in the order named, as
    the reference does), keeping the tensors of the ``keep`` modules. Two files of one epoch give one
    row (:func:`utils.checkpoints.one_per_epoch`), except in the reference's order."""
    if not spec:
        return []
    rows = [snapshot_row(path, subject, keep) for path in init_paths(spec, subject, skip_missing=skip_missing)]
    if reference_order:
        return unique_keys(rows)
    epochs = {row.path: row.epoch for row in rows}
    kept = set(one_per_epoch([row.path for row in rows], epoch_of=epochs.get))
    rows = [row for row in rows if row.path in kept]
    rows.sort(key=lambda row: (row.epoch is None, row.epoch if row.epoch is not None else 0))
    return unique_keys(rows)


def init_paths(spec: str, subject: Subject, *, skip_missing: bool) -> list[Path]:
    """The snapshots --inits-from names (two of one epoch included: :func:`init_rows` decides); missing
    files are one error listing them all."""
    path = Path(spec)
    if path.is_dir():
        return run_snapshots(path, subject)
    if path.is_file():
        return [path] if is_snapshot_file(path) else listed_paths(path, skip_missing=skip_missing)
    if glob.has_magic(spec):
        return resolve_snapshots(spec, dedupe=False)
    raise UserError(f"--inits-from {spec} does not exist; give a list file, a run directory, a snapshot or a glob")


def run_snapshots(run_dir: Path, subject: Subject) -> list[Path]:
    snapshots = resolve_snapshots(run_dir, dedupe=False)
    if subject.epoch is None:
        logger.warning("the loaded snapshot's epoch is unknown: using every snapshot of %s", run_dir)
        return snapshots
    kept = [path for path in snapshots if snapshot_sort_epoch(path) <= subject.epoch]
    if not kept:
        raise UserError(f"{run_dir} has no snapshot up to epoch {subject.epoch}; give another --inits-from")
    return kept


def is_snapshot_file(path: Path) -> bool:
    """A snapshot (zip or pickle) rather than the reference's plain-text list of paths."""
    if path.suffix in SNAPSHOT_SUFFIXES or zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80"  # legacy torch.save pickle


def parse_inits_list(text: str) -> list[str]:
    """The reference's list format: one path per line; blank lines (and ``#`` comments) ignored."""
    entries = (line.strip() for line in text.splitlines())
    return [entry for entry in entries if entry and not entry.startswith("#")]


def listed_paths(list_file: Path, *, skip_missing: bool) -> list[Path]:
    """Paths of a list file, as given or relative to the list's folder."""
    try:
        entries = parse_inits_list(list_file.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the list of snapshots {list_file}: {err}") from err
    found, missing = [], []
    for entry in entries:
        candidates = [Path(entry), list_file.parent / entry]
        existing = next((c for c in candidates if c.is_file()), None)
        (found if existing else missing).append(existing or Path(entry))
    if missing and not skip_missing:
        raise UserError(f"{len(missing)} snapshot(s) listed in {list_file} do not exist: "
                        f"{', '.join(map(str, missing))}; fix the list or pass --skip-missing")
    if missing:
        logger.warning("skipping %d missing snapshot(s) listed in %s: %s", len(missing), list_file,
                       ", ".join(map(str, missing)))
    if not found:
        raise UserError(f"{list_file} lists no existing snapshot")
    return found


def snapshot_row(path: Path, subject: Subject, keep: set[str]) -> RowSource:
    """A checkpoint's row; a plain file is built like the trained model (classes, input size)."""
    init = load_snapshot_model(path, like=subject)
    if init.seed is not None and subject.seed is not None and init.seed != subject.seed:
        logger.warning("%s comes from another run (seed %s, the trained model has seed %s)", path, init.seed,
                       subject.seed)
    if init.epoch is not None and subject.epoch is not None and init.epoch > subject.epoch:
        logger.warning("%s is from epoch %s, after the trained snapshot's epoch %s", path, init.epoch, subject.epoch)
    key = str(init.epoch) if init.epoch is not None else path.stem
    return RowSource(key, "snapshot", ResetRow(str(path), kept_state(init.model, keep)), init.epoch, path, init.seed)


def kept_state(model: torch.nn.Module, keep: set[str]) -> dict[str, torch.Tensor]:
    """The tensors of the ``keep`` modules only (a row of VGG19 need not hold its 100M-weight classifier),
    those of their submodules included (an attention's out_proj)."""
    return {key: value for key, value in model.state_dict().items() if _within(key, keep)}


def _within(key: str, modules: set[str]) -> bool:
    """``key`` (``a.b.weight``) is a tensor of one of ``modules`` or of a submodule of one (``a.b``, ``a``)."""
    parts = key.split(".")
    return any(".".join(parts[:end]) in modules for end in range(1, len(parts)))


def unique_keys(rows: list[RowSource]) -> list[RowSource]:
    """Rows sharing a key (files of unknown epoch) are keyed by their file stems instead."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.key] = counts.get(row.key, 0) + 1
    return [row if counts[row.key] == 1 or row.path is None else
            RowSource(row.path.stem, row.source, row.row, row.epoch, row.path, row.seed) for row in rows]


def rand_rows(subject: Subject, keep: set[str], *, repeats: int, seed: int | None) -> list[RowSource]:
    """``repeats`` fresh initializations of the architecture, reproducible from the seed (the
    snapshot's by default, else 0), drawn as the run drew its own (its ``--conv-init``)."""
    base = seed if seed is not None else (subject.seed if subject.seed is not None else 0)
    scheme, std = conv_init_of(subject.args)
    how = "" if scheme == DEFAULT_CONV_INIT else f", conv {scheme} std {std:g}"
    rows = []
    for repeat in range(repeats):
        row_seed = rand_seed(base, repeat)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(row_seed)
            model = apply_conv_init(get_model(subject.arch, subject.num_classes, subject.in_channels,
                                              image_size=subject.image_size, check_input=False,
                                              options=model_options(subject.args)), scheme, std)
        rows.append(RowSource(RAND_KEY, RAND_KEY, ResetRow(f"random init (seed {row_seed}{how})", kept_state(model, keep)),
                              seed=row_seed))
    return rows


def rand_seed(base: int, repeat: int) -> int:
    """The torch seed of re-randomization ``repeat``: derived from ``base`` on a stream of its own,
    so that it never coincides with the run's own initialization (seeded by ``base``)."""
    state = np.random.SeedSequence([RAND_STREAM, base, repeat]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1
