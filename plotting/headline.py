"""The paper's headline, per layer: orientation bias against the re-initialization drop from epoch 0.

Shared by ``plot_results.py`` (the figure) and the demo's report (the sentences), so both state the
same numbers.
"""
from __future__ import annotations

import math

import matplotlib
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from comparison.correlation import rank_correlation
from plotting.common import place_labels, run_title, subplots
from plotting.figures import layer_records, sign_test_p
from plotting.registry import MissingData, documents_of, register_figure
from schema.chance import chance_of
from schema.reference import reinit_layer_names
from schema.runs import Run


def bias_and_criticality(projections: dict, reinit: dict | None) -> list[dict]:
    """Per layer: mass, sign-test p, and (with a reinit sweep) the relative top-1 drop from epoch 0."""
    rows = [{"layer": name, "mass": rec.get("mass"), "p": sign_test_p(rec)} for name, rec in layer_records(projections)]
    if reinit:
        accuracies = (reinit.get("init_from_epoch") or {}).get("0") or []
        names = reinit_layer_names(reinit)
        if not reinit.get("layer_names") and len(accuracies) == len(rows):
            names = [row["layer"] for row in rows]  # the reference's files: both list the convs in forward order
        drops = dict(zip(names, accuracies))
        top1 = reinit.get("top1_test") or 0
        for row in rows:
            if drops.get(row["layer"]) is not None and top1:
                row["drop"] = (top1 - drops[row["layer"]]) / top1
    return rows


def bias(row: dict) -> float | None:
    return None if row.get("mass") is None else abs(row["mass"] - 0.5)


def spearman(rows: list[dict]) -> tuple[float, float, int] | None:
    """Spearman correlation of |mass - 0.5| with the drop over the layers that have both."""
    pairs = [(bias(r), r["drop"]) for r in rows if r.get("drop") is not None and bias(r) is not None]
    return rank_correlation(*zip(*pairs)) if pairs else None


def matching_documents(run: Run) -> tuple[dict, dict]:
    """The latest reinit sweep with a row from epoch 0, and the projections of the same epoch."""
    sweeps = [d for d in documents_of(run, "reinit") if "0" in (d.get("init_from_epoch") or {})]
    if not sweeps:
        raise MissingData("no reinit sweep from epoch 0")
    projections = {d.get("epoch"): d for d in documents_of(run, "projections")}
    for sweep in reversed(sweeps):
        if sweep.get("epoch") in projections:
            return projections[sweep["epoch"]], sweep
    raise MissingData(f"no projection results at the reinit sweep's epoch {sweeps[-1].get('epoch')}")


def _layer_colours(count: int):
    """A colour per layer in forward order: distinct colours for a few layers, a sequence for many."""
    if count <= 10:
        return [f"C{i}" for i in range(count)]
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(1, count - 1)) for i in range(count)]


def _colour_key(fig, axes, rows: list[dict], colours) -> None:
    """The colours' legend: layer names beside the axes (a few layers) or a depth colour bar (many)."""
    if len(rows) <= 10:
        handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=row["layer"])
                   for row, colour in zip(rows, colours)]
        axes[-1].legend(handles=handles, title="layer (forward order)", fontsize=8, title_fontsize=8,
                        loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0)
        return
    mappable = ScalarMappable(Normalize(0, len(rows) - 1), cmap="viridis")
    bar = fig.colorbar(mappable, ax=list(axes), pad=0.02)
    bar.set_ticks([0, len(rows) - 1], labels=[rows[0]["layer"], rows[-1]["layer"]])
    bar.set_label("layer (forward order)")


def headline_title(sweep: dict, rows: list[dict], projections: dict | None = None) -> str:
    """The title: the run, then Spearman's rho as a finding, or, for a model at chance, what it describes."""
    head = run_title("bias vs criticality", arch=sweep.get("arch"), dataset=sweep.get("dataset"),
                     seed=sweep.get("seed"), epoch=sweep.get("epoch"))
    verdict = chance_of(sweep) or chance_of(projections)
    correlation = spearman(rows)
    if verdict is not None and not verdict.above_chance:
        rho = f"rho {correlation[0]:.2f} over {correlation[2]} layers" if correlation else "any correlation"
        return (f"{head}\nMODEL AT CHANCE: test top-1 {verdict.top1:.3g}% vs {verdict.chance:.3g}% by guessing "
                f"(binomial p = {verdict.p_value:.2g})\nSpearman {rho} describes an untrained model, not a finding")
    summary = (f"Spearman rho = {correlation[0]:.2f} (p = {correlation[1]:.2g}, {correlation[2]} layers)"
               if correlation else "too few layers for a correlation")
    return f"{head}\n{summary}"


@register_figure("headline")
def headline(run: Run, options: dict) -> list:
    """Per layer: |mass - 0.5| and the sign test's -log10 p against the drop from epoch 0; each point is
    coloured by its layer (a legend names the colours) and labelled where the label overlaps nothing."""
    projections, sweep = matching_documents(run)
    rows = [r for r in bias_and_criticality(projections, sweep) if r.get("drop") is not None and bias(r) is not None]
    if not rows:
        raise MissingData("the projection and reinit results share no layer")
    fig, axes = subplots(1, 2, figsize=(11.5, 4.6), sharey=True)
    colours = _layer_colours(len(rows))
    drops = [100 * r["drop"] for r in rows]
    log_p = [-math.log10(max(r["p"], 1e-300)) if r["p"] is not None else float("nan") for r in rows]
    panels = ((axes[0], [bias(r) for r in rows], "orientation bias |mass - 0.5|"), (axes[1], log_p, "sign test -log10 p"))
    for ax, xs, xlabel in panels:
        ax.scatter(xs, drops, c=colours, s=40, zorder=3, edgecolors="black", linewidths=0.4)
        ax.set(xlabel=xlabel)
        ax.grid(alpha=0.3)
        ax.margins(0.12)
    axes[1].axvline(2, color="grey", linestyle=":", linewidth=1)
    axes[1].annotate("p = 0.01", (2, 1), xycoords=("data", "axes fraction"), xytext=(3, -3),
                     textcoords="offset points", va="top", fontsize=8, color="grey")
    axes[0].set_ylabel("re-init to epoch 0: relative top-1 drop (%)")
    _colour_key(fig, axes, rows, colours)
    fig.suptitle(headline_title(sweep, rows, projections), fontsize=11)
    fig.tight_layout()
    for ax, xs, _ in panels:
        place_labels(ax, xs, drops, [r["layer"] for r in rows], fontsize=8)
    return [("headline_bias_vs_reinit", fig)]
