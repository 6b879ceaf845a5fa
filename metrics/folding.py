"""Batch normalizations folded into the layer that ran just before them, checked on the outputs.

The field defines its norm, margin, flatness and sharpness measures on the function a network
computes, so a BatchNorm network is measured after each normalization (eval mode: its running
statistics) has been folded into the conv or linear layer before it, as both references do before
every measure (nitarshan/robust-generalization-measures ``_reparam``, after bneyshabur/
generalization-bounds). A rescaling of a layer's weights that its normalization undoes then
changes no such measure.

"Before it" means in the order the modules actually run: one forward pass with hooks on a dummy
input records the leaf modules as they are called (module registration order is not execution
order: in ``mlp_bn`` each block registers its normalization before its linear layer). A
normalization is folded only into the conv or linear layer that ran just before it, with nothing
but Dropout or Identity (identities in eval mode) in between. One after anything else (an
activation, a pooling, a concatenation, the input) cannot be folded backward: it stays, and is
named. The folded copy's outputs are compared with the original's (eval mode, relative tolerance
``RTOL``); where they differ (something the hooks cannot see ran in between: a functional
activation, a second use of the layer's output), the fold that broke them is undone and named.
Pure: a model in, a folded copy and what was done out.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                nn.Identity)
RTOL = 1e-4  # the folded model's outputs must equal the original's within this relative difference
CHECK_SEED = 0  # the dummy input of the check is a seeded standard normal batch


@dataclass(frozen=True)
class Folded:
    """A folded copy of a model (eval mode) and what was done to it.

    ``folded``: ``(batch norm, layer)`` pairs, in execution order; ``kept``: ``(batch norm, why it
    stays)``; ``undone``: the names among ``kept`` whose fold changed the outputs and was undone;
    ``difference``: the largest relative difference between the folded copy's outputs and the
    original's on the check's input (0 when nothing was folded)."""

    model: nn.Module
    folded: tuple[tuple[str, str], ...] = ()
    kept: tuple[tuple[str, str], ...] = ()
    undone: tuple[str, ...] = ()
    difference: float = 0.0

    def record(self) -> dict:
        """The document's ``batchnorm`` entry."""
        return {"folded": [{"batchnorm": bn, "into": layer} for bn, layer in self.folded],
                "kept": [{"batchnorm": bn, "why": why} for bn, why in self.kept],
                "output_difference": self.difference, "rtol": RTOL}

    def notes(self, label: str) -> list[str]:
        """One line per kind of normalization left unfolded (none when every one was folded)."""
        lines = []
        if self.undone:
            lines.append(f"{label}: folding {', '.join(self.undone)} changed the model's outputs (more than a "
                         f"relative {RTOL:g}): left unfolded, so the measures see those layers' weights as stored")
        stays = [bn for bn, _ in self.kept if bn not in self.undone]
        if stays:
            shown = ", ".join(stays[:6]) + (f" and {len(stays) - 6} more" if len(stays) > 6 else "")
            lines.append(f"{label}: {len(stays)} batch norm(s) follow no conv or linear layer and stay unfolded "
                         f"(batchnorm.kept says why): {shown}")
        return lines


def execution_order(model: nn.Module, inputs: torch.Tensor) -> list[str]:
    """The names of ``model``'s leaf modules in the order they run on ``inputs`` (a module called
    twice appears twice); eval mode, no gradients, the model's mode restored."""
    names = {module: name for name, module in model.named_modules() if not list(module.children())}
    order: list[str] = []
    handles = [module.register_forward_hook(lambda mod, args, out: order.append(names[mod])) for module in names]
    _run(model, inputs, handles)
    return order


def _run(model: nn.Module, inputs: torch.Tensor, handles: list) -> torch.Tensor:
    """``model(inputs)`` in eval mode without gradients (the first tensor of a tuple output), the
    ``handles`` removed and the model's mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(inputs)
        while isinstance(output, (tuple, list)) and output:
            output = output[0]
        return output
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()


def fold_plan(model: nn.Module, order: list[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(pairs, kept)``: each batch norm of ``order`` (execution order of leaf module names) with the
    conv or linear layer that ran just before it, Dropout and Identity skipped, or why it stays."""
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for name in order:
        calls[name] = calls.get(name, 0) + 1
    pairs, kept, seen = [], [], set()
    for position, name in enumerate(order):
        if not isinstance(modules[name], BATCHNORM_TYPES) or name in seen:
            continue
        seen.add(name)
        previous = next((other for other in reversed(order[:position])
                         if not isinstance(modules[other], PASS_THROUGH)), None)
        why = _why_not(modules[name], previous, modules.get(previous), calls)
        (kept.append((name, why)) if why else pairs.append((name, previous)))
    taken = [layer for _, layer in pairs]
    shared = {layer for layer in taken if taken.count(layer) > 1}
    kept += [(bn, f"{layer} is followed by more than one batch norm") for bn, layer in pairs if layer in shared]
    return [pair for pair in pairs if pair[1] not in shared], kept


def _why_not(norm: nn.Module, previous: str | None, layer: nn.Module | None, calls: dict[str, int]) -> str | None:
    """Why the batch norm cannot be folded into ``previous`` (None: it can)."""
    if previous is None:
        return "it runs first: no layer before it"
    if not isinstance(layer, LAYER_TYPES):
        return f"it follows {previous} ({type(layer).__name__}), not a conv or linear layer"
    if not norm.track_running_stats or norm.running_var is None:
        return "it normalizes with batch statistics in eval mode (track_running_stats=False)"
    if layer.weight.shape[0] != norm.num_features:
        return f"{previous} has {layer.weight.shape[0]} outputs and the batch norm {norm.num_features} features"
    if calls.get(previous, 0) > 1:
        return f"{previous} runs more than once"
    return None


