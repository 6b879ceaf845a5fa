"""PAC-Bayes sigma: ours (common draws, early decisions) vs the reference's copy-perturb-evaluate loop.

    python benchmarks/bench_sharpness.py [--samples 1347] [--draws 10] [--steps 150] [--repeats 1]

Both search the same briefly trained (seeded) LeNet on the same ``--samples`` digits training images
(the default: the whole training split, compute_measures.py's default) with the same criterion: the
reference's (nitarshan/robust-generalization-measures ``_pacbayes_sigma``), the largest sigma whose
``--draws`` Monte Carlo draws lower the 0-1 training accuracy by 0.1 within 0.01, a bisection on
[0, 2] with at most 15 midpoints. The baseline is that loop, written anew: for each midpoint, for
each draw, copy the model, add fresh noise, evaluate every image. Ours (``metrics.flatness``) scales
the same draws at every midpoint and decides a midpoint as soon as the images seen settle it.

Rows: one midpoint evaluated whole, the same work on both sides (copies vs ``functional_call``, and
``vmap`` over the draws vs a loop over them: which pays on this machine); then the whole search,
with the number of midpoints, the work in whole evaluations, the sigma found and the Monte Carlo
standard error of the accuracy drop at ours. Two searches landing on different sigmas is Monte Carlo
noise (fresh draws at every midpoint vs fixed ones), not a difference of definition: compare the
sigmas with the standard error. Each time is the best of ``--repeats`` runs. Prints a final
``ratio: <loop / ours>`` line for the whole search.
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

from metrics import flatness

TARGET, PRECISION = 0.1, 0.01


def best_time(function, repeats: int):
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


@torch.no_grad()
def accuracy(model, inputs, labels) -> float:
    return float((model(inputs).argmax(dim=1) == labels).double().mean())


@torch.no_grad()
def loop_accuracy(model, inputs, labels, sigma: float, draws: int, generator: torch.Generator) -> float:
    """Copy, perturb with fresh noise, evaluate: one model per draw (the reference's loop)."""
    found = []
    for _ in range(draws):
        perturbed = copy.deepcopy(model)
        for parameter in perturbed.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * sigma)
        found.append(accuracy(perturbed, inputs, labels))
    return sum(found) / len(found)


def loop_search(model, inputs, labels, draws: int) -> tuple[float, int]:
    """The reference's bisection; ``(sigma, midpoints tried)``."""
    generator = torch.Generator().manual_seed(0)
    base = accuracy(model, inputs, labels)
    low, high, sigma = 0.0, 2.0, 1.0
    for tried in range(1, 16):
        sigma = (low + high) / 2
        displacement = abs(loop_accuracy(model, inputs, labels, sigma, draws, generator) - base)
        if abs(displacement - TARGET) < PRECISION:
            return sigma, tried
        low, high = (low, sigma) if displacement > TARGET else (sigma, high)
    return sigma, 15


def ours(model, inputs, labels, draws: int, vectorize: bool | None = None):
    _, weights = flatness.flat_parameters(model)
    correct = flatness.stacked_correct(model, inputs, labels, vectorize=vectorize)
    judge = flatness.pacbayes_judge(correct, weights, base_accuracy=accuracy(model, inputs, labels),
                                    samples=len(inputs), draws=draws)
    return judge


def trained_lenet(bundle, steps: int):
    """A LeNet trained ``steps`` Adam steps (batch 64, seeded) on the digits training split."""
    from models import get_model

    torch.manual_seed(0)
    model = get_model("lenet", bundle.num_classes, bundle.in_channels, image_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    inputs, labels = next(iter(bundle.train.batches(len(bundle.train))))
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        chosen = torch.randint(0, len(inputs), (64,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(inputs[chosen]), labels[chosen]).backward()
        optimizer.step()
    return model.eval(), inputs, labels


def main(argv: list[str] | None = None) -> int:
    import datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1347, help="training images [default = 1347: the digits training split, compute_measures.py's default]")
    parser.add_argument("--draws", type=int, default=10, help="Monte Carlo draws per sigma [default = 10, the reference's]")
    parser.add_argument("--steps", type=int, default=150, help="training steps of the LeNet measured [default = 150]")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement, the best is kept [default = 1]")
    args = parser.parse_args(argv)
    model, inputs, labels = trained_lenet(datasets.build_data("digits"), args.steps)
    inputs, labels = inputs[:args.samples], labels[:args.samples]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; LeNet trained {args.steps} steps, training "
          f"accuracy {accuracy(model, inputs, labels):.3f} on {len(inputs)} images, {args.draws} draws")
    print(f"{'what':44s} {'loop (s)':>9s} {'ours (s)':>9s} {'ratio':>6s}")
    generator = torch.Generator().manual_seed(0)
    one_loop, _ = best_time(lambda: loop_accuracy(model, inputs, labels, 0.01, args.draws, generator), args.repeats)
    for label, vectorize in (("one midpoint, whole (ours: a loop)", False), ("one midpoint, whole (ours: vmap)", True)):
        judge = ours(model, inputs, labels, args.draws, vectorize)
        one_ours, _ = best_time(lambda: judge(0.01, True), args.repeats)  # noqa: B023
        print(f"{label:44s} {one_loop:9.2f} {one_ours:9.2f} {one_loop / one_ours:6.1f}")
    whole_loop, (sigma_loop, tried_loop) = best_time(lambda: loop_search(model, inputs, labels, args.draws),
                                                     args.repeats)
    whole_ours, found = best_time(lambda: flatness.bisect(ours(model, inputs, labels, args.draws)), args.repeats)
    print(f"{'whole search':44s} {whole_loop:9.2f} {whole_ours:9.2f} {whole_loop / whole_ours:6.1f}")
    work = sum(trial.done for trial in found.trials)
    print(f"sigma: loop {sigma_loop:.4g} ({tried_loop} midpoints, {tried_loop} whole evaluations); ours "
          f"{found.value:.4g} ({len(found.trials)} midpoints, {work:.2f} whole evaluations, accuracy drop "
          f"{found.trials[-1].rise:.3f} +- {found.trials[-1].standard_error or 0:.3f} standard error)")
    print(f"ratio: {whole_loop / whole_ours:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
