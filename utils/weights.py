"""Reading a state dict from a weight file, whatever format it travels in.

- ``.pt``, ``.pth``, ``.tar``, ``.bin``: ``torch.load(weights_only=True)`` through
  :func:`utils.checkpoints.load_checkpoint` (our snapshots, the reference's files, plain state dicts);
- ``.safetensors``: the ``safetensors`` package (how most shared weights now travel). The format
  holds tensors only, so reading it can never run code either.

Every problem (missing, empty, truncated, not a weight file, the package missing) is one
:class:`UserError` naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from utils.errors import UserError

SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".bin")
WEIGHT_SUFFIXES = (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX)


def is_safetensors(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() == SAFETENSORS_SUFFIX


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (on the CPU), by name."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weight file {path} does not exist; check the path")
    if path.stat().st_size == 0:
        raise UserError(f"weight file {path} is empty; it was not written completely, use another one")
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise UserError(f"{path} is a .safetensors file, and reading it needs the safetensors package: "
                        "pip install safetensors") from err
    try:
        state = load_file(str(path), device="cpu")
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read {path}: {first}; the file is truncated or not a safetensors file") from err
    if not state:
        raise UserError(f"{path} holds no tensors; it is not a model's weights")
    return state


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state dict of a weight file (see the module docstring); ``module.`` prefixes of
    DataParallel wrappers are left for :func:`utils.checkpoints.load_model_state` to drop."""
    from utils.checkpoints import load_checkpoint  # checkpoints may come to import this module

    path = Path(path)
    if is_safetensors(path):
        return read_safetensors(path)
    return load_checkpoint(path)["model_state_dict"]


def write_safetensors(path: str | os.PathLike, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` as ``.safetensors``, atomically (for users converting their files, and tests)."""
    from utils.fileio import atomic_write

    try:
        from safetensors.torch import save
    except ImportError as err:
        raise UserError("writing .safetensors files needs the safetensors package: pip install safetensors") from err
    data = save({name: tensor.detach().contiguous().cpu() for name, tensor in state.items()})
    return atomic_write(path, lambda handle: handle.write(data))
