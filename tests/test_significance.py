"""Binomial tests against chance for the reports."""
import pytest

from tfvgs.evaluation import significance


def test_a_rate_far_above_chance_is_called_so_and_one_at_chance_is_not():
    high = significance.above_chance(0.30, 100, 0.10)          # R@10 30% over 100 pairs, chance 10%
    assert high["above_chance"] and high["hits"] == 30 and high["p_value"] < 1e-6
    assert high["ci95"][0] < 0.30 < high["ci95"][1] and high["ci95"][0] > 0.10
    at = significance.above_chance(0.27, 38, 0.26)             # the old demo: 27% over 38 pairs, chance 26%
    assert not at["above_chance"] and at["p_value"] > 0.3
    assert significance.verdict(high).startswith("above chance (p=")
    assert significance.verdict(at).startswith("at chance (p=0.")
    assert significance.verdict(None) == ""
    certain = significance.above_chance(0.675, 500, 0.02)       # the cpu DaveNet's R@10: the tail underflows
    assert significance.verdict(certain) == "above chance (p<1e-300)"


def test_the_threshold_is_one_sided_at_one_percent():
    # 60 of 100 against 0.5: p = 0.028 (above at 5%, not at 1%); 64 of 100: p = 0.0033
    assert not significance.above_chance(0.60, 100, 0.5)["above_chance"]
    assert significance.above_chance(0.64, 100, 0.5)["above_chance"]
    assert not significance.above_chance(0.40, 100, 0.5)["above_chance"]   # below chance is not above it


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="trials"):
        significance.above_chance(0.5, 0, 0.5)
    with pytest.raises(ValueError, match="chance"):
        significance.above_chance(0.5, 10, 1.5)
