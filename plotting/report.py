"""The demo's ``report.md``: figures embedded, and in plain words which layers are biased, which
are critical, and how the two correlate."""
from __future__ import annotations

import json
import os
from pathlib import Path

from plotting.figures import SIGNIFICANCE
from plotting.headline import bias_and_criticality, spearman
from utils.fileio import atomic_write

CRITICAL_DROP = 0.10  # relative top-1 drop that makes a layer "critical"


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _final_document(results_dir: Path, prefix: str) -> dict | None:
    files = sorted(results_dir.glob(f"{prefix}_*.json"), key=lambda p: (_load(p) or {}).get("epoch") or -1)
    files = [f for f in files if "summary" not in f.name]
    return _load(files[-1]) if files else None


def _sentences(rows: list[dict]) -> list[str]:
    biased = [r for r in rows if r["p"] is not None and r["p"] < SIGNIFICANCE]
    lines = []
    if biased:
        described = ", ".join(f"`{r['layer']}` (mass {r['mass']:.2f}, p = {r['p']:.1e})" for r in biased)
        lines.append(f"**Biased layers** (sign test of mass = 0.5, p < {SIGNIFICANCE}): {described}.")
    else:
        lines.append(f"**No layer is significantly biased** (every sign test has p >= {SIGNIFICANCE}).")
    with_drop = [r for r in rows if r.get("drop") is not None]
    if with_drop:
        critical = [r for r in with_drop if r["drop"] > CRITICAL_DROP]
        described = ", ".join(f"`{r['layer']}` ({100 * r['drop']:.0f}% relative drop)" for r in critical) or "none"
        lines.append(f"**Critical layers** (re-initializing to epoch 0 costs more than "
                     f"{100 * CRITICAL_DROP:.0f}% of test top-1): {described}.")
        correlation = spearman(rows)
        if correlation:
            lines.append(f"**Bias vs criticality**: Spearman correlation between |mass - 0.5| and the drop from "
                         f"epoch 0 is {correlation[0]:.2f} (p = {correlation[1]:.2g}, {correlation[2]} layers).")
    return lines


FIGURE_ORDER = ("training_curves", "headline", "reinit", "projection_heatmaps", "projection_histograms", "dse",
                "hsic_plane", "spectra_heatmaps", "spectra_esd")


def _figure_order(png: Path) -> tuple[int, str]:
    """The report's reading order: training, the headline, then each analysis."""
    rank = next((i for i, prefix in enumerate(FIGURE_ORDER) if png.stem.startswith(prefix)), len(FIGURE_ORDER))
    return rank, png.stem


def _dse_sentence(summary: dict) -> str:
    epochs, dse, dsmi = summary["epochs"], summary.get("dse") or [], summary.get("dsmi_y") or []
    sigma = (summary.get("settings") or {}).get("sigma")

    def bits(values, i):
        return "n/a" if i >= len(values) or values[i] is None else f"{values[i]:.2f}"

    return (f"**Diffusion spectral entropy** of the {summary.get('layer') or 'penultimate'} representation "
            f"(sigma = {sigma}, {(summary.get('probe') or {}).get('size', '?')} probe samples, at most "
            f"{summary.get('log2_size', float('nan')):.2f} bits): DSE {bits(dse, 0)} bits at epoch {epochs[0]}, "
            f"{bits(dse, -1 % len(epochs))} bits at epoch {epochs[-1]}; DSMI(Z; Y) {bits(dsmi, 0)} -> "
            f"{bits(dsmi, -1 % len(epochs))} bits.")


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


def write_report(path: Path, *, run_dir: Path, results_dir: Path, plots_dir: Path, timings: dict) -> Path:
    record = _load(run_dir / "run.json") or {}
    projections = _final_document(results_dir, "projections")
    reinit = _final_document(results_dir, "reinit")
    epochs = record.get("epochs") or [{}]
    lines = [f"# Demo report: {record.get('arch')} on {record.get('dataset')}, seed {record.get('seed')}", ""]
    test = record.get("test") or {}
    lines.append(f"Trained {len(epochs)} epochs in {timings.get('training', 0):.0f}s; validation top-1 "
                 f"{epochs[-1].get('val_top1', float('nan')):.2f}%, test top-1 {test.get('top1', float('nan')):.2f}%. "
                 f"Whole pipeline: {timings.get('total', 0):.0f}s.")
    lines.append("")
    if projections:
        lines += _sentences(bias_and_criticality(projections, reinit))
        lines.append("")
    dse = _load(results_dir / "dse_summary.json")
    if dse and dse.get("epochs"):
        lines += [_dse_sentence(dse), ""]
    spectra = _load(results_dir / "spectra_summary.json")
    if spectra and spectra.get("epochs"):
        lines += [_spectra_sentence(spectra), ""]
    for png in sorted(plots_dir.rglob("*.png"), key=_figure_order):
        lines += [f"## {png.stem.replace('_', ' ')}", "", f"![{png.stem}]({os.path.relpath(png, path.parent)})", ""]
    lines += ["## Files", "", f"- snapshots and run.json: `{run_dir}`", f"- result JSON: `{results_dir}`",
              f"- figures (PNG + PDF): `{plots_dir}`", ""]
    text = "\n".join(lines).encode()
    return atomic_write(path, lambda handle: handle.write(text))
