"""Paired evidence of a shadow model against the champion, by SQL over the archive.

A function version with a shadow scores every record twice: the verdict record carries the
champion's verdict and, additively, ``"shadow": {"model_version", "verdict", "p_poisonous"}``
(``"verdict": null`` and an ``"error"`` when the shadow failed). Both verdicts are on the same
record, so the two models are compared on exactly the same traffic and the same labels:

- before any label: each model's coverage and unknown rate on the records the shadow scored,
  and how often the two disagree (``lambda_function.verdict_metrics.disagreement_rate``);
- with labels: each model's confusion table on the same labelled records, hence the same
  figures (false edible, decision accuracy, ...) from ``lambda_function.verdict_metrics``, and
  the discordant pairs McNemar's test needs: ``b`` records the champion got right and the
  shadow wrong, ``c`` the other way round (``monitoring.promotion``).

Label semantics are the monitoring cycle's (``monitoring.archive``): copies of a record (same
``input_sequence_number``) count once, as its first copy; a label judges the id's newest record
(here: the newest one this shadow scored); the latest label of an id is the truth (the label
events of every window so far, up to the current one). The evidence accumulates over the
shadow's whole life: from when it started, bounded by the look-back. The SQL returns counts
only; the rates come from ``lambda_function.verdict_metrics``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from lambda_function import verdict_metrics as vm
from lambda_function.schema import EDIBLE, POISONOUS
from lambda_function.service import STATUS_SCORED
from monitoring.archive import LABEL_EVENTS, VALID_VERDICT, since_hour, timestamp
from monitoring.query import QueryEngine, sql_list, sql_literal

CHAMPION, SHADOW = "champion", "shadow"
ROLES = (CHAMPION, SHADOW)

# A verdict as a small number while grouping by sequence number: 1.. = VERDICTS, 0 = none (a
# shadow that failed, or a shadow field without a verdict: counted as a shadow failure).
_CODES = {i + 1: v for i, v in enumerate(vm.VERDICTS)}


def _code(column: str) -> str:
    whens = " ".join(f"WHEN {column} = {sql_literal(v)} THEN {n}" for n, v in _CODES.items())
    return f"CASE {whens} ELSE 0 END"


def shadow_evidence_sql(since: datetime, end: datetime, labels_through: str) -> str:
    """Counts of the records scored in ``(since, end]`` that carry a shadow, by shadow version,
    champion verdict and shadow verdict (``label`` NULL), and of the labelled ones among them
    by the same and the latest label received up to ``labels_through`` (a window's
    ``received_in``). Verdict codes: 1.. = ``VERDICTS``, 0 = the shadow gave none."""
    lo, hi = sql_literal(timestamp(since)), sql_literal(timestamp(end))
    return f"""
