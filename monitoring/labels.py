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
- A line is at most ``MAX_LINE_BYTES`` (16 KiB, the input contract's record limit; a real
  line is about 450 bytes). A line that is longer, not UTF-8, not JSON (including absurd
  nesting or a number beyond Python's digit limit), lacks an id, has another label, or whose
  features fail the schema's validator is counted and reported as invalid, never silently
  dropped, and never stops the cycle; the object's other lines are still used. An object that
  is not UTF-8 at all (a UTF-16 or UTF-32 byte-order mark) counts as one invalid entry. Either
  way the object is marked read: reading it again would give the same result. A label without
  features still counts for the metrics, not for retraining.

Labels arrive late: a label joins a verdict whenever both have been seen, in whichever cycle
that happens (see :class:`monitoring.state.MonitoringState`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any, Iterable

from lambda_function.schema import (
    EDIBLE,
    FEATURE_NAMES,
    ID_FIELD,
    ID_MAX_LENGTH,
    MAX_RECORD_BYTES,
    POISONOUS,
    validate_record,
)
from monitoring.inputs import Rejects, load_json

LABEL_FIELD = "label"
SPECIES_FIELD = "species_id"
LABELS_PREFIX = "labels/"
# New label objects: ``labels/received/<UTC time>-<batch>.jsonl``; the names sort by time, so
# monitoring lists only the keys after the last one it read (S3 StartAfter).
RECEIVED_PREFIX = f"{LABELS_PREFIX}received/"
LABEL_SUFFIX = ".jsonl"
MAX_LINE_BYTES = MAX_RECORD_BYTES
# Byte-order marks of the encodings that are not UTF-8 (UTF-32 first: it starts like UTF-16).
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


@dataclass
class LabelBatch:
    """Parsed label lines of one or more objects."""

    labels: dict[str, str] = field(default_factory=dict)  # mushroom_id -> "p" | "e"
    # Records usable for training: features + "label" (+ "mushroom_id", "species_id").
    training_records: list[dict[str, Any]] = field(default_factory=list)
    invalid: Rejects = field(default_factory=Rejects)  # reasons: "<key>:<line>: <why>"
    unreadable: list[str] = field(default_factory=list)  # objects that could not be fetched
    # Ids answered both "p" and "e" within the batch: the last answer counts, each is reported.
    conflicts: Rejects = field(default_factory=Rejects)

    def add(self, mushroom_id: str, label: str, where: str) -> None:
        before = self.labels.pop(mushroom_id, None)
        if before is not None and before != label:
            self.conflicts.add(
                f"{where}: {mushroom_id!r:.60} is {label!r} here and {before!r} earlier in the "
                "same cycle's labels (the later answer counts)"
            )
        self.labels[mushroom_id] = label  # re-inserted: the dict keeps arrival order

    def extend(self, other: "LabelBatch") -> None:
        for mushroom_id, label in other.labels.items():
            self.add(mushroom_id, label, "labels")
        self.conflicts.extend(other.conflicts)
        self.training_records.extend(other.training_records)
        self.invalid.extend(other.invalid)
        self.unreadable.extend(other.unreadable)


def parse_label_object(data: bytes, source: str = "labels") -> LabelBatch:
    """Parse one label object's bytes (module docstring); never raises on its content."""
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            batch = LabelBatch()
            batch.invalid.add(f"{source}: the object is {encoding} text; labels must be UTF-8")
            return batch
    # Split the bytes, not decoded text: a line that is not UTF-8 is one invalid line, and
    # the other lines of its object still count.
    return parse_label_lines(data.removeprefix(codecs.BOM_UTF8).split(b"\n"), source)


def parse_label_lines(lines: Iterable[bytes | str], source: str = "labels") -> LabelBatch:
    """Parse JSON Lines of the label contract (module docstring) into a :class:`LabelBatch`."""
    batch = LabelBatch()
    for number, line in enumerate(lines, start=1):
        raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        if len(raw) > MAX_LINE_BYTES:
            batch.invalid.add(f"{where}: line is {len(raw)} bytes; the limit is {MAX_LINE_BYTES}")
            continue
        item, problem = load_json(raw)
        if problem:
            batch.invalid.add(f"{where}: {problem}")
            continue
        if not isinstance(item, dict):
            batch.invalid.add(f"{where}: not a JSON object")
            continue
        mushroom_id = item.get(ID_FIELD)
        label = item.get(LABEL_FIELD)
        if not isinstance(mushroom_id, str) or not 1 <= len(mushroom_id) <= ID_MAX_LENGTH:
            batch.invalid.add(
                f"{where}: {ID_FIELD} must be a string of 1-{ID_MAX_LENGTH} characters"
            )
            continue
        if label not in (POISONOUS, EDIBLE):
            batch.invalid.add(f"{where}: label must be 'p' or 'e', got {label!r}")
            continue
        batch.add(mushroom_id, label, where)
        if not any(name in item for name in FEATURE_NAMES):
            continue  # a metrics-only label
        features = {name: item.get(name) for name in FEATURE_NAMES}
        checked = validate_record({ID_FIELD: mushroom_id, **features})
        if not checked.ok:
            problems = "; ".join(f"{e['field']} {e['message']}" for e in checked.errors[:3])
            batch.invalid.add(f"{where}: features not usable for training ({problems})")
            continue
        record: dict[str, Any] = {ID_FIELD: mushroom_id, **checked.row, LABEL_FIELD: label}
        species = item.get(SPECIES_FIELD)
        # An id training can store (int32); anything else is ignored like an absent one.
        if isinstance(species, int) and not isinstance(species, bool) and 0 <= species < 2**31:
            record[SPECIES_FIELD] = species
        batch.training_records.append(record)
    return batch
