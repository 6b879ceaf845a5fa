"""Flatness and sharpness of the training loss (Jiang et al. 2020, appendix C.3-C.5; Keskar et al. 2017;
math: ``metrics/flatness.py``, ``metrics/sharpness.py``), on the folded network, with the labels the
run trained on.

- PAC-Bayes (on the training split, ``--measure-samples``): ``sigma`` is the largest standard deviation
  of a Gaussian perturbation of every parameter whose expected 0-1 training error (``--mc-samples``
  draws) rises by 0.1 within 0.01, in the reference's bracket (``metrics/flatness.search``);
  ``pacbayes_flatness`` = 1 / sigma^2 and
  the bounds ``pacbayes_init``/``_orig``; the ``pacbayes_mag_*`` forms perturb with variance
  ``sigma^2 w^2 + eps^2``.
- Worst case (on ``--sharpness-samples`` training samples, by ``--ascent-steps`` of projected gradient
  ascent): Keskar's ``sharpness`` over the box ``|u_i| <= alpha (|w_i| + 1)`` (``--sharpness-radius``);
  ``sharpness_flatness`` = 1 / alpha'^2 with alpha' the largest isotropic box ``|u_i| <= alpha'`` whose
  worst case raises the 0-1 training error by 0.1, and its bounds; the ``sharpness_mag_*`` forms over the
  box ``|u_i| <= alpha' |w_i| + eps``.

The document records each search's trials, the rise and loss increase reached, the Monte Carlo
standard error, the training subsets' sizes and whether the ascent reached the box's boundary.
"""
from __future__ import annotations

import math

import torch

from analyses.field import (
    CLI,
    ZOO_MISSING,
    FieldMeasure,
    FieldSettings,
    fold_facts,
    folded,
    latest_covered,
    missing_data,
    run_level_rows,
    sweep_arguments,
    sweep_together,
    training_subset,
)
from analyses.norms import JIANG, trained
from analyses.registry import Declaration, ZooUse
from analyses.subject import Subject
from metrics import flatness, norms, sharpness

GAUSS = "the largest sigma whose Gaussian perturbation of the folded network raises the expected 0-1 training error by 0.1"
BOX = "the largest box whose worst case (gradient ascent) raises the 0-1 training error by 0.1"
MAG_BOX = "|u_i| <= alpha' |w_i| + 1e-3"
MEASURES = {
    "pacbayes_flatness": trained(-1, f"1 / sigma^2, {GAUSS}", f"{JIANG}, eq. 53: among the best in Jiang's study",
                                 "sqrt"),
    "pacbayes_init": trained(-1, f"||w - w0||^2 / (4 sigma^2) + log(m / sigma) + 10, {GAUSS}", f"{JIANG}, eq. 48",
                             "sqrt"),
    "pacbayes_orig": trained(-1, f"||w||^2 / (4 sigma^2) + log(m / sigma) + 10, {GAUSS}", f"{JIANG}, eq. 49", "sqrt"),
    "pacbayes_mag_flatness": trained(-1, f"1 / sigma'^2, {GAUSS} with variance sigma'^2 w^2 + 1e-6",
                                     f"{JIANG}, eq. 61: the best in Jiang's study", "sqrt"),
    "pacbayes_mag_init": trained(-1, "Jiang's magnitude-aware PAC-Bayes bound around w0, sigma' as in "
                                 "pacbayes_mag_flatness", f"{JIANG}, eq. 56", "sqrt"),
    "pacbayes_mag_orig": trained(-1, "Jiang's magnitude-aware PAC-Bayes bound around 0, sigma' as in "
                                 "pacbayes_mag_flatness", f"{JIANG}, eq. 57", "sqrt"),
    "sharpness": trained(-1, "100 (max L(w+u) - L(w)) / (1 + L(w)) over |u_i| <= alpha (|w_i|+1), L the training "
                         "cross-entropy", "Keskar et al. 2017 (epsilon-sharpness); Jiang et al. 2020, sec. C.4", None),
    "sharpness_flatness": trained(-1, f"1 / alpha'^2, {BOX} |u_i| <= alpha'", f"{JIANG}, eq. 52", "sqrt"),
    "sharpness_init": trained(-1, "||w - w0||^2 log(2 omega) / (4 alpha'^2) + log(m / alpha') + 10, alpha' as in "
                              "sharpness_flatness", f"{JIANG}, eq. 50", "sqrt"),
    "sharpness_orig": trained(-1, "||w||^2 log(2 omega) / (4 alpha'^2) + log(m / alpha') + 10, alpha' as in "
                              "sharpness_flatness", f"{JIANG}, eq. 51", "sqrt"),
    "sharpness_mag_flatness": trained(-1, f"1 / alpha'^2, {BOX} {MAG_BOX}", f"{JIANG}, eq. 60", "sqrt"),
    "sharpness_mag_init": trained(-1, "Jiang's magnitude-aware sharpness bound around w0, alpha' as in "
                                  "sharpness_mag_flatness", f"{JIANG}, eq. 58", "sqrt"),
    "sharpness_mag_orig": trained(-1, "Jiang's magnitude-aware sharpness bound around 0, alpha' as in "
                                  "sharpness_mag_flatness", f"{JIANG}, eq. 59", "sqrt"),
}


