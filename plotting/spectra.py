"""Weight-spectrum figures: metric heatmaps (layers x epochs) and one layer's ESD with its power-law fit."""
from __future__ import annotations

import re

import numpy as np
from matplotlib.ticker import NullFormatter

from plotting.common import chosen_epochs, place_labels, run_title, subplots
from plotting.registry import MissingData, documents_of, register_figure
from schema import layers_by_epoch
from schema.runs import Run

# (metric, title, colour map) of the heatmap panels
HEATMAPS = (("alpha", "power-law exponent alpha", "viridis"), ("entropy", "matrix entropy (normalized)", "magma"),
            ("stable_rank", "stable rank", "cividis"), ("rand_distance", "rand_distance (JS)", "plasma"))
_ANNOTATED_CELLS = 240  # write values into the cells of small heatmaps
_NUMERICAL_ZERO = 1e-12  # eigenvalues below this fraction of the largest are not drawn (rounding noise)


def _by_mode(documents: list[dict]) -> dict[str, list[dict]]:
    """Documents by conv mode (``slices`` first), each sorted by epoch; those without an epoch are left out."""
    groups: dict[str, list[dict]] = {}
    for document in sorted(documents, key=lambda d: (d.get("conv_mode", "slices") != "slices", d.get("epoch") or 0)):
        if document.get("epoch") is not None:
            groups.setdefault(document.get("conv_mode", "slices"), []).append(document)
    return groups


def _stem(name: str, mode: str) -> str:
    return name if mode == "slices" else f"{name}_conv-{mode}"


def _grids_of_documents(documents: list[dict]) -> tuple[list[int], list[str], dict[str, np.ndarray], dict]:
    """``(epochs, layer names, {metric: layers x epochs array}, last header)``."""
    layers, matrices = layers_by_epoch([d["layers"] for d in documents], ("name",), [m for m, _, _ in HEATMAPS])
    return _grids([d["epoch"] for d in documents], layers, matrices, documents[-1])


def _grids_of_summary(summary: dict) -> tuple[list[int], list[str], dict[str, np.ndarray], dict]:
    return _grids(summary["epochs"], summary["layers"], summary["metrics"], summary)


def _grids(epochs: list[int], layers: list[dict], matrices: dict, header: dict):
    names = [layer["name"] for layer in layers]
    grids = {metric: np.array([[np.nan if v is None else v for v in row] for row in matrices[metric]],
                              dtype=float).reshape(len(names), -1) for metric, _, _ in HEATMAPS}
    return epochs, names, grids, header


def _all_grids(run: Run) -> dict[str, tuple]:
    """Per conv mode, the heatmap data from the per-snapshot documents, else from the summaries."""
    groups = _by_mode(run.documents.get("spectra", []))
    if groups:
        return {mode: _grids_of_documents(documents) for mode, documents in groups.items()}
    summaries = {summary.get("conv_mode", "slices"): summary for summary in run.documents.get("spectra_summary", [])}
    if not summaries:
        raise MissingData("no 'spectra' results")
    return {mode: _grids_of_summary(summary) for mode, summary in summaries.items()}


@register_figure("spectra")
def spectra_heatmaps(run: Run, options: dict) -> list:
    """Layers x epochs heatmaps of alpha, matrix entropy, stable rank and rand_distance (one figure per conv mode)."""
    return [(_stem("spectra_heatmaps", mode), _heatmap_figure(*grids)) for mode, grids in _all_grids(run).items()]


MAX_WIDTH_INCHES = 13.0  # 1950 px at the saved 150 dpi
_CELL = 0.46  # inches per epoch column: room for a cell's number at 7 pt
_MIN_CELL = 0.36  # the narrowest column that still takes a number


def _panel_columns(epochs: int) -> int:
    """Two panels a row while two fit in ``MAX_WIDTH_INCHES``, else one (four rows)."""
    return 2 if 2 * (2.9 + _MIN_CELL * epochs) <= MAX_WIDTH_INCHES else 1