def fold_batchnorm(model: nn.Module, input_shape: tuple[int, ...], *, rtol: float = RTOL) -> Folded:
    """``model`` with every foldable batch norm folded (see the module docstring) and replaced by
    ``nn.Identity``, checked: the copy's outputs on a seeded dummy batch of ``input_shape`` (one
    sample's shape, e.g. ``(C, H, W)``) equal the original's within ``rtol``, a fold that breaks
    them being undone. Raises ``RuntimeError`` when the model cannot run on that shape. A model without
    batch norms comes back as it is (no copy, no check)."""
    if not any(isinstance(module, BATCHNORM_TYPES) for module in model.modules()):
        return Folded(model)
    device, dtype = _device_dtype(model)
    generator = torch.Generator().manual_seed(CHECK_SEED)
    inputs = torch.randn((2, *input_shape), generator=generator).to(device=device, dtype=dtype)
    order = execution_order(model, inputs)
    pairs, kept = fold_plan(model, order)
    expected = _run(model, inputs, [])
    undone: list[str] = []
    while True:
        folded = _folded_copy(model, pairs)
        difference = relative_difference(_run(folded, inputs, []), expected)
        if difference <= rtol or not pairs:
            break
        culprit = _first_broken(model, folded, pairs, inputs, order, rtol)
        pairs = [pair for pair in pairs if pair != culprit]
        undone.append(culprit[0])
        kept.append((culprit[0], f"folding it into {culprit[1]} changed the outputs (something the hooks "
                                 "cannot see runs between them, or the layer's output is used elsewhere too)"))
    return Folded(folded.eval(), tuple(pairs), tuple(kept), tuple(undone), difference if pairs else 0.0)


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    first = next(model.parameters(), None)
    return (first.device, first.dtype) if first is not None else (torch.device("cpu"), torch.float32)


def relative_difference(found: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |found - expected| / max |expected|`` (0 for two zero tensors, inf for a shape mismatch)."""
    if found.shape != expected.shape:
        return float("inf")
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    gap = float((found - expected).abs().max()) if expected.numel() else 0.0
    return gap / scale if scale > 0 else (0.0 if gap == 0 else float("inf"))


@torch.no_grad()
def _folded_copy(model: nn.Module, pairs: list[tuple[str, str]]) -> nn.Module:
    folded = copy.deepcopy(model).eval()
    for bn_name, layer_name in pairs:
        fold_into(folded.get_submodule(layer_name), folded.get_submodule(bn_name))
        parent, _, child = bn_name.rpartition(".")
        setattr(folded.get_submodule(parent) if parent else folded, child, nn.Identity())
    return folded


@torch.no_grad()
def fold_into(layer: nn.Module, norm: nn.Module) -> None:
    """Make ``layer(x)`` compute ``norm(layer(x))`` (eval mode): scale each output unit's weight and
    shift its bias (a bias is added where the layer had none)."""
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale + (norm.bias if norm.bias is not None else 0.0)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
    layer.weight.mul_(scale.reshape(-1, *[1] * (layer.weight.dim() - 1)).to(layer.weight.dtype))
    new_bias = (bias * scale + shift).to(layer.weight.dtype)
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias, requires_grad=layer.weight.requires_grad)
    else:
        layer.bias.copy_(new_bias)


def _outputs(model: nn.Module, inputs: torch.Tensor, names: set[str]) -> dict[str, list[torch.Tensor]]:
    """The outputs of the named modules on ``inputs``, per call."""
    found: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def keep(name: str) -> Callable:
        return lambda mod, args, out: found[name].append(out.detach().clone() if torch.is_tensor(out) else out)

    modules = dict(model.named_modules())
    _run(model, inputs, [modules[name].register_forward_hook(keep(name)) for name in names if name in modules])
    return found


def _first_broken(model: nn.Module, folded: nn.Module, pairs: list[tuple[str, str]], inputs: torch.Tensor,
                  order: list[str], rtol: float) -> tuple[str, str]:
    """The fold to undo: the one whose layer ran last before the first leaf output (in execution
    order) that differs between the two models; the folded layers' own outputs differ by design."""
    by_layer = {layer: (bn, layer) for bn, layer in pairs}
    by_norm = {bn: (bn, layer) for bn, layer in pairs}
    compared = {name for name in order if name not in by_layer}
    original, changed = _outputs(model, inputs, compared), _outputs(folded, inputs, compared)
    calls: dict[str, int] = {}
    latest = pairs[0]
    for name in order:
        call = calls[name] = calls.get(name, 0) + 1
        if name in by_layer:
            latest = by_layer[name]
            continue
        latest = by_norm.get(name, latest)
        if _differs(changed[name], original[name], call - 1, rtol):
            return latest
    return latest


def _differs(found: list, expected: list, call: int, rtol: float) -> bool:
    if call >= len(found) or call >= len(expected):
        return False
    a, b = found[call], expected[call]
    return torch.is_tensor(a) and torch.is_tensor(b) and relative_difference(a, b) > rtol
