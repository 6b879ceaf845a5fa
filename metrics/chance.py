"""Is a model's test accuracy above chance? A one-sided binomial test against guessing.

A model that guesses gets each of ``n`` test examples right with probability ``1 / classes``; the
number it gets right is then Binomial(n, 1 / classes). A top-1 whose one-sided p-value (more right
answers than guessing gives) is at most ``alpha`` is *above chance*; any other model is described
as at chance, and findings about its layers describe an untrained (or noise-fitting) model.
"""
from __future__ import annotations

from dataclasses import dataclass

ALPHA = 0.01  # the significance level of the verdict


@dataclass(frozen=True)
class ChanceVerdict:
    top1: float  # test top-1 (%)
    chance: float  # top-1 of guessing (%): 100 / classes
    n_test: int  # test examples the top-1 was measured on
    p_value: float  # P(Binomial(n_test, 1 / classes) >= correct)
    above_chance: bool  # p_value <= alpha
    split: str = "test"  # the held-out split the top-1 was measured on ("val" for a run trained with --split)

    def as_dict(self) -> dict:
        return {"top1": self.top1, "chance": self.chance, "n_test": self.n_test, "p_value": self.p_value,
                "above_chance": self.above_chance, "split": self.split}

    def describe(self) -> str:
        """One short phrase: 'above chance (top-1 97.5% vs 10%, p = 1e-300)' or 'at chance (...)'."""
        verdict = "above chance" if self.above_chance else "not above chance"
        return (f"{verdict} ({self.split} top-1 {self.top1:.3g}% vs {self.chance:.3g}%, n = {self.n_test}, "
                f"p = {self.p_value:.2g})")


def chance_verdict(top1: float, *, n_test: int, num_classes: int, alpha: float = ALPHA,
                   split: str = "test") -> ChanceVerdict:
    """The verdict for a test top-1 of ``top1`` percent over ``n_test`` examples of ``num_classes``
    classes (``num_classes >= 2``, ``n_test >= 1``); ``split`` names the held-out split measured."""
    from scipy.stats import binomtest

    if num_classes < 2 or n_test < 1:
        raise ValueError(f"need num_classes >= 2 and n_test >= 1, got {num_classes} and {n_test}")
    correct = int(round(top1 / 100.0 * n_test))
    p_value = float(binomtest(correct, n_test, 1.0 / num_classes, alternative="greater").pvalue)
    return ChanceVerdict(top1=float(top1), chance=100.0 / num_classes, n_test=int(n_test), p_value=p_value,
                         above_chance=p_value <= alpha, split=split)