def _heatmap_figure(epochs: list[int], names: list[str], grids: dict[str, np.ndarray], last: dict):
    """The four metrics as layers x epochs heatmaps on a 2 x 2 grid (4 x 1 for many epochs), each on a
    colour scale from its smallest to its largest value (nothing saturates)."""
    columns = _panel_columns(len(epochs))
    rows = len(HEATMAPS) // columns
    cell = min(_CELL, (MAX_WIDTH_INCHES / columns - 2.9) / max(1, len(epochs)))
    width = columns * (2.9 + cell * len(epochs)) + 0.6
    height = rows * (1.2 + 0.3 * len(names)) + 0.9
    fig, axes = subplots(rows, columns, figsize=(min(width, MAX_WIDTH_INCHES), height), squeeze=False)
    for index, (ax, (metric, title, cmap)) in enumerate(zip(axes.flat, HEATMAPS)):
        grid = grids[metric]
        finite = grid[np.isfinite(grid)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1,
                          interpolation="nearest")
        ax.set_xticks(range(len(epochs)), [str(e) for e in epochs])
        ax.set_yticks(range(len(names)), names if index % columns == 0 else [""] * len(names))
        ax.set(title=title)
        if index >= len(HEATMAPS) - columns:
            ax.set_xlabel("epoch")
        if grid.size <= _ANNOTATED_CELLS and cell >= _MIN_CELL:
            _annotate(ax, grid, image)
        fig.colorbar(image, ax=ax, pad=0.02)
    mode = last.get("conv_mode", "slices")
    fig.suptitle(run_title(f"weight spectra (conv {mode})", arch=last.get("arch"), dataset=last.get("dataset"),
                           seed=last.get("seed")))
    fig.tight_layout()
    return fig


def _annotate(ax, grid: np.ndarray, image) -> None:
    for (row, column), value in np.ndenumerate(grid):
        if np.isfinite(value):
            shade = image.norm(value)
            text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
            ax.text(column, row, text, ha="center", va="center", fontsize=7,
                    color="black" if shade > 0.55 else "white")


# -- one layer's empirical spectral density --------------------------------------------------------
def _largest_layer(document: dict) -> str:
    """The layer with the most weights (``N * M * n_matrices``)."""
    return max(document["layers"], key=lambda layer: layer["N"] * layer["M"] * layer["n_matrices"])["name"]


@register_figure("spectra_esd")
def spectra_esd(run: Run, options: dict) -> list:
    """Log-log histogram of one layer's eigenvalues at chosen epochs, with the fitted power law
    ``(n_tail / n) (alpha - 1) / xmin (x / xmin)^-alpha`` above ``xmin`` (one figure per conv mode)."""
    groups = _by_mode(documents_of(run, "spectra"))
    if not groups:
        raise MissingData("spectra results carry no epoch")
    built, missing = [], []
    for mode, documents in groups.items():
        try:
            built.append(_esd_figure({d["epoch"]: d for d in documents}, options, mode))
        except MissingData as err:  # e.g. --epochs that only one conv mode has
            missing.append(err)
    if not built:
        raise missing[0]
    return built


