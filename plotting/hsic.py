"""The HSIC information plane: HSIC(T, X) against HSIC(T, Y), one line per layer through the epochs."""
from __future__ import annotations

import json

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from plotting.common import run_title, subplots
from plotting.registry import MissingData, register_figure
from schema.runs import Run


def _tracks(run: Run) -> list[tuple[dict, list[int], dict[str, np.ndarray]]]:
    """Per measurement (settings): ``(header, epochs, {layer: (epochs, 2) array of (x, y)})``, with x and
    y the normalized values when the settings say so. Per-snapshot files first, else the summary."""
    groups: dict[str, list[dict]] = {}
    for document in run.documents.get("hsic", []):
        if document.get("epoch") is not None:
            groups.setdefault(json.dumps(document.get("settings"), sort_keys=True), []).append(document)
    if groups:
        ordered = sorted(groups.values(), key=len, reverse=True)  # the fullest series gets the plain name
        return [_from_documents(sorted(docs, key=lambda d: d["epoch"])) for docs in ordered]
    summaries = run.documents.get("hsic_summary", [])
    if not summaries:
        raise MissingData("no 'hsic' results")
    return [_from_summary(summary) for summary in summaries]


def _keys(header: dict) -> tuple[str, str]:
    return ("nhsic_x", "nhsic_y") if (header.get("settings") or {}).get("normalized") else ("hsic_x", "hsic_y")


def _from_documents(documents: list[dict]) -> tuple[dict, list[int], dict[str, np.ndarray]]:
    last = documents[-1]
    key_x, key_y = _keys(last)
    names = [layer["name"] for layer in last["layers"]]
    by_name = [{entry["name"]: entry for entry in document["layers"]} for document in documents]
    tracks = {name: np.array([(_float(layers.get(name, {}).get(key_x)), _float(layers.get(name, {}).get(key_y)))
                              for layers in by_name], dtype=float) for name in names}
    return last, [d["epoch"] for d in documents], tracks


def _from_summary(summary: dict) -> tuple[dict, list[int], dict[str, np.ndarray]]:
    key_x, key_y = _keys(summary)
    metrics = summary["metrics"]
    tracks = {layer["name"]: np.array([[_float(x), _float(y)] for x, y in zip(metrics[key_x][i], metrics[key_y][i])],
                                      dtype=float).reshape(-1, 2)
              for i, layer in enumerate(summary["layers"])}
    return summary, summary["epochs"], tracks


def _float(value) -> float:
    return np.nan if value is None else float(value)


@register_figure("hsic_plane")
def hsic_plane(run: Run, options: dict) -> list:
    """One figure per HSIC measurement: a line per layer (layer colours), points coloured by epoch."""
    built = []
    for number, (header, epochs, tracks) in enumerate(_tracks(run)):
        fig, ax = subplots(figsize=(7.8, 5.6))
        layer_colors = matplotlib.colormaps["tab10" if len(tracks) <= 10 else "tab20"]
        norm = Normalize(min(epochs), max(epochs) if max(epochs) > min(epochs) else min(epochs) + 1)
        handles = []
        for index, (name, points) in enumerate(tracks.items()):
            color = layer_colors(index % layer_colors.N)
            ax.plot(points[:, 0], points[:, 1], color=color, linewidth=1.5, alpha=0.8, zorder=1)
            scatter = ax.scatter(points[:, 0], points[:, 1], c=epochs, cmap="viridis", norm=norm, s=36,
                                 edgecolors=[color], linewidths=1.2, zorder=2)
            handles.append(Line2D([], [], color=color, marker="o", markerfacecolor="white", label=name))
        fig.colorbar(scatter, ax=ax, label="epoch")
        key_x, key_y = _keys(header)
        prefix = "normalized HSIC" if key_x.startswith("n") else "HSIC"
        ax.set(xlabel=f"{prefix}(T, X)  (layer output vs input)", ylabel=f"{prefix}(T, Y)  (layer output vs labels)")
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.25, 0.5), title="layer")
        probe = header.get("probe") or {}
        fig.suptitle(run_title(f"HSIC information plane ({probe.get('size', '?')} {probe.get('split', '')} samples)",
                               arch=header.get("arch"), dataset=header.get("dataset"), seed=header.get("seed")))
        fig.tight_layout()
        built.append(("hsic_plane" if number == 0 else f"hsic_plane_{_settings_label(header)}", fig))
    return built


def _settings_label(header: dict) -> str:
    """``<samples>samples_sigma-<sigma|median>[_normalized]``: names the figures of further settings."""
    settings = header.get("settings") or {}
    sigma = settings.get("sigma")
    label = f"{settings.get('samples')}samples_sigma-{'median' if sigma is None else f'{sigma:g}'}"
    return label + ("_normalized" if settings.get("normalized") else "")


@register_figure("hsic_epochs")
def hsic_epochs(run: Run, options: dict) -> list:
    """HSIC(T, X) and HSIC(T, Y) against epoch, a line per layer (the information plane's two axes
    unrolled in time: compression shows as a falling HSIC(T, X))."""
    built = []
    for number, (header, epochs, tracks) in enumerate(_tracks(run)):
        fig, (ax_x, ax_y) = subplots(1, 2, figsize=(11, 4.2), sharex=True)
        layer_colors = matplotlib.colormaps["tab10" if len(tracks) <= 10 else "tab20"]
        key_x, key_y = _keys(header)
        prefix = "normalized HSIC" if key_x.startswith("n") else "HSIC"
        for index, (name, points) in enumerate(tracks.items()):
            color = layer_colors(index % layer_colors.N)
            ax_x.plot(epochs, points[:, 0], marker="o", markersize=3, color=color, label=name)
            ax_y.plot(epochs, points[:, 1], marker="o", markersize=3, color=color, label=name)
        ax_x.set(xlabel="epoch", ylabel=f"{prefix}(T, X)", title="layer output vs input")
        ax_y.set(xlabel="epoch", ylabel=f"{prefix}(T, Y)", title="layer output vs labels")
        for ax in (ax_x, ax_y):
            ax.grid(alpha=0.3)
        ax_y.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), title="layer")
        probe = header.get("probe") or {}
        fig.suptitle(run_title(f"HSIC per layer against epoch ({probe.get('size', '?')} {probe.get('split', '')} "
                               "samples)", arch=header.get("arch"), dataset=header.get("dataset"),
                               seed=header.get("seed")))
        fig.tight_layout()
        built.append(("hsic_epochs" if number == 0 else f"hsic_epochs_{_settings_label(header)}", fig))
    return built
