"""Layer re-initialization / re-randomization (Zhang, Bengio, Singer 2019), exact and fast.

For a trained model, each *cell* (row, layer) replaces one layer's parameters (and, on request,
those of the BatchNorm that consumes its output) by a row's tensors (an earlier checkpoint or a
random init), evaluates the test set, and puts the trained tensors back. The replacement goes
through ``torch.func.functional_call``, which swaps the tensors in and restores them afterwards, so
the model equals the trained snapshot bit for bit after the sweep.

Speed comes from three exact shortcuts:

* the test set is read once, in chunks, and every cell is evaluated on the chunk in memory;
* *prefix caching*: the model is traced with ``torch.fx``; for a reset layer, the nodes that depend
  on it form the *suffix* and the values the suffix reads from outside (the layer's input, skip
  connections of residual blocks) its *frontier*. The trained network's frontier values are
  computed once per batch and each cell runs only its suffix. Same kernels on the same batches:
  the logits equal a full forward pass, so the accuracies equal a naive re-evaluation;
* a cell whose replacement tensors equal the trained ones (a row that is the snapshot itself) is
  the trained network's result and is not recomputed.

A model that cannot be traced, or whose traced graph or suffixes do not reproduce the eager forward
pass bit for bit on the first samples, is evaluated naively (a full forward per cell), with a log line.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from metrics.prefix import Overrides, PrefixPlan, PrefixUnavailable
from models.forward import hooked_forward
from utils.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 1024**3  # cached activations held at once (the test set goes in chunks)
REPLAY_CHECK_SAMPLES = 8
METHODS = ("auto", "prefix", "naive")
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ResetRow:
    """Where a row's replacement tensors come from: a (full or partial) state dict of the same
    architecture, e.g. an earlier checkpoint or a fresh random initialization."""

    label: str
    state: Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class CellScore:
    """Test metrics of one network, as :func:`training.evaluate.evaluate` computes them."""

    top1: float  # percent
    top5: float | None  # percent; None with fewer than 5 classes
    loss: float  # mean cross-entropy
    samples: int


@dataclass(frozen=True)
class SweepResult:
    reference: CellScore  # the trained network
    cells: list[list[CellScore]]  # rows x layers
    method: str  # "prefix" or "naive"
    reused_cells: int  # cells whose tensors equal the trained ones (not recomputed)


# -- what a cell replaces ------------------------------------------------------------------------
def module_tensor_names(model: nn.Module, module_name: str) -> list[str]:
    """Names of ``module_name``'s own parameters and persistent buffers (``weight``, ``bias``,
    ``running_mean``, ...), as they appear in its state dict. An ``nn.MultiheadAttention`` is reset as
    one layer: its in-projection and its ``out_proj`` (``out_proj.weight``, ``out_proj.bias``)."""
    module = model.get_submodule(module_name)
    whole = isinstance(module, nn.MultiheadAttention)
    return [name for name in module.state_dict(keep_vars=True) if whole or "." not in name]


def following_batchnorms(model: nn.Module, input_shape: tuple[int, ...],
                          layer_names: Sequence[str]) -> dict[str, str | None]:
    """For each layer, the BatchNorm module that directly consumes its output (or None).

    Found by one dummy forward with hooks: a BatchNorm follows a layer when its input is the very
    tensor the layer returned, unchanged since (an in-place ReLU in between bumps its version).
    """
    wanted = set(layer_names)
    produced: dict[int, tuple[str, int]] = {}  # id of a layer's output -> (layer, tensor version)
    keep_alive: list[torch.Tensor] = []
    found: dict[str, str | None] = {name: None for name in layer_names}

    def record(name):
        def hook(module, inputs, output):
            keep_alive.append(output)
            produced[id(output)] = (name, output._version)
        return hook

    def match(name):
        def pre_hook(module, inputs):
            layer, version = produced.get(id(inputs[0]), (None, None)) if inputs else (None, None)
            if layer is not None and version == inputs[0]._version and found[layer] is None:
                found[layer] = name
        return pre_hook

    forward_hooks, pre_hooks = [], []
    for name, module in model.named_modules():
        if name in wanted:
            forward_hooks.append((module, record(name)))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            pre_hooks.append((module, match(name)))
    hooked_forward(model, input_shape, forward_hooks=forward_hooks, pre_hooks=pre_hooks, batch=2)
    return found


def cell_overrides(model: nn.Module, row: ResetRow, modules: Sequence[str]) -> Overrides:
    """The row's tensors for ``modules``, on the model's device and dtype."""
    overrides: Overrides = {}
    for module_name in modules:
        current = model.get_submodule(module_name).state_dict(keep_vars=True)
        tensors = {}
        for local in module_tensor_names(model, module_name):
            key = f"{module_name}.{local}"
            if key not in row.state:
                raise UserError(f"{row.label} has no tensor {key}; it is not a snapshot of this architecture")
            value, target = row.state[key], current[local]
            if tuple(value.shape) != tuple(target.shape):
                raise UserError(f"{row.label}: {key} has shape {tuple(value.shape)}, the model {tuple(target.shape)}; "
                                "it is not a snapshot of this architecture")
            tensors[local] = value.detach().to(device=target.device, dtype=target.dtype)
        overrides[module_name] = tensors
    return overrides


def _equals_model(model: nn.Module, overrides: Overrides) -> bool:
    for module_name, tensors in overrides.items():
        current = model.get_submodule(module_name).state_dict(keep_vars=True)
        if not all(torch.equal(current[local].detach(), value) for local, value in tensors.items()):
            return False
    return True


# -- scoring, as training.evaluate does it --------------------------------------------------------
def _batch_totals(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """``(loss sum, top-1 hits, top-k hits, count)`` of one batch, in float64."""
    logits = logits.float()
    loss = nn.functional.cross_entropy(logits, labels, reduction="sum").double()
    hits = logits.topk(k, dim=1).indices == labels[:, None]
    return torch.stack([loss, hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
                        torch.full((), float(len(labels)), dtype=torch.float64, device=logits.device)])


def _score(totals: Sequence[float], num_classes: int) -> CellScore:
    loss, top1, top5, count = totals
    count = max(count, 1.0)
    return CellScore(100 * top1 / count, 100 * top5 / count if num_classes >= 5 else None, loss / count, int(count))


# -- evaluators: how a cell's logits are computed ---------------------------------------------------
@dataclass
class _Part:
    """One test batch as a cell starts from it: the inputs (naive) or the trained network's cached
    frontier values (prefix), with the labels and the trained network's logits."""

    cache: object
    labels: torch.Tensor
    logits: torch.Tensor


