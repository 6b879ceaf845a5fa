"""The chance verdict: a one-sided binomial test against guessing, checked on cases known by hand."""
import math

import pytest

from metrics.chance import chance_verdict


def test_guessing_rate_is_not_above_chance():
    verdict = chance_verdict(10.0, n_test=300, num_classes=10)
    assert not verdict.above_chance and verdict.chance == pytest.approx(10.0)


def test_below_chance_is_not_above_chance():
    assert not chance_verdict(8.67, n_test=300, num_classes=10).above_chance


def test_p_value_by_hand():
    # 2 of 2 right with 2 classes: P(X >= 2) = 1/4; 3 of 3: 1/8
    assert chance_verdict(100.0, n_test=2, num_classes=2).p_value == pytest.approx(0.25)
    assert chance_verdict(100.0, n_test=3, num_classes=2).p_value == pytest.approx(0.125)
    # 1 of 3 right with 10 classes: 1 - 0.9^3
    assert chance_verdict(100 / 3, n_test=3, num_classes=10).p_value == pytest.approx(1 - 0.9 ** 3)


def test_trained_model_is_above_chance():
    verdict = chance_verdict(97.5, n_test=360, num_classes=10)
    assert verdict.above_chance and verdict.p_value < 1e-100
    assert "above chance" in verdict.describe() and not math.isnan(verdict.p_value)


def test_small_lift_needs_many_examples():
    assert not chance_verdict(12.0, n_test=100, num_classes=10).above_chance
    assert chance_verdict(12.0, n_test=20000, num_classes=10).above_chance


def test_bad_arguments():
    with pytest.raises(ValueError):
        chance_verdict(50.0, n_test=0, num_classes=10)
