"""Flatness and sharpness of the training loss (Jiang et al. 2020, appendix C; Keskar et al. 2017;
math: ``metrics/sharpness.py``).

On a fixed draw of the training set (``--sharpness-samples``, ``--measure-seed``, recorded), with
the labels the run trained on, and the training cross-entropy as the loss:

- ``pacbayes_flatness`` = 1 / sigma^2, sigma the largest std of an isotropic Gaussian perturbation of
  every parameter whose expected loss increase (``--mc-samples`` draws) stays within
  ``--flatness-tolerance``;
- ``pacbayes_mag_flatness``: the same with the magnitude-aware perturbation ``N(0, sigma^2 w^2 + eps^2)``;
- ``sharpness``: Keskar's worst-case increase over the box ``|u_i| <= alpha (|w_i| + 1)``
  (``--sharpness-radius``), in percent of ``1 + L(w)``, by ``--ascent-steps`` of gradient ascent;
- ``sharpness_flatness`` = 1 / alpha^2, alpha the largest box radius whose worst-case increase stays
  within the tolerance.

The document records each search's trace, the sigma found and the loss increase there.
"""
from __future__ import annotations

from analyses.field import (
    CLI,
    ZOO_MISSING,
    FieldMeasure,
    FieldSettings,
    latest_covered,
    missing_data,
    run_level_rows,
    sweep_arguments,
    sweep_together,
    training_subset,
)
from analyses.norms import JIANG
from analyses.registry import Declaration, Measure, ZooUse
from analyses.subject import Subject
from metrics import sharpness

ON_SUBSET = "on a fixed draw of training samples with the run's labels, training cross-entropy"
MEASURES = {
    "pacbayes_flatness": Measure(-1, f"1 / sigma^2 of the isotropic Gaussian perturbation, {ON_SUBSET}",
                                 f"{JIANG}, eq. 53: among the best in Jiang's study"),
    "pacbayes_mag_flatness": Measure(-1, f"1 / sigma^2 of the magnitude-aware perturbation, {ON_SUBSET}",
                                     f"{JIANG}, eq. 61: the best in Jiang's study"),
    "sharpness": Measure(-1, f"100 (max L(w+u) - L(w)) / (1 + L(w)) over the box |u_i| <= alpha (|w_i|+1), {ON_SUBSET}",
                         "Keskar et al. 2017; Jiang et al. 2020, sec. C.4"),
    "sharpness_flatness": Measure(-1, f"1 / alpha^2 of the largest box whose worst-case increase stays within the "
                                  f"tolerance, {ON_SUBSET}", f"{JIANG}, eq. 52"),
}


class Sharpness(FieldMeasure):
    name = kind = "sharpness"
    metrics = tuple(MEASURES)
    uses_training_data = True

    def measure(self, subject: Subject) -> dict:
        if self.missing is not None:
            return {"measures": {}} | missing_data("sharpness", subject, self.missing, "the norms are data-free")
        settings = self.settings
        inputs, labels, record = training_subset(subject, settings.sharpness_samples, settings.seed)
        model = subject.model.eval()
        _, weights = sharpness.flat_parameters(model)
        stacked = sharpness.stacked_loss(model, inputs, labels, batch_size=settings.batch_size)
        searches = {"pacbayes": sharpness.pacbayes_sigma(stacked, weights, tolerance=settings.tolerance,
                                                         samples=settings.mc_samples, seed=settings.seed),
                    "pacbayes_mag": sharpness.pacbayes_sigma(stacked, weights, tolerance=settings.tolerance,
                                                             samples=settings.mc_samples, seed=settings.seed,
                                                             magnitude_eps=sharpness.MAGNITUDE_EPS)}
        loss = sharpness.mean_loss(model, inputs, labels, batch_size=settings.batch_size)
        keskar, base = sharpness.keskar_sharpness(loss, weights, radius=settings.radius, steps=settings.ascent_steps)
        at_radius = (settings.radius, keskar * (1.0 + base) / 100.0)  # the worst-case increase at the radius
        searches["sharpness"] = sharpness.sharpness_radius(loss, weights, tolerance=settings.tolerance,
                                                           steps=settings.ascent_steps, known=at_radius)
        measures = {"pacbayes_flatness": searches["pacbayes"].flatness,
                    "pacbayes_mag_flatness": searches["pacbayes_mag"].flatness, "sharpness": keskar,
                    "sharpness_flatness": searches["sharpness"].flatness}
        return {"measures": measures, "training_subset": record, "train_loss": base, "notes": [],
                "settings": {"tolerance": settings.tolerance, "mc_samples": settings.mc_samples,
                             "seed": settings.seed, "magnitude_eps": sharpness.MAGNITUDE_EPS,
                             "radius": settings.radius, "ascent_steps": settings.ascent_steps},
                "searches": {key: {"value": found.value, "increase": found.increase,
                                   "trace": [list(pair) for pair in found.trace]} for key, found in searches.items()}}


def make(settings: FieldSettings, missing: str | None = None) -> Sharpness:
    return Sharpness(settings, missing=missing)


DECLARATION = Declaration(
    "sharpness", kinds=("sharpness",), cli=CLI, table_rows=run_level_rows("sharpness"), metrics=tuple(MEASURES),
    sweep_arguments=sweep_arguments("sharpness"), done=latest_covered("sharpness"), measures=MEASURES,
    sweep_together=sweep_together,
    zoo=ZooUse(build=lambda probe: Sharpness(missing=ZOO_MISSING)), make=make, baseline=True)
