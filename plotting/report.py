"""The demo's ``report.md``: figures embedded, and in plain words which layers are biased, which
are critical, how the two correlate, and how DSE and the spectra moved. Documents in, Markdown
text out (the demo writes it)."""
from __future__ import annotations

import os
from pathlib import Path

from plotting.headline import bias_and_criticality, spearman
from schema.chance import chance_of
from schema.runs import Run
from schema.thresholds import CRITICAL_DROP, SIGNIFICANCE, SPECTRA_CONV_MODE


def _last(run: Run, kind: str) -> dict | None:
    """The latest-epoch document of ``kind``, or None."""
    found = run.of_kind(kind)
    return found[-1] if found else None


def _sentences(rows: list[dict], verdict=None) -> list[str]:
    """The headline in words; for a model at chance (``verdict``), one note first and the layer
    findings marked as describing an untrained model."""
    biased = [r for r in rows if r["p"] is not None and r["p"] < SIGNIFICANCE]
    lines = []
    untrained = verdict is not None and not verdict.above_chance
    if untrained:
        lines.append(f"**The model is at chance** ({verdict.describe()}): the critical layers and the "
                     "bias-criticality correlation below describe an untrained model, not findings.")
    if biased:
        described = ", ".join(f"`{r['layer']}` (mass {r['mass']:.2f}, p = {r['p']:.1e})" for r in biased)
        lines.append(f"**Biased layers** (sign test of mass = 0.5, p < {SIGNIFICANCE}): {described}.")
    else:
        lines.append(f"**No layer is significantly biased** (every sign test has p >= {SIGNIFICANCE}).")
    with_drop = [r for r in rows if r.get("drop") is not None]
    if with_drop:
        critical = [r for r in with_drop if r["drop"] > CRITICAL_DROP]
        described = ", ".join(f"`{r['layer']}` ({100 * r['drop']:.0f}% relative drop)" for r in critical) or "none"
        lines.append(f"**Critical layers**{' of an untrained model' if untrained else ''} (re-initializing to "
                     f"epoch 0 costs more than "
                     f"{100 * CRITICAL_DROP:.0f}% of test top-1): {described}.")
        correlation = spearman(rows)
        if correlation:
            lines.append(f"**Bias vs criticality**{' (an untrained model)' if untrained else ''}: Spearman correlation between |mass - 0.5| and the drop from "
                         f"epoch 0 is {correlation[0]:.2f} (p = {correlation[1]:.2g}, {correlation[2]} layers).")
    return lines


FIGURE_ORDER = ("training_curves", "headline", "reinit", "projection_heatmaps", "projection_histograms", "dse",
                "hsic_plane", "hsic_epochs", "spectra_heatmaps", "spectra_esd", "spectra_alpha")


def _figure_order(png: Path) -> tuple[int, str]:
    """The report's reading order: training, the headline, then each analysis."""
    rank = next((i for i, prefix in enumerate(FIGURE_ORDER) if png.stem.startswith(prefix)), len(FIGURE_ORDER))
    return rank, png.stem


def _dse_sentence(summary: dict) -> str:
    epochs, dse, dsmi = summary["epochs"], summary.get("dse") or [], summary.get("dsmi_y") or []
    dsmi_x = summary.get("dsmi_x") or []
    sigma = (summary.get("settings") or {}).get("sigma")

    def bits(values, i):
        return "n/a" if i >= len(values) or values[i] is None else f"{values[i]:.2f}"

    return (f"**Diffusion spectral entropy** of the {summary.get('layer') or 'penultimate'} representation "
            f"(sigma = {sigma}, {(summary.get('probe') or {}).get('size', '?')} probe samples, at most "
            f"{summary.get('log2_size', float('nan')):.2f} bits): DSE {bits(dse, 0)} bits at epoch {epochs[0]}, "
            f"{bits(dse, -1 % len(epochs))} bits at epoch {epochs[-1]}; DSMI(Z; Y) {bits(dsmi, 0)} -> "
            f"{bits(dsmi, -1 % len(epochs))} bits"
            + (f"; DSMI(Z; X) with the inputs' clusters {bits(dsmi_x, 0)} -> {bits(dsmi_x, -1 % len(epochs))} bits."
               if any(v is not None for v in dsmi_x) else "."))


