"""Representations of a model's inputs at any named module, collected with a forward hook.

By default the representation is the penultimate one: the input of the last ``nn.Linear`` that
runs in a forward pass (found by tracing one sample, not by module order), flattened. A named
module gives its output, flattened. Batched, without gradients, on the model's device; the model
is put in eval mode and its mode restored afterwards.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from models.forward import hooked_forward, model_device
from utils.errors import UserError

INPUT, OUTPUT = "input", "output"
_LISTED_NAMES = 12  # valid names quoted in an unknown-module error


@dataclass
class Embeddings:
    """``features`` ``(N, F)`` in the model's dtype and device; ``labels`` ``(N,)`` when the batches had them."""

    features: torch.Tensor
    labels: torch.Tensor | None
    layer: str  # module name
    hook: str  # "input" (the default penultimate representation) or "output" (a named module)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])


def collect_embeddings(model: nn.Module, batches: Iterable, *, layer: str | None = None) -> Embeddings:
    """Flattened features of every sample of ``batches`` (tensors, or ``(inputs, labels)`` pairs).

    ``layer=None``: the input of the last ``nn.Linear`` of the forward pass; otherwise the output
    of the module of that name. A module that runs more than once per forward is refused.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return _collect(model, batches, layer, device)
    finally:
        model.train(was_training)


def penultimate_layer(model: nn.Module, sample: torch.Tensor) -> str:
    """Name of the last ``nn.Linear`` that runs when ``model`` sees ``sample`` (a batch)."""
    calls: list[str] = []
    hooks = [(module, lambda *_, name=name: calls.append(name))
             for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not hooks:
        raise UserError(f"{type(model).__name__} has no nn.Linear layer, so it has no default penultimate "
                        "representation; name a module (--layer)")
    hooked_forward(model, sample, forward_hooks=hooks)
    if not calls:
        raise UserError(f"no nn.Linear layer of {type(model).__name__} runs in a forward pass; name a module (--layer)")
    return calls[-1]


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; an unknown name is a :class:`UserError` that lists valid ones."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if name in modules:
        return modules[name]
    names = list(modules)
    close = difflib.get_close_matches(name, names, n=3)
    shown = close + [n for n in names[-_LISTED_NAMES:] if n not in close]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UserError(f"unknown module {name!r} in {type(model).__name__}; {hint}valid names include: "
                    f"{', '.join(shown[:_LISTED_NAMES])} ({len(names)} modules in all)")


def _collect(model: nn.Module, batches: Iterable, layer: str | None, device: torch.device) -> Embeddings:
    features, labels, captured = [], [], []
    handle, name, hook = None, layer, OUTPUT
    try:
        for batch in batches:
            inputs, targets = batch if isinstance(batch, (tuple, list)) else (batch, None)
            inputs = inputs.to(device)
            if handle is None:
                if name is None:
                    name, hook = penultimate_layer(model, inputs[:1]), INPUT
                handle = _register(find_module(model, name), hook, captured)
            captured.clear()
            model(inputs)
            if len(captured) != 1:
                raise UserError(f"module {name!r} ran {len(captured)} times in one forward pass (a shared module); "
                                "pick a module that runs once")
            features.append(captured[0].reshape(inputs.shape[0], -1))
            if targets is not None:
                labels.append(targets.to(device))
    finally:
        if handle is not None:
            handle.remove()
    if not features:
        raise UserError("no samples to embed: the probe set is empty")
    return Embeddings(torch.cat(features), torch.cat(labels) if labels else None, name, hook)


def _register(module: nn.Module, hook: str, captured: list) -> torch.utils.hooks.RemovableHandle:
    def keep(_module, inputs, output) -> None:
        value = inputs[0] if hook == INPUT else output
        if isinstance(value, (tuple, list)):
            value = value[0]
        # A copy: an in-place activation after the module (ReLU(inplace=True)) would change the output.
        captured.append(value.detach().clone())

    return module.register_forward_hook(keep)