def _esd_figure(documents: dict[int, dict], options: dict, mode: str) -> tuple:
    epochs = chosen_epochs(sorted(documents), options.get("epochs"), "spectra")
    last = documents[epochs[-1]]
    names = [layer["name"] for layer in last["layers"]]
    name = options.get("spectra_layer") or _largest_layer(last)
    if name not in names:
        raise MissingData(f"--spectra-layer {name!r} is not a layer of these spectra results; choose one of "
                          f"{', '.join(names)}")
    columns = min(3, len(epochs))  # at most three panels a row: the figure stays under ~2000 px
    rows = -(-len(epochs) // columns)
    fig, axes = subplots(rows, columns, figsize=(4.2 * columns, 5.0 * rows), squeeze=False)
    for ax, epoch in zip(axes.flat, epochs):
        record = {layer["name"]: layer for layer in documents[epoch]["layers"]}.get(name)
        if record is None or not record.get("eigenvalues"):
            ax.set_visible(False)
            continue
        _draw_esd(ax, record)
        ax.set_title(f"epoch {epoch}" + (" (init)" if epoch == 0 else ""))
    for ax in list(axes.flat)[len(epochs):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("density")
    layer = last["layers"][names.index(name)]
    shape = "x".join(str(size) for size in layer.get("shape") or [])
    how = f", conv {last.get('conv_mode', 'slices')}" if layer.get("kind") == "conv" else ""
    fig.suptitle(run_title(f"ESD of {name} ({shape}{how})", arch=last.get("arch"), dataset=last.get("dataset"),
                           seed=last.get("seed")))
    fig.tight_layout()
    return _stem(f"spectra_esd_{re.sub(r'[^A-Za-z0-9]+', '-', name)}", mode), fig


def _draw_esd(ax, record: dict) -> None:
    eigenvalues = np.asarray(record["eigenvalues"], dtype=float)
    positive = eigenvalues[eigenvalues > eigenvalues.max() * _NUMERICAL_ZERO]
    if positive.size == 0:
        return
    low, high = positive.min(), positive.max()
    bins = np.geomspace(low, high * 1.0001, 30) if high > low else np.array([low * 0.9, high * 1.1])
    ax.hist(positive, bins=bins, density=True, color="C0", alpha=0.6, label="ESD")
    randomized = np.asarray(record.get("rand_eigenvalues") or [], dtype=float)
    randomized = randomized[(randomized >= low) & (randomized <= high)] if randomized.size else randomized
    if randomized.size:  # WeightWatcher's overlay: the ESD of the elementwise-shuffled weights
        ax.hist(randomized, bins=bins, density=True, histtype="step", color="C1", linewidth=1.5,
                label="randomized ESD")
    if record.get("bulk_max") is not None:  # the Marchenko-Pastur bulk edge
        ax.axvline(record["bulk_max"], color="C2", linestyle="--", linewidth=1.2,
                   label=f"MP bulk edge ({record.get('num_spikes', 0)} spikes)")
    if record.get("num_traps"):
        ax.axvline(record["rand_bulk_max"], color="C1", linestyle="--", linewidth=1.2,
                   label=f"{record['num_traps']} correlation traps beyond")
    alpha, xmin, n_tail = record.get("alpha"), record.get("xmin"), record.get("n_tail")
    if alpha is not None and xmin is not None and n_tail:
        grid = np.geomspace(xmin, high, 50)
        density = n_tail / positive.size * (alpha - 1) / xmin * (grid / xmin) ** -alpha
        ax.plot(grid, density, color="C3", linewidth=2, label=f"power law, alpha = {alpha:.2f}")
        ax.axvline(xmin, color="C3", linestyle=":", linewidth=1, label=f"xmin = {xmin:.3g}")
    ax.set(xscale="log", yscale="log", xlabel="eigenvalue of W^T W / N")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow range overlap
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)  # under the axes


# -- alpha against rand_distance, per layer ----------------------------------------------------------------
@register_figure("spectra_alpha")
def spectra_alpha_rand_distance(run: Run, options: dict) -> list:
    """Each layer's power-law alpha against its rand_distance at the last epoch (WeightWatcher's blog's
    last figure): well-trained layers sit at low alpha (2-6) and a large distance from their shuffle."""
    groups = _by_mode(documents_of(run, "spectra"))
    documents = groups.get("slices") or next(iter(groups.values()), None)
    if not documents:
        raise MissingData("spectra results carry no epoch")
    last = documents[-1]
    points = [(layer["name"], layer.get("alpha"), layer.get("rand_distance")) for layer in last["layers"]
              if layer.get("alpha") is not None and layer.get("rand_distance") is not None]
    if not points:
        raise MissingData("no layer has both alpha and rand_distance")
    fig, ax = subplots(figsize=(6.4, 4.6))
    ax.axvspan(2, 6, color="C2", alpha=0.08, label="2 <= alpha <= 6 (WeightWatcher: well trained)")
    for index, (_, alpha, distance) in enumerate(points):
        ax.scatter(alpha, distance, color=f"C{index % 10}", s=40, zorder=2)
    ax.set(xlabel="power-law exponent alpha", ylabel="rand_distance (JS, ESD vs shuffled ESD)")
    ax.grid(alpha=0.3)
    ax.margins(0.12)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)  # under the axes
    fig.suptitle(run_title(f"alpha vs rand_distance per layer, epoch {last.get('epoch')}", arch=last.get("arch"),
                           dataset=last.get("dataset"), seed=last.get("seed")))
    fig.tight_layout()
    place_labels(ax, [alpha for _, alpha, _ in points], [distance for _, _, distance in points],
                 [name for name, _, _ in points], fontsize=8)
    return [(_stem("spectra_alpha_rand_distance", last.get("conv_mode", "slices")), fig)]