def _spectra_sentence(summary: dict) -> str:
    epochs, net = summary["epochs"], summary.get("net") or {}

    def first_last(metric):
        values = net.get(metric) or []
        shown = ["n/a" if v is None else f"{v:.2f}" for v in (values[0], values[-1])] if values else ["n/a"] * 2
        return f"{shown[0]} -> {shown[1]}"

    return (f"**Weight spectra** (means over {len(summary.get('layers') or [])} layers, epoch {epochs[0]} -> "
            f"{epochs[-1]}): power-law alpha {first_last('alpha')}, matrix entropy {first_last('entropy')}, "
            f"rand_distance {first_last('rand_distance')} (lower alpha and entropy, and a larger distance from "
            f"shuffled weights, mean more learned structure).")


def _weightwatcher_sentence(document: dict) -> str:
    """Which layers of the last spectra document WeightWatcher would flag, and why."""
    layers = document.get("layers") or []

    def named(rows, value):
        return ", ".join(f"`{layer['name']}` ({value(layer)})" for layer in rows) or "none"

    over = [layer for layer in layers if layer.get("warning") == "over-trained"]
    under = [layer for layer in layers if layer.get("warning") == "under-trained"]
    trapped = [layer for layer in layers if layer.get("num_traps")]
    traps = ("not computed (--no-traps)" if document.get("traps") is False
             else named(trapped, lambda layer: layer["num_traps"]))
    def alpha(layer):
        return f"alpha {layer['alpha']:.2f}"

    return (f"**WeightWatcher's flags** (epoch {document.get('epoch')}): over-trained, alpha < 2: "
            f"{named(over, alpha)}; under-trained, alpha > 6: {named(under, alpha)}; correlation traps (spikes of "
            f"the randomized ESD beyond its Marchenko-Pastur edge: large weights that shuffling does not spread): "
            f"{traps}.")


def report_markdown(run: Run, *, report_dir: Path, figures: list[Path], run_dir: Path, results_dir: Path,
                    plots_dir: Path, timings: dict) -> str:
    """The report of one run (its documents: run.json and the results), embedding ``figures``
    (PNG paths, linked relative to ``report_dir``)."""
    record = run.record or {}
    projections = _last(run, "projections")
    epochs = record.get("epochs") or [{}]
    lines = [f"# Demo report: {record.get('arch')} on {record.get('dataset')}, seed {record.get('seed')}", ""]
    test = record.get("test") or {}
    lines.append(f"Trained {len(epochs)} epochs in {timings.get('training', 0):.0f}s; validation top-1 "
                 f"{epochs[-1].get('val_top1', float('nan')):.2f}%, test top-1 {test.get('top1', float('nan')):.2f}%. "
                 f"Whole pipeline: {timings.get('total', 0):.0f}s.")
    lines.append("")
    if projections:
        sweep = _last(run, "reinit")
        lines += _sentences(bias_and_criticality(projections, sweep), chance_of(sweep))
        lines.append("")
    dse = next((d for d in run.documents.get("dse_summary") or [] if (d.get("settings") or {}).get("layer") is None),
               None)
    if dse and dse.get("epochs"):
        lines += [_dse_sentence(dse), ""]
    spectra = run.summary("spectra_summary", conv_mode=SPECTRA_CONV_MODE)
    if spectra and spectra.get("epochs"):
        lines += [_spectra_sentence(spectra), ""]
    last_spectra = [d for d in run.of_kind("spectra") if d.get("conv_mode", SPECTRA_CONV_MODE) == SPECTRA_CONV_MODE and d.get("epoch") is not None]
    if last_spectra and "warning" in ((last_spectra[-1].get("layers") or [{}])[0]):
        lines += [_weightwatcher_sentence(last_spectra[-1]), ""]
    for png in sorted(figures, key=_figure_order):
        lines += [f"## {png.stem.replace('_', ' ')}", "", f"![{png.stem}]({os.path.relpath(png, report_dir)})", ""]
    lines += ["## Files", "", f"- snapshots and run.json: `{run_dir}`", f"- result JSON: `{results_dir}`",
              f"- figures (PNG + PDF): `{plots_dir}`", ""]
    return "\n".join(lines)
