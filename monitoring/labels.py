"""Late labels: the lab's true class for observations the scorer has already judged.

Contract (the demo producer writes these; a real lab integration would too):

- Location: ``s3://<data-bucket>/labels/<anything>.jsonl`` (UTF-8 JSON Lines, one object per
  line). Objects are immutable: a new batch of results is a new object; monitoring remembers
  which keys it has processed (in its checkpoint) and reads each object once for metrics.
  Keys whose names sort by time (e.g. ``labels/2026-11-27T12-00-00Z-<batch>.jsonl``) are
  recommended but not required.
- One line = the record the lab identified, returned with its verdict from the lab::

    {"mushroom_id": "obs-000123", "label": "p", "species_id": 17,
     "cap_diameter": 15.26, "cap_shape": "x", ..., "season": "w"}

  ``mushroom_id`` (required) joins the label to the scorer's verdict for that id; ``label``
  (required) is ``"p"`` (poisonous) or ``"e"`` (edible); the observation's feature fields
  (``lambda_function.schema.FEATURES``, same names and codes as the input stream) are what
  retraining learns from; ``species_id`` (optional integer) is the species the lab identified,
  which lets retraining teach the species guard a new species. Other fields are ignored.
- A line that is not valid JSON, lacks an id, has another label, or whose features fail the
  schema's validator is counted and reported as invalid, never silently dropped, and never
  stops the cycle. A label without features still counts for the metrics, not for retraining.

Labels arrive late: a label joins a verdict whenever both have been seen, in whichever cycle
that happens (see :class:`monitoring.state.MonitoringState`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from lambda_function.schema import EDIBLE, FEATURE_NAMES, ID_FIELD, POISONOUS, validate_record

LABEL_FIELD = "label"
SPECIES_FIELD = "species_id"
LABELS_PREFIX = "labels/"
LABEL_SUFFIX = ".jsonl"


@dataclass
class LabelBatch:
    """Parsed label lines of one or more objects."""

    labels: dict[str, str] = field(default_factory=dict)  # mushroom_id -> "p" | "e"
    # Records usable for training: features + "label" (+ "mushroom_id", "species_id").
    training_records: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # "<key>:<line>: <why>"

    def extend(self, other: "LabelBatch") -> None:
        self.labels.update(other.labels)
        self.training_records.extend(other.training_records)
        self.invalid.extend(other.invalid)


def parse_label_lines(lines: Iterable[str], source: str = "labels") -> LabelBatch:
    """Parse JSON Lines of the label contract (module docstring) into a :class:`LabelBatch`."""
    batch = LabelBatch()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            batch.invalid.append(f"{where}: not JSON ({exc.msg})")
            continue
        if not isinstance(item, dict):
            batch.invalid.append(f"{where}: not a JSON object")
            continue
        mushroom_id = item.get(ID_FIELD)
        label = item.get(LABEL_FIELD)
        if not isinstance(mushroom_id, str) or not mushroom_id:
            batch.invalid.append(f"{where}: no {ID_FIELD}")
            continue
        if label not in (POISONOUS, EDIBLE):
            batch.invalid.append(f"{where}: label must be 'p' or 'e', got {label!r}")
            continue
        batch.labels[mushroom_id] = label
        if not any(name in item for name in FEATURE_NAMES):
            continue  # a metrics-only label
        features = {name: item.get(name) for name in FEATURE_NAMES}
        checked = validate_record({ID_FIELD: mushroom_id, **features})
        if not checked.ok:
            problems = "; ".join(f"{e['field']} {e['message']}" for e in checked.errors[:3])
            batch.invalid.append(f"{where}: features not usable for training ({problems})")
            continue
        record: dict[str, Any] = {ID_FIELD: mushroom_id, **checked.row, LABEL_FIELD: label}
        species = item.get(SPECIES_FIELD)
        if isinstance(species, int) and not isinstance(species, bool):
            record[SPECIES_FIELD] = species
        batch.training_records.append(record)
    return batch
