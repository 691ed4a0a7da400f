"""The block threshold: false blocks of legitimate messages stay within budget on new data."""
import numpy as np
import pytest

from training.calibration import allowed_false_blocks, block_threshold


def test_allowed_false_blocks():
    assert allowed_false_blocks(20000, 0.001, confidence=0) == 20
    k = allowed_false_blocks(20000, 0.001)
    assert 0 < k < 20  # a margin below the point estimate
    assert allowed_false_blocks(1000, 0.001) == -1  # 1,000 rows cannot show 0.1 % at 95 %
    assert allowed_false_blocks(0, 0.001) == -1


def test_threshold_with_too_few_rows_blocks_none_of_them():
    scores = np.array([0.2, 0.7, 0.95])
    t = block_threshold(scores, np.ones(3, bool))
    assert t > 0.95 and not (scores >= t).any()


@pytest.mark.parametrize("confidence, at_least", [(0.95, 0.85), (0.0, 0.2)])
def test_budget_holds_on_fresh_rows(confidence, at_least):
    """Validation and test drawn from one distribution: with the bound, the test false-block rate
    stays within 0.1 % in (about) 95 % of draws; the point estimate only in about half."""
    rng = np.random.default_rng(0)
    ok = 0
    for _ in range(200):
        val, test = rng.beta(1, 30, 20000), rng.beta(1, 30, 20000)
        t = block_threshold(val, np.ones(len(val), bool), max_fpr=0.001, floor=0.0, confidence=confidence)
        ok += (test >= t).mean() <= 0.001
    assert ok / 200 >= at_least
    if confidence == 0.0:
        assert ok / 200 < 0.85, "the point estimate must be visibly worse, or this test proves nothing"


def test_ceiling_pass_probability_is_the_binomial_chance_of_at_most_the_allowed_blocks():
    """The certificate and the gate's ceiling on a second sample: a model at the certified rate must
    be able to pass. Checked against the binomial sum written out, and against simulated models."""
    from math import comb

    from data.calibration import ceiling_pass_probability

    rate = 5 / 11453  # the SMS certificate's validation rate
    for n in (4940, 17957):
        k = allowed_false_blocks(n, 0.001)
        exact = sum(comb(n, j) * rate ** j * (1 - rate) ** (n - j) for j in range(k + 1))
        assert ceiling_pass_probability(n, rate) == pytest.approx(exact, rel=1e-9)
        simulated = (np.random.default_rng(0).binomial(n, rate, 20000) <= k).mean()
        assert abs(simulated - exact) < 0.02
    assert ceiling_pass_probability(4940, rate) < 0.5 < ceiling_pass_probability(17957, rate)
    assert ceiling_pass_probability(1000, rate) == 0.0  # no count of blocks can show the ceiling
    assert ceiling_pass_probability(17957, 0.0) == 1.0