WITH scoped AS (
    SELECT input_sequence_number, mushroom_id, scored_at,
           {_code("verdict")} AS champion,
           {_code("shadow.verdict")} AS shadow_verdict,
           shadow.model_version AS shadow_version
    FROM verdicts
    WHERE {since_hour(since)} AND {VALID_VERDICT} AND status = {sql_literal(STATUS_SCORED)}
      AND scored_at > {lo} AND scored_at <= {hi}
      AND shadow.model_version IS NOT NULL AND length(shadow.model_version) BETWEEN 1 AND 128
),
paired AS (
    SELECT min_by(shadow_version, scored_at) AS shadow_version,
           min_by(mushroom_id, scored_at) AS mushroom_id, min(scored_at) AS scored_at,
           min_by(champion, scored_at) AS champion,
           min_by(shadow_verdict, scored_at) AS shadow_verdict
    FROM scoped WHERE input_sequence_number IS NOT NULL
    GROUP BY input_sequence_number
    UNION ALL
    SELECT shadow_version, mushroom_id, scored_at, champion, shadow_verdict
    FROM scoped WHERE input_sequence_number IS NULL
),
truth AS (
    SELECT mushroom_id, max_by(label, received_in) AS label
    FROM {LABEL_EVENTS}
    WHERE {since_hour(since)} AND received_in <= {sql_literal(labels_through)}
    GROUP BY mushroom_id
),
judged AS (
    SELECT shadow_version, mushroom_id,
           max_by(champion, scored_at) AS champion,
           max_by(shadow_verdict, scored_at) AS shadow_verdict
    FROM paired WHERE shadow_verdict > 0
    GROUP BY shadow_version, mushroom_id
)
SELECT shadow_version, champion, shadow_verdict, CAST(NULL AS VARCHAR) AS label, count(*) AS n
FROM paired
GROUP BY shadow_version, champion, shadow_verdict
UNION ALL
SELECT j.shadow_version, j.champion, j.shadow_verdict, t.label, count(*) AS n
FROM judged j JOIN truth t ON t.mushroom_id = j.mushroom_id
WHERE t.label IN ({sql_list([POISONOUS, EDIBLE])})
GROUP BY j.shadow_version, j.champion, j.shadow_verdict, t.label
""".strip()


def _empty_table() -> vm.Confusion:
    return {c: dict.fromkeys(vm.VERDICTS, 0) for c in vm.TRUE_CLASSES}


@dataclass
class PairedEvidence:
    """One shadow version's evidence against the champion (counts; figures by
    :meth:`figures`). ``pairs`` counts the records both scored by (champion, shadow) verdict;
    ``tables`` is each role's confusion table on the same labelled records."""

    model_version: str
    records: int = 0  # records that carried this shadow (each counted once)
    shadow_failed: int = 0  # of which the shadow gave no verdict
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    tables: dict[str, vm.Confusion] = field(
        default_factory=lambda: {role: _empty_table() for role in ROLES}
    )
    both_right: int = 0
    champion_only_right: int = 0  # McNemar's b: champion right, shadow wrong
    shadow_only_right: int = 0  # McNemar's c: champion wrong, shadow right
    both_wrong: int = 0

    @property
    def labelled(self) -> int:
        return sum(sum(row.values()) for row in self.tables[SHADOW].values())

    @property
    def labelled_poisonous(self) -> int:
        return sum(self.tables[SHADOW][vm.VERDICT_POISONOUS].values())

    @property
    def shadow_false_edible(self) -> int:
        return vm.false_edible(self.tables[SHADOW])

    def verdict_counts(self, role: str) -> dict[str, int]:
        """``role``'s verdict counts on the records both scored."""
        index = ROLES.index(role)
        counts = dict.fromkeys(vm.VERDICTS, 0)
        for pair, n in self.pairs.items():
            counts[pair[index]] += n
        return counts

    def figures(self) -> dict[str, Any]:
        """Per role the shared verdict metrics on the same records (label-free on the records
        both scored, labelled on the labelled ones), and the disagreement rate."""
        out: dict[str, Any] = {
            role: {
                **vm.label_free_metrics(self.verdict_counts(role)),
                **vm.labelled_metrics(self.tables[role]),
            }
            for role in ROLES
        }
        out[vm.DISAGREEMENT_RATE] = vm.disagreement_rate(self.pairs)
        return out

    def add_pair(self, champion: str, shadow: str, n: int) -> None:
        self.pairs[(champion, shadow)] = self.pairs.get((champion, shadow), 0) + n

    def add_labelled(self, truth: str, champion: str, shadow: str, n: int) -> None:
        self.tables[CHAMPION][truth][champion] += n
        self.tables[SHADOW][truth][shadow] += n
        right = (vm.right_action(truth, champion), vm.right_action(truth, shadow))
        if right == (True, True):
            self.both_right += n
        elif right == (True, False):
            self.champion_only_right += n
        elif right == (False, True):
            self.shadow_only_right += n
        else:
            self.both_wrong += n

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the pending window, the timeline): counts, then the figures."""
        data = asdict(self)
        data["pairs"] = [[c, s, n] for (c, s), n in sorted(self.pairs.items())]
        data["labelled"] = self.labelled
        data["labelled_poisonous"] = self.labelled_poisonous
        data["figures"] = self.figures()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PairedEvidence":
        evidence = cls(model_version=str(data["model_version"]))
        for name in (
            "records",
            "shadow_failed",
            "both_right",
            "champion_only_right",
            "shadow_only_right",
            "both_wrong",
        ):
            setattr(evidence, name, int(data.get(name, 0)))
        evidence.pairs = {(c, s): int(n) for c, s, n in data.get("pairs", [])}
        evidence.tables = {
            role: {
                truth: {v: int(n) for v, n in row.items()}
                for truth, row in data["tables"][role].items()
            }
            for role in ROLES
        }
        return evidence


def evidence_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, PairedEvidence]:
    """The query's rows (:func:`shadow_evidence_sql`) as evidence per shadow version."""
    found: dict[str, PairedEvidence] = {}
    for row in rows:
        version, n = str(row["shadow_version"]), int(row["n"] or 0)
        evidence = found.setdefault(version, PairedEvidence(version))
        champion, shadow = _CODES.get(int(row["champion"])), _CODES.get(int(row["shadow_verdict"]))
        if champion is None:
            continue  # VALID_VERDICT keeps only scored verdicts: cannot happen
        if row["label"] is None:
            evidence.records += n
            if shadow is None:
                evidence.shadow_failed += n
            else:
                evidence.add_pair(champion, shadow, n)
        elif shadow is not None:
            truth = vm.VERDICT_POISONOUS if row["label"] == POISONOUS else vm.VERDICT_EDIBLE
            evidence.add_labelled(truth, champion, shadow, n)
    return found


def read_evidence(
    engine: QueryEngine, since: datetime, end: datetime, labels_through: str
) -> dict[str, PairedEvidence]:
    """Every shadow version's evidence over ``(since, end]`` (raises ``QueryError``)."""
    return evidence_from_rows(
        engine.query(shadow_evidence_sql(since, end, labels_through)).records()
    )
