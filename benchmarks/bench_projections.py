"""Projection statistics of VGG19 (143M parameters) on the CPU, ours vs a reference-style loop.

    python benchmarks/bench_projections.py [--repeats 3] [--threads N]

The model (and a second, differently seeded VGG19 as its "initialization") is built and its
layers enumerated before timing; what is timed is computing the statistics of every conv and
linear layer (``--with-linear``, normalized) with distances from init and KS tests, as
``compute_projections.py`` does per snapshot. The baseline follows the reference tool: a Python
loop over layers, projections via ``.cpu().numpy()``, normalization via ``(w.clone() ** 2)``,
the ECDF mass, ``torch.norm`` distances, plus the same new statistics done the plain way (numpy
quantiles/histogram, scipy tests, numpy cosine). Target: ours under 2 s. Prints a table and a
final ``ratio: <baseline time / our time>`` line.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models
from metrics.layers import enumerate_layers
from metrics.projections import LayerWeights, network_statistics


def reference_projections(weight: torch.Tensor, normalize: bool) -> list[float]:
    """As the reference's ``kernel_all_positive_proj``."""
    conv_w = weight.view(weight.size(0), -1)
    proj = conv_w.sum(1).cpu().numpy()
    if normalize:
        norm_ones = torch.sqrt(torch.ones(conv_w.shape[1]).sum(0)).item()
        w_norm = torch.sqrt((conv_w.clone() ** 2).sum(1)).cpu().numpy()
        proj /= w_norm * norm_ones
    return np.squeeze(proj).tolist()


def reference_summary(proj: list[float]) -> dict:
    """The reference's ECDF mean/mass plus the new statistics, computed the plain way."""
    values = np.asarray(proj)
    mass = np.searchsorted(np.sort(values), 0.0, side="right") / values.size  # statsmodels' ECDF(0)
    radius = np.abs(values).max() or 1.0
    return {
        "mean": np.mean(values), "mass": mass, "std": np.std(values),
        "quantiles": np.percentile(values, [5, 25, 50, 75, 95]),
        "histogram": np.histogram(values, bins=20, range=(-radius, radius)),
        "sign_test_p": stats.binomtest(int((values <= 0).sum()), values.size, 0.5).pvalue,
    }


def reference_distances(param: torch.Tensor, param_init: torch.Tensor) -> dict:
    """As the reference's ``distance_from_init_layer``, plus a numpy cosine."""
    l2 = ((param - param_init).norm(p="fro") / param_init.norm(p="fro")).cpu().numpy().item()
    inf = ((param - param_init).norm(p=float("inf")) / param_init.norm(p=float("inf"))).cpu().numpy().item()
    w, w0 = param.cpu().numpy().ravel(), param_init.cpu().numpy().ravel()
    cosine = float(np.dot(w, w0) / (np.linalg.norm(w) * np.linalg.norm(w0)))
    return {"l2_dist": l2, "l_inf_dist": inf, "cosine": cosine}


def reference_style(weights: list[tuple[str, torch.Tensor]], init: dict[str, torch.Tensor], normalize: bool) -> dict:
    results, net, net_init = {}, [], []
    for name, weight in weights:
        proj = reference_projections(weight, normalize)
        proj_init = reference_projections(init[name], normalize)
        record = reference_summary(proj) | reference_distances(weight, init[name])
        record["ks_p"] = stats.ks_2samp(proj, proj_init).pvalue
        results[name] = record
        net += proj
        net_init += proj_init
    results["net"] = reference_summary(net) | {"ks_p": stats.ks_2samp(net, net_init).pvalue}
    return results


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def build(seed: int) -> list:
    torch.manual_seed(seed)
    model = models.get_model("vgg19", 1000, 3, image_size=224, check_input=False).eval()
    return enumerate_layers(model, (3, 224, 224), with_linear=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Best of N runs [default = 3].")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [default = torch's choice].")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    layers, init_layers = build(0), build(1)
    weights = [(layer.name, layer.filters()) for layer in layers]
    init = {layer.name: layer.filters() for layer in init_layers}
    ours_input = [LayerWeights(name, w) for name, w in weights]
    params = sum(w.numel() for _, w in weights)
    print(f"VGG19: {len(weights)} conv+linear layers, {params / 1e6:.1f}M weights; torch threads "
          f"{torch.get_num_threads()}; best of {args.repeats}")
    print(f"{'workload':44s} {'baseline s':>11s} {'ours s':>8s} {'ratio':>7s}")
    rows = [
        ("raw projections, stats only", lambda: reference_stats_only(weights, False),
         lambda: network_statistics(ours_input, normalize=False)),
        ("normalized, stats only", lambda: reference_stats_only(weights, True),
         lambda: network_statistics(ours_input, normalize=True)),
        ("normalized + distances + KS vs init", lambda: reference_style(weights, init, True),
         lambda: network_statistics(ours_input, normalize=True, init=init)),
    ]
    for label, baseline, ours in rows:
        t_base, base = best_time(baseline, args.repeats)
        t_ours, (records, net) = best_time(ours, args.repeats)
        check_agreement(base, records, net, [name for name, _ in weights])
        print(f"{label:44s} {t_base:11.3f} {t_ours:8.3f} {t_base / t_ours:7.1f}")
    print(f"ratio: {t_base / t_ours:.2f}")  # the full workload (last row)
    return 0


def reference_stats_only(weights: list[tuple[str, torch.Tensor]], normalize: bool) -> dict:
    results, net = {}, []
    for name, weight in weights:
        proj = reference_projections(weight, normalize)
        results[name] = reference_summary(proj)
        net += proj
    results["net"] = reference_summary(net)
    return results


def check_agreement(base: dict, records: list[dict], net: dict, names: list[str]) -> None:
    """Both implementations must report the same numbers, or the timing means nothing."""
    for name, record in zip(names + ["net"], records + [net]):
        for key in ("mean", "mass", "l2_dist", "cosine", "ks_p"):
            if key in record and key in base[name]:
                expected = float(base[name][key])
                if not np.isclose(record[key], expected, rtol=1e-3, atol=1e-6):
                    raise SystemExit(f"mismatch in {name}.{key}: ours {record[key]} vs baseline {expected}")


if __name__ == "__main__":
    sys.exit(main())
