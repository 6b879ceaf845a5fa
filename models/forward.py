"""One forward pass with hooks: the one way the suite looks inside a model without training it.

Layer enumeration, the BatchNorm that follows a layer, the default penultimate representation and
the input-size check each need a single forward pass with some hooks registered. This runs it in
eval mode without gradients, then removes the hooks and restores the model's mode, whatever happens.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

Hook = tuple[nn.Module, Callable]  # (module, hook function)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def hooked_forward(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[int],
    *,
    forward_hooks: Iterable[Hook] = (),
    pre_hooks: Iterable[Hook] = (),
    batch: int = 1,
) -> torch.Tensor:
    """``model(inputs)`` with the hooks registered; returns the output.

    ``inputs`` is a batch, or one sample's shape (e.g. ``(3, 32, 32)``): then a zero batch of
    ``batch`` samples on the model's device.
    """
    if not isinstance(inputs, torch.Tensor):
        inputs = torch.zeros(batch, *inputs, device=model_device(model))
    handles = [module.register_forward_hook(hook) for module, hook in forward_hooks]
    handles += [module.register_forward_pre_hook(hook) for module, hook in pre_hooks]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
