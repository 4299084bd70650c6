"""Is a measured rate above chance? One-sided exact binomial tests and 95% intervals for the reports.

A figure is called "above chance" when the binomial test of its hits against the chance rate gives p < ALPHA.
Recall of both directions is tested as one trial per held-out pair (hits = mean recall x pairs): the two
directions of one pair are not independent, so counting 2n trials would overstate the evidence.
"""
from __future__ import annotations

from typing import Dict, Optional

ALPHA = 0.01


def above_chance(rate: float, trials: int, chance: float, alpha: float = ALPHA) -> Dict[str, object]:
    """{"hits", "trials", "chance", "p_value", "ci95": [lo, hi], "above_chance"} for `rate` of `trials` trials.

    p is the one-sided exact binomial test of hits >= observed under the chance rate; ci95 is the two-sided
    Clopper-Pearson interval of the rate."""
    from scipy import stats
    trials = int(trials)
    if trials < 1:
        raise ValueError(f"`trials` must be >= 1. Received: trials={trials}")
    if not 0.0 <= chance <= 1.0 or not 0.0 <= rate <= 1.0:
        raise ValueError(f"`rate` and `chance` must lie in [0, 1]. Received: rate={rate}, chance={chance}")
    hits = int(round(rate * trials))
    test = stats.binomtest(hits, trials, chance, alternative="greater")
    interval = stats.binomtest(hits, trials).proportion_ci(0.95, method="exact")
    p_value = float(test.pvalue)
    return {"hits": hits, "trials": trials, "chance": float(chance), "p_value": p_value,
            "ci95": [float(interval.low), float(interval.high)], "above_chance": p_value < alpha}


def verdict(result: Optional[Dict[str, object]]) -> str:
    """'above chance (p=3e-05)' / 'at chance (p=0.41)' for a report cell ('' without a result)."""
    if not result:
        return ""
    p = float(result["p_value"])
    if p < 1e-300:      # the binomial tail underflows to 0 for hundreds of hits far above chance; p is not 0
        text = "p<1e-300"
    else:
        text = f"p={p:.1g}" if p < 0.001 else f"p={p:.2f}" if p >= 0.01 else f"p={p:.3f}"
    return f"{'above chance' if result['above_chance'] else 'at chance'} ({text})"