def pacbayes_searches(model, inputs, labels, settings: FieldSettings) -> tuple[dict, float]:
    """``({"pacbayes", "pacbayes_mag"}: Search, the model's accuracy on the samples)``."""
    _, weights = flatness.flat_parameters(model)
    correct = flatness.stacked_correct(model, inputs, labels, order_seed=settings.seed)
    with torch.no_grad():
        base = float(sum(counts[0] for counts, _ in correct(weights[None]))) / len(inputs)
    searches = {}
    for key, eps in (("pacbayes", None), ("pacbayes_mag", flatness.MAGNITUDE_EPS)):
        judge = flatness.pacbayes_judge(correct, weights, base_accuracy=base, samples=len(inputs),
                                        draws=settings.mc_samples, seed=settings.seed, magnitude_eps=eps,
                                        target=settings.target, confidence=flatness.CONFIDENCE)
        searches[key] = flatness.search(judge, target=settings.target)
    return searches, base


def worst_case(model, inputs, labels, settings: FieldSettings) -> tuple[dict, dict]:
    """``({"sharpness_flatness", "sharpness_mag"}: Search, Keskar's facts)``."""
    _, weights = flatness.flat_parameters(model)
    evaluate = sharpness.loss_and_accuracy(model, inputs, labels, batch_size=settings.batch_size)
    keskar, ascent = sharpness.keskar_sharpness(evaluate, weights, radius=settings.radius, steps=settings.ascent_steps)
    facts = {"value": keskar, "radius": settings.radius, "train_loss": ascent.losses[0],
             "loss_increase": ascent.loss_increase, "error_rise": ascent.error_rise, "at_boundary": ascent.at_boundary,
             "unmoved": ascent.unmoved}
    searches = {key: flatness.search(sharpness.worst_case_judge(evaluate, weights, sharpness.BOXES[box],
                                                                steps=settings.ascent_steps, target=settings.target),
                                     target=settings.target, lower_first=box == "magnitude", descent=4.0)
                for key, box in (("sharpness_flatness", "isotropic"), ("sharpness_mag", "magnitude"))}
    return searches, facts


def bounds(searches: dict, weights: torch.Tensor, start: torch.Tensor | None, m: int) -> dict:
    """Jiang's bounds built on the values found (none on a search that found no value: :func:`found`);
    ``weights``/``start``: the conv and linear weights of the folded network and of its folded
    initialization (None without one), flattened; ``m``: training samples."""
    omega, found = weights.numel(), {}
    spread = 4.0 * math.log(2 * omega)
    origin = float((weights.double() ** 2).sum())
    differences = weights - start if start is not None else None
    distance = float((differences.double() ** 2).sum()) if differences is not None else None
    for key, bound in (("pacbayes", flatness.pacbayes_bound),
                       ("sharpness", lambda norm, alpha, m: sharpness.sharpness_bound(norm, alpha, omega, m))):
        value = value_of(searches[key if key == "pacbayes" else "sharpness_flatness"])
        if value is not None:
            found[f"{key}_orig"] = bound(origin, value, m)
            if distance is not None:
                found[f"{key}_init"] = bound(distance, value, m)
    for key, extra in (("pacbayes_mag", 1.0), ("sharpness_mag", spread)):
        value = value_of(searches[key])
        if value is not None and differences is not None:
            found[f"{key}_init"] = flatness.magnitude_bound(distance, differences, value, m, spread=extra)
            found[f"{key}_orig"] = flatness.magnitude_bound(origin, differences, value, m, spread=extra)
    return found


def value_of(search) -> float | None:
    """The value a search found, or None when every try down to the smallest rose past the window (the
    perturbation at its smallest, ``eps`` alone for the magnitude-aware forms, already raises the error
    too much: the measure is undefined, not the last try's)."""
    return None if search.never_below or search.value <= 0 else search.value


def flatness_of(search) -> float | None:
    value = value_of(search)
    return None if value is None else search.flatness


def conv_linear_weights(model) -> torch.Tensor:
    return torch.cat([weight.reshape(-1) for _, weight in norms.layer_weights(model)])