class _NaiveEvaluator:
    """A full forward pass per cell and batch (the reference's way; the fallback)."""

    method = "naive"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def part(self, inputs: torch.Tensor, labels: torch.Tensor) -> _Part:
        return _Part(inputs, labels, self.model(inputs))

    def cell(self, layer: str, cache, overrides: Overrides) -> torch.Tensor:
        flat = {f"{module}.{local}": value for module, tensors in overrides.items() for local, value in tensors.items()}
        return functional_call(self.model, flat, (cache,))


class _PrefixEvaluator:
    """Suffix passes from the cached frontier values of each batch."""

    method = "prefix"

    def __init__(self, plan: PrefixPlan) -> None:
        self.plan = plan

    def part(self, inputs: torch.Tensor, labels: torch.Tensor) -> _Part:
        cache, logits = self.plan.record(inputs)
        return _Part(cache, labels, logits)

    def cell(self, layer: str, cache, overrides: Overrides) -> torch.Tensor:
        return self.plan.suffix(layer, cache, overrides)


def _choose_evaluator(model: nn.Module, layers: Sequence[str], method: str, first_inputs: torch.Tensor):
    """The prefix evaluator when, on samples of the first batch, the traced graph and every layer's
    suffix reproduce the eager forward pass bit for bit (``method`` ``auto`` or ``prefix``), else the
    naive one."""
    if method == "naive":
        return _NaiveEvaluator(model)
    try:
        plan = PrefixPlan(model, layers)
        _check_replay(plan, model, first_inputs)
    except PrefixUnavailable as err:
        if method == "prefix":
            raise UserError(f"prefix caching is not possible for {type(model).__name__}: {err}; "
                            "use the method auto (or naive)") from err
        logger.info("prefix caching unavailable (%s); evaluating every cell with a full forward pass", err)
        return _NaiveEvaluator(model)
    cached = sorted({str(node) for node in plan.cached})
    logger.debug("prefix caching: %d cached values per batch (%s)", len(cached), ", ".join(cached))
    return _PrefixEvaluator(plan)


