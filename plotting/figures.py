"""The figure builders behind plot_results.py, registered by name."""
from __future__ import annotations

import numpy as np

from plotting.common import chosen_epochs, run_title, subplots
from plotting.registry import MissingData, documents_of, register_figure
from schema.runs import Run
from schema.thresholds import SIGNIFICANCE

MAX_WIDTH_INCHES = 13.0  # 1950 px at the saved 150 dpi


@register_figure("training")
def training_curves(run: Run, options: dict) -> list:
    """Loss and top-1 accuracy against epoch, from train.py's run.json."""
    record = documents_of(run, "run")[0]
    rows = record.get("epochs") or []
    if not rows:
        raise MissingData("run.json has no finished epoch")
    epochs = [row["epoch"] for row in rows]
    split = rows[-1].get("eval_split", "val")
    fig, (ax_loss, ax_acc) = subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [row["train_loss"] for row in rows], marker="o", label="train")
    ax_loss.plot(epochs, [row["val_loss"] for row in rows], marker="s", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.plot(epochs, [row["val_top1"] for row in rows], marker="s", color="C1", label=f"{split} top-1")
    if "train_top1" in rows[0]:
        ax_acc.plot(epochs, [row["train_top1"] for row in rows], marker="o", color="C0", label="train top-1")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.suptitle(run_title("training", arch=record["arch"], dataset=record["dataset"], seed=record["seed"]))
    fig.tight_layout()
    return [("training_curves", fig)]


# -- projections ---------------------------------------------------------------------------------



def layer_records(document: dict) -> list[tuple[str, dict]]:
    """(label, statistics) per layer in forward order: the module names of our files, ``stage
    <s>.<b>`` for the reference's (as ``schema.load`` normalizes them)."""
    return [(layer["name"], layer) for layer in document.get("layers") or []]


def sign_test_p(record: dict) -> float | None:
    """The stored sign-test p-value (``schema.load`` computes it for the reference's files)."""
    return record.get("sign_test_p")


def _projection_documents(run: Run) -> list[dict]:
    documents = [d for d in documents_of(run, "projections") if d.get("epoch") is not None]
    if not documents:
        raise MissingData("projection results carry no epoch")
    return documents


def _matrix(documents: list[dict], labels: list[str], value) -> np.ndarray:
    grid = np.full((len(labels), len(documents)), np.nan)
    for column, document in enumerate(documents):
        records = dict(layer_records(document))
        for row, label in enumerate(labels):
            if label in records:
                got = value(records[label])
                grid[row, column] = np.nan if got is None else got
    return grid


def _heatmap(ax, grid, *, labels, epochs, cmap, vmin, vmax, title, colorbar_label, marks=None):
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    every = max(1, len(epochs) // 30)  # many snapshots: every n-th epoch named, so that names do not collide
    ax.set_xticks(range(0, len(epochs), every), [str(e) for e in epochs[::every]])
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="epoch", title=title)
    if marks is not None:
        rows, columns = np.nonzero(marks)
        ax.scatter(columns, rows, marker="*", s=40, c="black", label=f"sign test p < {SIGNIFICANCE}")
        if len(rows):
            ax.legend(loc="upper left", bbox_to_anchor=(0, -0.12), frameon=False)
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)


@register_figure("projection_heatmaps")
def projection_heatmaps(run: Run, options: dict) -> list:
    """Layers x epochs heatmaps of the mean projection and of mass = P(p <= 0)."""
    documents = _projection_documents(run)
    epochs = [int(d["epoch"]) for d in documents]
    labels = [label for label, _ in layer_records(documents[-1])]
    means = _matrix(documents, labels, lambda r: r.get("mean"))
    masses = _matrix(documents, labels, lambda r: r.get("mass"))
    significant = _matrix(documents, labels, sign_test_p) < SIGNIFICANCE
    normalized = bool(documents[-1].get("normalize", False))
    limit = np.nanmax(np.abs(means)) if np.isfinite(means).any() else 1.0
    height = 1.2 + 0.32 * len(labels)
    width = 2.4 + 0.4 * len(epochs)
    beside = 2 * width + 1.5 <= MAX_WIDTH_INCHES  # else one panel above the other, as wide as allowed
    shape, size = ((1, 2), (2 * width + 1.5, height + 1.2)) if beside else \
        ((2, 1), (min(MAX_WIDTH_INCHES, width + 1.5), 2 * height + 1.6))
    fig, (ax_mean, ax_mass) = subplots(*shape, figsize=size)
    _heatmap(ax_mean, means, labels=labels, epochs=epochs, cmap="RdBu_r", vmin=-limit, vmax=limit,
             title="mean projection" + (" (normalized)" if normalized else ""), colorbar_label="mean <w, 1>")
    _heatmap(ax_mass, masses, labels=labels, epochs=epochs, cmap="PuOr_r", vmin=0, vmax=1,
             title="mass = P(p <= 0)", colorbar_label="fraction of filters", marks=significant)
    if beside:
        ax_mass.set_yticks(range(len(labels)), [""] * len(labels))
    last = documents[-1]
    fig.suptitle(run_title("projections", arch=last["arch"], dataset=last["dataset"], seed=last.get("seed")))
    fig.tight_layout()
    return [("projection_heatmaps", fig)]


@register_figure("projection_histograms")
def projection_histograms(run: Run, options: dict) -> list:
    """Per layer, histograms of the filters' projections at chosen epochs over the first (init)."""
    documents = {int(d["epoch"]): d for d in _projection_documents(run)}
    epochs = chosen_epochs(sorted(documents), options.get("epochs"), "projection")
    first = min(documents)
    shown = [first] + [e for e in epochs if e != first]
    labels = [label for label, record in layer_records(documents[shown[-1]]) if record.get("projections")]
    if not labels:
        raise MissingData("projection results hold no per-filter projections")
    columns = min(4, len(labels))
    rows = -(-len(labels) // columns)
    fig, axes = subplots(rows, columns, figsize=(3.1 * columns, 2.6 * rows + 0.6), squeeze=False)
    colors = [f"C{i}" for i in range(len(shown))]
    for ax, label in zip(axes.flat, labels):
        values = {e: dict(layer_records(documents[e])).get(label, {}).get("projections") or [] for e in shown}
        pooled = np.concatenate([np.asarray(v, dtype=float) for v in values.values() if len(v)])
        bins = np.linspace(pooled.min(), pooled.max(), 25) if pooled.max() > pooled.min() else 10
        for color, epoch in zip(colors, shown):
            if values[epoch]:
                kind = "step" if epoch != first else "stepfilled"
                ax.hist(values[epoch], bins=bins, histtype=kind, color=color, alpha=0.35 if epoch == first else 1.0,
                        linewidth=1.5, label=f"epoch {epoch}" + (" (init)" if epoch == 0 else ""))
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("projection")
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("filters")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=len(names), frameon=False)
    last = documents[shown[-1]]
    fig.suptitle(run_title("projection histograms", arch=last["arch"], dataset=last["dataset"], seed=last.get("seed")))
    fig.tight_layout(rect=(0, 0.5 / (2.6 * rows + 0.6), 1, 1))
    return [("projection_histograms", fig)]
