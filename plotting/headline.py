"""The paper's headline, per layer: orientation bias against the re-initialization drop from epoch 0.

Shared by ``plot_results.py`` (the figure) and the demo's report (the sentences), so both state the
same numbers.
"""
from __future__ import annotations

import math

from comparison.correlation import rank_correlation
from plotting.common import run_title, subplots
from plotting.figures import layer_records, sign_test_p
from plotting.registry import MissingData, documents_of, register_figure
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


@register_figure("headline")
def headline(run: Run, options: dict) -> list:
    """Per layer: |mass - 0.5| and the sign test's -log10 p against the drop from epoch 0."""
    projections, sweep = matching_documents(run)
    rows = [r for r in bias_and_criticality(projections, sweep) if r.get("drop") is not None and bias(r) is not None]
    if not rows:
        raise MissingData("the projection and reinit results share no layer")
    fig, (ax_mass, ax_p) = subplots(1, 2, figsize=(10, 4.2), sharey=True)
    drops = [100 * r["drop"] for r in rows]
    log_p = [-math.log10(max(r["p"], 1e-300)) if r["p"] is not None else float("nan") for r in rows]
    for ax, xs, xlabel in ((ax_mass, [bias(r) for r in rows], "orientation bias |mass - 0.5|"),
                           (ax_p, log_p, "sign test -log10 p")):
        ax.scatter(xs, drops, c=range(len(rows)), cmap="viridis", s=40, zorder=3)
        for x, y, row in zip(xs, drops, rows):
            ax.annotate(row["layer"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
        ax.set(xlabel=xlabel)
        ax.grid(alpha=0.3)
    ax_p.axvline(2, color="grey", linestyle=":", linewidth=1, label="p = 0.01")
    ax_p.legend(fontsize=8)
    ax_mass.set_ylabel("re-init to epoch 0: relative top-1 drop (%)")
    correlation = spearman(rows)
    summary = (f"Spearman rho = {correlation[0]:.2f} (p = {correlation[1]:.2g}, {correlation[2]} layers)"
               if correlation else "too few layers for a correlation")
    fig.suptitle(run_title("bias vs criticality", arch=sweep.get("arch"), dataset=sweep.get("dataset"),
                           seed=sweep.get("seed"), epoch=sweep.get("epoch")) + "\n" + summary)
    fig.tight_layout()
    return [("headline_bias_vs_reinit", fig)]
