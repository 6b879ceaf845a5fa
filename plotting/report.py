"""The demo's ``report.md``: figures embedded, and in plain words which layers are biased, which
are critical, and how the two correlate."""
from __future__ import annotations

import json
import os
from pathlib import Path

from plotting.figures import SIGNIFICANCE, layer_records, sign_test_p
from utils.fileio import atomic_write

CRITICAL_DROP = 0.10  # relative top-1 drop that makes a layer "critical"


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def reinit_layer_names(reinit: dict) -> list[str]:
    names = reinit.get("layers") or []
    return [n["name"] if isinstance(n, dict) else str(n) for n in names]


def bias_and_criticality(projections: dict, reinit: dict | None) -> list[dict]:
    """Per layer: mass, sign-test p, and (when a reinit sweep exists) the drop from epoch 0."""
    rows = [{"layer": name, "mass": rec.get("mass"), "p": sign_test_p(rec)} for name, rec in layer_records(projections)]
    if reinit:
        drops = dict(zip(reinit_layer_names(reinit), reinit.get("init_from_epoch", {}).get("0", [])))
        top1 = reinit.get("top1_test") or 0
        for row in rows:
            if row["layer"] in drops and top1:
                row["drop"] = (top1 - drops[row["layer"]]) / top1
    return rows


def spearman(rows: list[dict]) -> tuple[float, float] | None:
    pairs = [(abs(r["mass"] - 0.5), r["drop"]) for r in rows if r.get("drop") is not None and r["mass"] is not None]
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr

    result = spearmanr(*zip(*pairs))
    return float(result.statistic), float(result.pvalue)


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
                         f"epoch 0 is {correlation[0]:.2f} (p = {correlation[1]:.2g}, {len(with_drop)} layers).")
    return lines


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
    for png in sorted(plots_dir.rglob("*.png")):
        lines += [f"## {png.stem.replace('_', ' ')}", "", f"![{png.stem}]({os.path.relpath(png, path.parent)})", ""]
    lines += ["## Files", "", f"- snapshots and run.json: `{run_dir}`", f"- result JSON: `{results_dir}`",
              f"- figures (PNG + PDF): `{plots_dir}`", ""]
    text = "\n".join(lines).encode()
    return atomic_write(path, lambda handle: handle.write(text))