class Sharpness(FieldMeasure):
    name = kind = "sharpness"
    metrics = tuple(MEASURES)
    needs_init = True  # the *_init bounds
    uses_training_data = True

    def measure(self, subject: Subject) -> dict:
        if self.missing is not None:
            return {"measures": {}} | missing_data("sharpness", subject, self.missing, "the norms are data-free")
        settings, model = self.settings, folded(subject).model
        inputs, labels, pacbayes_record = training_subset(subject, settings.measure_samples, settings.seed)
        searches, accuracy = pacbayes_searches(model, inputs, labels, settings)
        inputs, labels, worst_record = training_subset(subject, settings.sharpness_samples, settings.seed)
        found, keskar = worst_case(model, inputs, labels, settings)
        searches |= found
        _, init = subject.initialization
        weights = conv_linear_weights(model)
        start = conv_linear_weights(folded(init).model).to(weights.device) if init is not None else None
        start = start if start is not None and start.shape == weights.shape else None
        m = pacbayes_record["of"]
        measures = {"pacbayes_flatness": flatness_of(searches["pacbayes"]),
                    "pacbayes_mag_flatness": flatness_of(searches["pacbayes_mag"]), "sharpness": keskar["value"],
                    "sharpness_flatness": flatness_of(searches["sharpness_flatness"]),
                    "sharpness_mag_flatness": flatness_of(searches["sharpness_mag"])}
        measures |= bounds(searches, weights, start, m)
        facts = fold_facts(subject)
        return {"measures": measures, "training_subset": pacbayes_record, "sharpness_subset": worst_record,
                "train_accuracy": accuracy, "keskar": keskar, "batchnorm": facts["batchnorm"],
                "settings": {"target_rise": settings.target, "precision": flatness.TOLERANCE,
                             "bounds": [flatness.LOWER, flatness.UPPER], "depth": flatness.DEPTH,
                             "mc_samples": settings.mc_samples, "seed": settings.seed,
                             "early_decision_confidence": flatness.CONFIDENCE,
                             "magnitude_eps": flatness.MAGNITUDE_EPS, "radius": settings.radius,
                             "ascent_steps": settings.ascent_steps},
                "searches": {key: search.record() for key, search in searches.items()},
                "notes": facts["notes"] + notes(subject, searches, pacbayes_record, start is not None)}


def notes(subject: Subject, searches: dict, record: dict, has_init: bool) -> list[str]:
    """What a reader of the measures must know: a search that ended short of the window, an ascent whose
    moved coordinates did not all reach the box's boundary, the Monte Carlo error of a subset, the bounds
    left out without an initialization."""
    found = []
    for key, search in searches.items():
        final = search.trials[-1]
        if search.never_below:
            found.append(f"{subject.stem}: {key}: undefined: at {final.value:.3g}, the smallest value tried, the "
                         f"0-1 training error already rises by {final.guess:.3g} or more, past the target's window")
        elif not search.reached:
            found.append(f"{subject.stem}: {key}: the search ended after {len(search.trials)} tries with an error "
                         f"rise of {final.rise:.3g}, not within 0.01 of the target: its value is the last try")
        moved = 1.0 - final.details.get("unmoved", 0.0)
        if "at_boundary" in final.details and final.details["at_boundary"] < moved - 1e-9:
            found.append(f"{subject.stem}: {key}: {moved - final.details['at_boundary']:.1%} of the coordinates "
                         "the ascent moved ended inside the box, not on its boundary")
    if record["size"] < record["of"]:
        errors = ", ".join(f"{key} {searches[key].trials[-1].standard_error:.2g}" for key in ("pacbayes", "pacbayes_mag")
                           if searches[key].trials[-1].standard_error is not None)
        found.append(f"{subject.stem}: PAC-Bayes on {record['size']} of {record['of']} training samples (Monte Carlo "
                     f"standard error of the error rise: {errors or 'n/a'})")
    if not has_init:
        found.append(f"{subject.stem}: no *_init bounds nor magnitude-aware bounds: no initialization with the "
                     "same layers (a run's epoch-0 snapshot, or --init-from)")
    return found


def make(settings: FieldSettings, missing: str | None = None) -> Sharpness:
    return Sharpness(settings, missing=missing)


DECLARATION = Declaration(
    "sharpness", kinds=("sharpness",), cli=CLI, table_rows=run_level_rows("sharpness"), metrics=tuple(MEASURES),
    sweep_arguments=sweep_arguments("sharpness"), done=latest_covered("sharpness"), measures=MEASURES,
    sweep_together=sweep_together,
    zoo=ZooUse(build=lambda probe: Sharpness(missing=ZOO_MISSING)), make=make, baseline=True)
