"""Whether a shadow model is promoted, discarded or kept waiting: pure rules over its paired
evidence (``monitoring.shadow_evidence``) and the settings (``config.settings.ShadowRules``).

In order:

1. **Discard at the first false edible**: a poisonous mushroom the shadow called ``edible`` is
   the one forbidden mistake; one is enough, whatever the sample size.
2. **Discard when the shadow failed** on any record: a model that cannot score every record is
   not served.
3. **Decide once the minimum sample is reached** (``min_labelled`` labelled records, of which
   ``min_poisonous`` poisonous): McNemar's exact one-sided test on the discordant pairs asks
   whether the shadow is worse on decision accuracy. Significantly worse (p <= ``alpha``):
   discard; otherwise promote (zero false edible is already established by rule 1).
4. **Discard at the maximum age** without a decision.
5. Otherwise **wait**. Without evidence (the archive could not be read) nothing is promoted:
   only the age rule can act, so the rules fail closed.

The test is run at one look only: rule 3 ends the shadow's life either way, the first time the
sample suffices, so ``alpha`` is the probability of discarding a shadow exactly as good as the
champion, not inflated by repeated testing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from config.settings import ShadowRules
from monitoring.shadow_evidence import PairedEvidence

PROMOTE, DISCARD, WAIT = "promote", "discard", "wait"


def binomial_upper_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly (integers until the one division)."""
    if n < 0 or k < 0:
        raise ValueError(f"need k, n >= 0, got k={k}, n={n}")
    if k > n:
        return 0.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def mcnemar_p_worse(b: int, c: int) -> float:
    """McNemar's exact one-sided p-value for "the shadow is worse": ``b`` discordant records the
    champion got right and the shadow wrong, ``c`` the reverse. Under the null hypothesis (equal
    accuracy) each discordant record is either kind with probability 1/2, so
    p = P(X >= b), X ~ Binomial(b + c, 1/2). No discordant record: p = 1."""
    return binomial_upper_tail(b, b + c)


def mcnemar_p_better(b: int, c: int) -> float:
    """The same test the other way: p-value for "the shadow is better" (P(X >= c))."""
    return binomial_upper_tail(c, b + c)


@dataclass(frozen=True)
class Decision:
    """A verdict on the shadow, with its reason and the test's numbers (None: not run)."""

    action: str
    reason: str
    p_worse: float | None = None
    p_better: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(evidence: PairedEvidence | None, rules: ShadowRules, age: timedelta) -> Decision:
    """The rules of the module docstring, in order."""
    if evidence is not None and evidence.shadow_false_edible:
        return Decision(
            DISCARD,
            f"false edible: the shadow called {evidence.shadow_false_edible} poisonous "
            "mushroom(s) edible",
        )
    if evidence is not None and evidence.shadow_failed:
        return Decision(
            DISCARD, f"the shadow failed on {evidence.shadow_failed} of {evidence.records} records"
        )
    if (
        evidence is not None
        and evidence.labelled >= rules.min_labelled
        and evidence.labelled_poisonous >= rules.min_poisonous
    ):
        b, c = evidence.champion_only_right, evidence.shadow_only_right
        p_worse, p_better = mcnemar_p_worse(b, c), mcnemar_p_better(b, c)
        sample = (
            f"{evidence.labelled} labelled records ({evidence.labelled_poisonous} poisonous), "
            f"zero false edible; discordant: champion right {b}, shadow right {c}; "
            f"McNemar one-sided p(worse) = {p_worse:.4g}"
        )
        if p_worse <= rules.alpha:
            return Decision(
                DISCARD,
                f"significantly worse on decision accuracy: {sample} <= alpha {rules.alpha:g}",
                p_worse,
                p_better,
            )
        return Decision(
            PROMOTE,
            f"not worse on decision accuracy: {sample} > alpha {rules.alpha:g}",
            p_worse,
            p_better,
        )
    have = (
        "no evidence (the archive could not be read)"
        if evidence is None
        else f"{evidence.labelled}/{rules.min_labelled} labelled records, "
        f"{evidence.labelled_poisonous}/{rules.min_poisonous} poisonous"
    )
    max_age = timedelta(hours=rules.max_age_hours)
    if age >= max_age:
        return Decision(
            DISCARD, f"no decision after {_hours(age)} (maximum {_hours(max_age)}): {have}"
        )
    return Decision(WAIT, f"waiting for evidence: {have}; age {_hours(age)} of {_hours(max_age)}")


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:.1f} h"
