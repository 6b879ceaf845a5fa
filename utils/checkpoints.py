"""Checkpoint I/O: the one module that writes and reads snapshots.

A snapshot is self-describing (docs/training.md): ``format_version, arch, num_classes, in_channels,
image_size, dataset, epoch, args, model_state_dict, metrics`` and, when written by training,
optimizer/scheduler/RNG state. Files are written atomically and read with
``torch.load(weights_only=True)``, so a file from a stranger cannot run code. Plain
``state_dict`` files and the reference tool's ``{"model_state_dict": ...}`` files load too.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from utils.errors import UserError
from utils.fileio import atomic_torch_save
from utils.version import TOOL_VERSION

FORMAT_VERSION = 1
LAST_CHECKPOINT = "last.pt"


def snapshot_filename(arch: str, epoch: int) -> str:
    """Names sort by epoch: ``lenet_epoch0007.pt`` holds the weights after 7 completed epochs."""
    return f"{arch}_epoch{epoch:04d}.pt"


def save_snapshot(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format and tool versions) atomically."""
    return atomic_torch_save(path, {"format_version": FORMAT_VERSION, "tool_version": TOOL_VERSION, **payload})


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a snapshot safely; normalize plain state dicts to ``{"model_state_dict": ...}``. A
    ``.safetensors`` file is read as a plain state dict (:mod:`utils.weights`).

    Any problem (missing, empty, truncated, not a checkpoint, would execute code) is a
    :class:`UserError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"snapshot {path} does not exist; check the path")
    if path.stat().st_size == 0:
        raise UserError(f"snapshot {path} is empty; it was not written completely, use another one")
    if path.suffix.lower() == ".safetensors":  # tensors only: a plain state dict, which cannot run code either
        from utils.weights import read_safetensors

        return _normalize(read_safetensors(path), path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(
            f"refusing to load {path}: it contains objects other than tensors and plain data "
            f"(weights_only load failed); only load snapshots you trust, re-saved as plain state dicts"
        ) from err
    except Exception as err:
        raise UserError(f"cannot read snapshot {path} ({load_failure(err)}): the file is truncated or not a "
                        "checkpoint; use another one") from err
    return _normalize(obj, path)


# PyTorch's reader prefixes its cause and appends generic advice ("This is an internal miniz error...").
_READER_PREFIX = "PytorchStreamReader failed reading zip archive: "


def load_failure(err: Exception) -> str:
    """The cause of a failed ``torch.load`` in a few words: the first sentence of its first line, without
    the reader's prefix (``failed finding central directory``, ``not a ZIP archive``)."""
    text = str(err).strip()
    if not text:
        return type(err).__name__
    cause = text.splitlines()[0].split(". ")[0].rstrip(".")
    cause = cause.removeprefix(_READER_PREFIX)
    return cause if len(cause) <= 80 else cause[:77] + "..."


def is_reference_file(checkpoint: dict) -> bool:
    """A loaded file without our self-description: the reference tool's (a ``.tar`` with ``epoch``,
    ``model_state_dict``, ``optimizer_state_dict``, or a plain state dict)."""
    return "arch" not in checkpoint


def _normalize(obj: Any, path: Path) -> dict[str, Any]:
    if isinstance(obj, dict) and "model_state_dict" in obj:
        return dict(obj)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"model_state_dict": _strip_prefix(obj)}
    raise UserError(f"{path} is not a model snapshot (no model_state_dict and not a state dict)")


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` prefixes left by DataParallel/DDP wrappers."""
    if all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return state


def _strip_inner_wrappers(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` path components that the model does not have: the reference wraps only
    ``features`` in DataParallel on several GPUs, so its files hold ``features.module.0.weight``."""
    if set(state) == expected or any(".module." not in f".{key}" for key in set(state) - expected):
        return state
    stripped = {re.sub(r"(^|\.)module\.", r"\1", key): value for key, value in state.items()}
    return stripped if set(stripped) == expected else state


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Load weights strictly, turning a shape or key mismatch, or a non-finite value, into a clear
    :class:`UserError`. Wrapper prefixes (``module.``, the reference's ``features.module.``) are dropped."""
    state = _strip_inner_wrappers(_strip_prefix(state), set(model.state_dict()))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = str(err).strip().splitlines()
        summary = detail[1].strip() if len(detail) > 1 else detail[0]
        raise UserError(
            f"snapshot {source} does not fit the model ({summary}); check --arch, --dataset and "
            "--subsample-classes against the run that wrote it"
        ) from err
    check_finite(state, source=source)


def check_finite(state: dict[str, torch.Tensor], *, source: str) -> None:
    """A NaN or infinite weight (or buffer) is an error naming the tensor: every analysis of such a
    snapshot would be NaN, and training from it diverges at the first step."""
    broken = [(key, int((~torch.isfinite(value)).sum())) for key, value in state.items()
              if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if broken:
        key, count = broken[0]
        others = f" (and {len(broken) - 1} more tensor(s))" if len(broken) > 1 else ""
        raise UserError(
            f"snapshot {source} has non-finite values (NaN or inf) in {key}: {count} of {state[key].numel()}"
            f"{others}; training diverged or the file is corrupt: use an earlier snapshot"
        )


_REFERENCE_EPOCH = re.compile(r"_(\d+)\.(?:tar|pt|pth|safetensors)$")


def reference_epoch(path: str | os.PathLike) -> int | None:
    """Epoch of a reference-tool snapshot from its name: ``*_init*`` -> 0, ``*_<e>.tar`` -> e + 1."""
    name = os.path.basename(str(path))
    if "_init" in name:
        return 0
    match = _REFERENCE_EPOCH.search(name)
    return int(match.group(1)) + 1 if match and name.endswith(".tar") else (int(match.group(1)) if match else None)


_OUR_SNAPSHOT = re.compile(r"_epoch(\d+)\.pt$")


def one_per_epoch(paths: list[Path], epoch_of=None) -> list[Path]:
    """``paths`` with one file per epoch, in their order: a reference run's last ``<arch>_<E-1>.tar``
    and its final ``<arch>_<E>.pt`` hold the same E epochs (the same weights), so the ``.tar`` is
    left out, with a notice naming it. Files of unknown epoch (``epoch_of`` None) all stay."""
    from utils.notices import notice

    epoch_of = epoch_of or known_epoch
    epochs = {path: epoch_of(path) for path in paths}
    chosen: dict[int, Path] = {}
    for path, epoch in epochs.items():
        if epoch is not None and (epoch not in chosen or (chosen[epoch].suffix == ".tar" and path.suffix != ".tar")):
            chosen[epoch] = path
    kept = [path for path in paths if epochs[path] is None or chosen[epochs[path]] == path]
    for path in paths:
        if path not in kept:
            name, epoch = chosen[epochs[path]].name, epochs[path]
            notice(f"same-epoch:{path}", "%s and %s both hold epoch %s (labelled by completed epochs); using %s, "
                   "leaving out %s (--layout reference keeps the reference's labels, and both)",
                   path.name, name, epoch, name, path.name)
    return kept


def resolve_snapshots(spec: str | os.PathLike, *, dedupe: bool = True) -> list[Path]:
    """Snapshot files named by ``spec``: a file, a run directory (its epoch snapshots in epoch
    order; ``last.pt`` excluded) or a glob pattern. No match is a :class:`UserError`. With
    ``dedupe``, files holding the same epoch count once (:func:`one_per_epoch`)."""
    paths = _resolve_snapshots(spec)
    return one_per_epoch(paths) if dedupe and len(paths) > 1 else paths


def _resolve_snapshots(spec: str | os.PathLike) -> list[Path]:
    import glob

    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        ours = [p for p in path.iterdir() if _OUR_SNAPSHOT.search(p.name)]
        if ours:
            return sorted(ours, key=lambda p: int(_OUR_SNAPSHOT.search(p.name).group(1)))
        theirs = [p for p in path.iterdir() if p.suffix in (".pt", ".tar", ".pth", ".safetensors") and p.name != LAST_CHECKPOINT]
        if theirs:
            return sorted(theirs, key=lambda p: (reference_epoch(p) is None, reference_epoch(p) or 0, p.name))
        raise UserError(f"run directory {path} holds no snapshots (*_epochNNNN.pt); check the path")
    matches = sorted(Path(m) for m in glob.glob(str(spec)) if Path(m).is_file())
    if not matches:
        raise UserError(f"no snapshot matches {spec}; give a snapshot file, a run directory or a glob")
    return sorted(matches, key=lambda p: (snapshot_sort_epoch(p), p.name))


def known_epoch(path: Path) -> int | None:
    """Completed epochs of a snapshot by its name (ours, or the reference's), None when unknown."""
    match = _OUR_SNAPSHOT.search(path.name)
    return int(match.group(1)) if match else reference_epoch(path)


def snapshot_sort_epoch(path: Path) -> int:
    epoch = known_epoch(path)
    return epoch if epoch is not None else 10**9
