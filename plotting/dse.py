"""DSE, DSMI(Z; Y), DSMI(Z; X) and accuracy against epoch, from the per-snapshot DSE results and run.json."""
from __future__ import annotations

from collections import defaultdict

from plotting.common import run_title, subplots
from plotting.registry import MissingData, register_figure
from schema.runs import Run


def _series(run: Run) -> dict[str, list[dict]]:
    """DSE documents by measurement (layer and kernel settings), each sorted by epoch.

    Per-snapshot files are preferred; a folder holding only ``dse_summary.json`` (e.g. copied
    without the per-snapshot files) is read from the summary's parallel lists.
    """
    documents = [d for d in run.documents.get("dse", []) if d.get("epoch") is not None]
    if not documents:
        for summary in run.documents.get("dse_summary", []):
            for i, epoch in enumerate(summary.get("epochs") or []):
                documents.append({"epoch": epoch, "settings": summary.get("settings") or {},
                                  "layer": summary.get("layer"), "log2_size": summary.get("log2_size"),
                                  "arch": summary.get("arch"), "dataset": summary.get("dataset"),
                                  "seed": summary.get("seed"),
                                  **{key: (summary.get(key) or [None] * (i + 1))[i] for key in ("dse", "dsmi_y", "dsmi_x", "cse")}})
    if not documents:
        raise MissingData("no 'dse' results")
    groups: dict[str, list[dict]] = defaultdict(list)
    for document in documents:
        settings = document.get("settings") or {}
        label = f"{document.get('layer') or 'penultimate'}, sigma {settings.get('sigma', '?')}, t {settings.get('t', '?')}"
        groups[label].append(document)
    return {label: sorted(docs, key=lambda d: d["epoch"]) for label, docs in groups.items()}


def _accuracy(run: Run) -> tuple[list[int], list[float], str] | None:
    rows = (run.record or {}).get("epochs") or []
    rows = [row for row in rows if row.get("val_top1") is not None]
    if not rows:
        return None
    return [row["epoch"] for row in rows], [row["val_top1"] for row in rows], rows[-1].get("eval_split", "val")


@register_figure("dse")
def dse_curves(run: Run, options: dict) -> list:
    """Three panels against epoch: DSE(Z) (with log2 N, its ceiling), DSMI(Z; Y) and DSMI(Z; X) (dashed),
    accuracy."""
    series = _series(run)
    accuracy = _accuracy(run)
    panels = 3 if accuracy else 2
    fig, axes = subplots(1, panels, figsize=(4.2 * panels, 3.8))
    for index, (label, documents) in enumerate(series.items()):
        color = f"C{index}"
        epochs = [d["epoch"] for d in documents]
        axes[0].plot(epochs, [d.get("dse") for d in documents], marker="o", color=color, label=label)
        axes[1].plot(epochs, [d.get("dsmi_y") for d in documents], marker="o", color=color,
                     label="DSMI(Z; Y)" if index == 0 else None)
        if any(d.get("dsmi_x") is not None for d in documents):
            axes[1].plot(epochs, [d.get("dsmi_x") for d in documents], marker="^", linestyle="--", color=color,
                         label="DSMI(Z; X)" if index == 0 else None)
        ceiling = documents[-1].get("log2_size")
        if ceiling:
            axes[0].axhline(ceiling, color=color, linestyle=":", linewidth=1, label=f"log2 N = {ceiling:.1f}")
    axes[0].set(xlabel="epoch", ylabel="bits", title="DSE(Z)")
    axes[1].set(xlabel="epoch", ylabel="bits", title="DSMI with the labels (Y) and the inputs (X)")
    if accuracy:
        epochs, top1, split = accuracy
        axes[2].plot(epochs, top1, marker="s", color="C3")
        axes[2].set(xlabel="epoch", ylabel="top-1 (%)", title=f"{split} accuracy", ylim=(0, 100))
    for ax in axes:
        ax.grid(alpha=0.3)
    for ax in axes[:2]:  # under the axes: a legend inside would cover the curves
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    last = next(iter(series.values()))[-1]
    fig.suptitle(run_title("diffusion spectral entropy", arch=last.get("arch"), dataset=last.get("dataset"),
                           seed=last.get("seed")))
    fig.tight_layout()
    return [("dse_curves", fig)]
