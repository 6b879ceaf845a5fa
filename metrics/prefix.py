"""torch.fx prefix caching for the re-initialization sweep: split a traced forward at a layer.

For a reset layer, the graph nodes that depend on it form the *suffix*, and the values the suffix
reads from outside (the layer's input, skip connections of residual blocks) its *frontier*. The
trained network's frontier values are computed once per batch and each cell runs only its suffix:
the same kernels on the same batches, so the logits equal a full forward pass bit for bit.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import torch
import torch.fx as fx
from torch import nn
from torch.func import functional_call

Overrides = dict[str, dict[str, torch.Tensor]]  # module name -> {local tensor name: tensor}


class PrefixUnavailable(Exception):
    """The model's forward cannot be split at a layer (no trace, or the layer is not a module call)."""


_OUT_OF_PLACE_OPERATORS = {
    operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
    operator.itruediv: operator.truediv, operator.ifloordiv: operator.floordiv, operator.imod: operator.mod,
    operator.ipow: operator.pow, operator.imatmul: operator.matmul, operator.iand: operator.and_,
    operator.ior: operator.or_, operator.ixor: operator.xor, operator.ilshift: operator.lshift,
    operator.irshift: operator.rshift,
}


def _out_of_place_function(target):
    """An in-place function's out-of-place twin (``operator.iadd`` -> ``add``, ``torch.relu_`` -> ``relu``).

    Cached values are shared by every cell, so nothing may write into them.
    """
    if target in _OUT_OF_PLACE_OPERATORS:
        return _OUT_OF_PLACE_OPERATORS[target]
    name = getattr(target, "__name__", "")
    if name.endswith("_") and not name.endswith("__"):
        for namespace in (torch, nn.functional):
            if getattr(namespace, name, None) is target and callable(getattr(namespace, name[:-1], None)):
                return getattr(namespace, name[:-1])
    return target


def _out_of_place_method(name: str) -> str:
    if name.endswith("_") and not name.endswith("__") and callable(getattr(torch.Tensor, name[:-1], None)):
        return name[:-1]
    return name