def _check_replay(plan: PrefixPlan, model: nn.Module, inputs: torch.Tensor) -> None:
    """The traced graph, and every suffix replayed from the cache, must give the eager logits bit for bit.

    This checks the split (the graph runs the eager model's ops in its order, so a few samples
    suffice; the kernels are the same at any batch size).
    """
    inputs = inputs[:REPLAY_CHECK_SAMPLES]
    eager = model(inputs)
    cache, traced = plan.record(inputs)
    if not torch.equal(traced, eager):
        raise PrefixUnavailable("the traced graph does not reproduce the model's forward pass bit for bit")
    for layer in plan.suffixes:
        if not torch.equal(plan.suffix(layer, cache, {}), eager):
            raise PrefixUnavailable(f"the forward pass from {layer} on does not reproduce the model's bit for bit")


# -- the sweep -----------------------------------------------------------------------------------
def _value_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_value_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_value_bytes(v) for v in value.values())
    return 0


def _chunks(batches: Iterable[Batch], evaluator, cache_bytes: int) -> Iterator[list[_Part]]:
    """The test set as consecutive batches holding about ``cache_bytes`` of cached values (at least one)."""
    chunk, size = [], 0
    for inputs, labels in batches:
        chunk.append(evaluator.part(inputs, labels))
        size += _value_bytes(chunk[-1].cache)
        if size >= cache_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def reinit_sweep(
    model: nn.Module,
    layers: Sequence[str],
    rows: Sequence[ResetRow],
    batches: Iterable[Batch],
    *,
    num_classes: int,
    with_bn: Mapping[str, str | None] | None = None,
    method: str = "auto",
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    on_step: Callable[[int], None] | None = None,
) -> SweepResult:
    """Test metrics of ``model`` with each layer in turn replaced by each row's tensors.

    ``layers``: module names (conv/linear) in forward order; ``with_bn``: for each layer, the
    BatchNorm reset along with it (see :func:`following_batchnorms`), or None; ``batches``: the
    test set as ``(inputs, labels)`` on the model's device, read once; ``method``: ``prefix`` (fx
    prefix caching; a :class:`UserError` if impossible), ``naive`` (a full forward per cell) or
    ``auto`` (prefix when possible). ``cache_bytes`` bounds the cached activations held at once:
    the test set is processed in chunks of that size. ``on_step(n)`` is told about every ``n``
    batch passes (``batches * (1 + rows * layers)`` in all, reused cells included). The model's
    tensors are untouched afterwards (and only swapped during a cell).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _sweep(model, list(layers), rows, batches, num_classes=num_classes, with_bn=with_bn or {},
                          method=method, cache_bytes=cache_bytes, on_step=on_step or (lambda n: None))
    finally:
        model.train(was_training)


def _sweep(model, layers, rows, batches, *, num_classes, with_bn, method, cache_bytes, on_step) -> SweepResult:
    iterator = iter(batches)
    try:
        first = next(iterator)
    except StopIteration:
        raise UserError("the test set is empty; nothing to evaluate") from None
    evaluator = _choose_evaluator(model, layers, method, first[0])
    overrides = [[cell_overrides(model, row, [layer] + ([with_bn[layer]] if with_bn.get(layer) else []))
                  for layer in layers] for row in rows]
    cells = [(r, j) for r in range(len(rows)) for j in range(len(layers))]
    todo = {(r, j) for r, j in cells if not _equals_model(model, overrides[r][j])}
    device = first[0].device
    k = 5 if num_classes >= 5 else 1
    reference = torch.zeros(4, dtype=torch.float64, device=device)
    totals = torch.zeros(len(rows), len(layers), 4, dtype=torch.float64, device=device)
    for chunk in _chunks(_prepend(first, iterator), evaluator, cache_bytes):
        for part in chunk:
            reference += _batch_totals(part.logits, part.labels, k)
        on_step(len(chunk))
        for r, j in cells:
            if (r, j) in todo:
                for part in chunk:
                    logits = evaluator.cell(layers[j], part.cache, overrides[r][j])
                    totals[r, j] += _batch_totals(logits, part.labels, k)
            on_step(len(chunk))
    reference_score = _score(reference.tolist(), num_classes)
    scores = [[_score(totals[r, j].tolist(), num_classes) if (r, j) in todo else reference_score
               for j in range(len(layers))] for r in range(len(rows))]
    return SweepResult(reference_score, scores, evaluator.method, len(cells) - len(todo))


def _prepend(first: Batch, rest: Iterator[Batch]) -> Iterator[Batch]:
    yield first
    yield from rest
