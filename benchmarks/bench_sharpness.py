"""PAC-Bayes flatness: ours (batched Monte Carlo draws, interpolating search) vs the straightforward loop.

    python benchmarks/bench_sharpness.py [--samples 128] [--draws 5] [--repeats 1] [--arch lenet]

Both measure a randomly initialized (seeded) ``--arch`` on ``--samples`` images of the digits
training set with the same loss (training cross-entropy), tolerance (0.1) and number of Monte Carlo
draws per sigma tried. The baseline is what a first implementation does (as
nitarshan/robust-generalization-measures' ``_pacbayes_sigma``): for each sigma of a bisection on
[0, 2] (15 halvings at most, stopping within 0.01 of the tolerance), for each draw, copy the model,
add the noise and evaluate it. Ours (``metrics.sharpness.pacbayes_sigma``) evaluates the draws of a
sigma together (``torch.func.functional_call`` under ``vmap`` over a stack of parameter vectors,
the same draws at every sigma) and interpolates the next sigma (regula falsi in sigma^2). Two rows:
one sigma's expected increase (the same work on both sides: the batching alone), and the whole
search. Each time is the best of ``--repeats`` runs. Prints a final ``ratio: <loop / ours>`` line
for the whole search (target: >= 3).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics import sharpness

TOLERANCE, PRECISION = 0.1, 0.01


def best_time(function, repeats: int):
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


@torch.no_grad()
def loop_increase(model, inputs, labels, sigma: float, draws: int, generator: torch.Generator) -> float:
    """Copy, perturb, evaluate: one model per draw."""
    base = float(F.cross_entropy(model(inputs), labels))
    losses = []
    for _ in range(draws):
        perturbed = copy.deepcopy(model)
        for parameter in perturbed.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * sigma)
        losses.append(float(F.cross_entropy(perturbed(inputs), labels)))
    return sum(losses) / len(losses) - base


def loop_search(model, inputs, labels, draws: int) -> tuple[float, int]:
    """Bisection on [0, 2], as the baseline implementation; ``(sigma, evaluations)``."""
    generator = torch.Generator().manual_seed(0)
    low, high, sigma, evaluations = 0.0, 2.0, 1.0, 0
    while evaluations < 15:
        sigma = (low + high) / 2
        increase = loop_increase(model, inputs, labels, sigma, draws, generator)
        evaluations += 1
        if abs(increase - TOLERANCE) < PRECISION:
            break
        low, high = (low, sigma) if increase > TOLERANCE else (sigma, high)
    return sigma, evaluations


def data(samples: int):
    import datasets

    bundle = datasets.build_data("digits")
    split = bundle.train
    inputs, labels = next(iter(split.batches(samples, device="cpu")))
    return inputs, labels, bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="lenet", help="model registry name [default = lenet]")
    parser.add_argument("--samples", type=int, default=128, help="training images [default = 128, compute_measures.py's]")
    parser.add_argument("--draws", type=int, default=5, help="Monte Carlo draws per sigma [default = 5, compute_measures.py's]")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement, the best is kept [default = 1]")
    args = parser.parse_args(argv)
    from models import get_model

    inputs, labels, bundle = data(args.samples)
    torch.manual_seed(0)
    model = get_model(args.arch, bundle.num_classes, bundle.in_channels, image_size=inputs.shape[-1]).eval()
    _, weights = sharpness.flat_parameters(model)
    loss = sharpness.stacked_loss(model, inputs, labels, batch_size=len(inputs))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.arch}, {weights.numel()} parameters, "
          f"{len(inputs)} images, {args.draws} draws")
    print(f"{'what':34s} {'loop (s)':>9s} {'ours (s)':>9s} {'ratio':>6s}")
    generator = torch.Generator().manual_seed(0)
    one_loop, _ = best_time(lambda: loop_increase(model, inputs, labels, 0.01, args.draws, generator), args.repeats)
    increase = sharpness.expected_increase(loss, weights, samples=args.draws, seed=0)
    one_ours, _ = best_time(lambda: increase(0.01), args.repeats)
    print(f"{'one sigma (batching alone)':34s} {one_loop:9.2f} {one_ours:9.2f} {one_loop / one_ours:6.1f}")
    whole_loop, (sigma_loop, tried_loop) = best_time(lambda: loop_search(model, inputs, labels, args.draws),
                                                     args.repeats)
    whole_ours, found = best_time(lambda: sharpness.pacbayes_sigma(loss, weights, samples=args.draws),
                                  args.repeats)
    print(f"{'whole search':34s} {whole_loop:9.2f} {whole_ours:9.2f} {whole_loop / whole_ours:6.1f}")
    print(f"sigma: loop {sigma_loop:.4g} ({tried_loop} sigmas tried), ours {found.value:.4g} "
          f"({len(found.trace)} tried, increase {found.increase:.3f})")
    print(f"ratio: {whole_loop / whole_ours:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