class PrefixPlan:
    """The traced graph of a model, split at each reset layer into cached frontier and suffix.

    ``record(inputs)`` runs the trained network once and keeps the frontier values of every
    layer; ``suffix(layer, cache, overrides)`` recomputes the logits from that layer onward.
    Cached values are shared by every cell, so nothing may write into them: in-place functions
    and tensor methods run out of place; modules with ``inplace=True`` (ReLU, ...) take a single
    input, which inside a suffix is always the suffix's own value.
    """

    def __init__(self, model: nn.Module, layer_names: Sequence[str]) -> None:
        try:
            self.graph_module = fx.symbolic_trace(model)
        except Exception as err:  # tracing fails in many ways (control flow, unsupported ops)
            raise PrefixUnavailable(f"torch.fx cannot trace {type(model).__name__}: {first_line(err)}") from err
        self.nodes = list(self.graph_module.graph.nodes)
        self.modules = {n.target: model.get_submodule(n.target) for n in self.nodes if n.op == "call_module"}
        self.suffixes = {name: self._suffix_nodes(name) for name in layer_names}
        self.frontiers = {name: self._frontier(suffix) for name, suffix in self.suffixes.items()}
        self.cached = {node for frontier in self.frontiers.values() for node in frontier}
        self.record_releases = _releases(self.nodes, keep=self.cached)
        self.suffix_releases = {name: _releases(suffix, keep=set()) for name, suffix in self.suffixes.items()}

    def _suffix_nodes(self, layer: str) -> list[fx.Node]:
        """The layer's module calls, every node depending on them and the output, in graph order."""
        inside: set[fx.Node] = set()
        for node in self.nodes:
            if (node.op == "call_module" and node.target == layer) or node.op == "output" or any(
                    arg in inside for arg in node.all_input_nodes):
                inside.add(node)
        if not any(node.op == "call_module" and node.target == layer for node in inside):
            raise PrefixUnavailable(f"layer {layer} is not called as a module in the traced graph")
        return [node for node in self.nodes if node in inside]

    @staticmethod
    def _frontier(suffix: list[fx.Node]) -> list[fx.Node]:
        """Values the suffix reads from outside itself (attributes are read live, not cached)."""
        inside = set(suffix)
        frontier: dict[fx.Node, None] = {}
        for node in suffix:
            for arg in node.all_input_nodes:
                if arg not in inside and arg.op != "get_attr":
                    frontier[arg] = None
        return list(frontier)

    def record(self, inputs: torch.Tensor) -> tuple[dict[fx.Node, object], torch.Tensor]:
        """One trained forward pass: ``(frontier values, logits)``."""
        env: dict[fx.Node, object] = {}
        output, fed = None, False
        for node in self.nodes:
            if node.op == "placeholder":
                env[node], fed = (_placeholder_default(node) if fed else inputs), True
            elif node.op == "output":
                output = self._arg(node.args[0], env)
            else:
                env[node] = self._run(node, env, {})
            for released in self.record_releases.get(node, ()):
                del env[released]
        return {node: env[node] for node in self.cached}, output

    def suffix(self, layer: str, cache: Mapping[fx.Node, object], overrides: Overrides) -> torch.Tensor:
        """Logits of the network whose ``overrides`` modules are replaced, from ``layer`` onward."""
        env = {node: cache[node] for node in self.frontiers[layer]}
        for node in self.suffixes[layer]:
            if node.op == "output":
                return self._arg(node.args[0], env, overrides)
            env[node] = self._run(node, env, overrides)
            for released in self.suffix_releases[layer].get(node, ()):
                del env[released]
        raise AssertionError("a suffix always ends with the output node")

    def _arg(self, value, env, overrides: Overrides | None = None):
        return fx.node.map_arg(value, lambda node: env[node] if node in env else self._attr(node, overrides or {}))

    def _attr(self, node: fx.Node, overrides: Overrides):
        if node.op != "get_attr":
            raise KeyError(f"value of {node} is neither cached nor computed")
        module_name, _, local = node.target.rpartition(".")
        if local in overrides.get(module_name, {}):
            return overrides[module_name][local]
        value = self.graph_module
        for part in node.target.split("."):
            value = getattr(value, part)
        return value

    def _run(self, node: fx.Node, env, overrides: Overrides):
        args, kwargs = self._arg(node.args, env, overrides), self._arg(node.kwargs, env, overrides)
        if node.op == "get_attr":
            return self._attr(node, overrides)
        if node.op == "call_module":
            module = self.modules[node.target]
            if node.target in overrides:
                return functional_call(module, overrides[node.target], tuple(args), kwargs)
            return module(*args, **kwargs)
        if node.op == "call_function":
            if kwargs.get("inplace"):
                kwargs = {**kwargs, "inplace": False}
            return _out_of_place_function(node.target)(*args, **kwargs)
        if node.op == "call_method":
            self_value, *rest = args
            return getattr(self_value, _out_of_place_method(node.target))(*rest, **kwargs)
        raise PrefixUnavailable(f"unsupported graph node {node.op} {node.target}")


def _placeholder_default(node: fx.Node):
    if node.args:
        return node.args[0]
    raise PrefixUnavailable(f"the model's forward takes a second input ({node.target}); only one is supported")


def _releases(nodes: Sequence[fx.Node], *, keep: set[fx.Node]) -> dict[fx.Node, list[fx.Node]]:
    """For each node, the values whose last reader it is (freed right after it runs), except ``keep``."""
    position = {node: i for i, node in enumerate(nodes)}
    last_reader: dict[fx.Node, fx.Node] = {}
    for node in nodes:
        for arg in node.all_input_nodes:
            if arg in position and arg not in keep:
                last_reader[arg] = node
    releases: dict[fx.Node, list[fx.Node]] = {}
    for value, reader in last_reader.items():
        releases.setdefault(reader, []).append(value)
    return releases


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
