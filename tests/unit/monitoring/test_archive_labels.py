"""Late labels over real archive objects (DuckDB over a local folder): the issue's scenario.

1,000 verdicts, then more than 200,000 newer ones, then labels for the first 1,000: all join,
whatever came in between, and FalseEdibleRate reflects them. A correction changes the count;
labels for ids never scored, and conflicting answers in one cycle, are counted and reported.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitoring.archive import timestamp as stamp
from monitoring.archive_window import ArchiveReader
from monitoring.duckdb_engine import DuckDBEngine
from monitoring.labels import parse_label_lines
from tests.fakes.monitoring import FolderObjects, archive_object, scored_at, verdict

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
EARLY, NEWER = 1_000, 201_000


def _verdicts(start: int, count: int, call: str, at: datetime, prefix: str = "obs"):
    rows = []
    for i in range(start, start + count):
        row = verdict(i, call, p=0.2 if call == "edible" else 0.9, prefix=prefix)
        row["scored_at"] = scored_at(at + timedelta(milliseconds=i % 1000))
        rows.append(row)
    return rows


def _labels(lines):
    return parse_label_lines(__import__("json").dumps(line) for line in lines)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """1,000 poisonous mushrooms called edible, then 201,000 newer edible verdicts."""
    root = tmp_path_factory.mktemp("archive")
    objects = FolderObjects(root)
    archive_object(objects, "verdicts", T0, "early", _verdicts(0, EARLY, "edible", T0))
    newer_at = T0 + timedelta(hours=2)
    for part in range(0, NEWER, 50_000):
        count = min(50_000, NEWER - part)
        rows = _verdicts(EARLY + part, count, "edible", newer_at)
        archive_object(objects, "verdicts", newer_at, f"newer-{part}", rows)
    return objects


def test_late_labels_join_whatever_came_between(archive):
    reader = ArchiveReader(DuckDBEngine.local(archive.root), archive)
    at = T0 + timedelta(days=2)  # two days later
    labels = _labels([{"mushroom_id": f"obs-{i:05d}", "label": "p"} for i in range(EARLY)])
    read = reader.read("w1", at, at - timedelta(hours=1), labels)
    assert read.labels.received == EARLY
    assert read.labels.joined == EARLY
    assert read.metrics.labelled == EARLY
    assert read.metrics.false_edible == EARLY
    assert read.metrics.false_edible_rate == 1.0
    assert read.labels.unscored == 0 and read.labels.corrections == 0

    # The lab corrects 60 of them to edible in a later window: counted there, as corrections.
    fixed = _labels([{"mushroom_id": f"obs-{i:05d}", "label": "e"} for i in range(60)])
    later = at + timedelta(hours=1)
    # A cycle that crashed after writing its label events, before recording its window: its
    # events are not history, so the correction is still seen as one.
    crashed = reader.read("crashed", later - timedelta(minutes=5), at, fixed, previous=stamp(at))
    assert crashed.labels.corrections == 60
    read = reader.read("w2", later, at, fixed, previous=stamp(at))
    assert read.labels.corrections == 60
    assert read.metrics.labelled == 60
    assert read.metrics.false_edible == 0
    assert read.metrics.false_poisonous_rate == 0.0  # edible called edible: right

    # Labels for ids not scored (yet), and one id answered both ways within the cycle.
    odd = _labels(
        [{"mushroom_id": f"ghost-{i}", "label": "p"} for i in range(1_000)]
        + [{"mushroom_id": "obs-00900", "label": "e"}, {"mushroom_id": "obs-00900", "label": "p"}]
    )
    read = reader.read("w3", later + timedelta(hours=1), later, odd, previous=stamp(later))
    assert read.labels.waiting == 1_000 and read.labels.unscored == 0  # they wait
    assert read.labels.waiting_examples[:2] == ["ghost-0", "ghost-1"]
    assert read.labels.conflicts == 1
    assert read.labels.joined == 1  # obs-00900, with its later answer "p"
    assert read.metrics.false_edible == 1
    assert any("waiting for their verdict" in line for line in read.labels.lines())


def test_the_whole_cycle_publishes_the_late_false_edible_rate(archive, tmp_path):
    """The same scenario through run_cycle: the window publishes FalseEdibleRate 1.0 from the
    1,000 late labels, and LabelsJoined 1,000."""
    from monitoring.cycle import run_cycle
    from tests.fakes.monitoring import archive_deps

    archive.put_labels(
        "labels/received/2026-11-30T09-00-00.000000Z-lab.jsonl",
        [{"mushroom_id": f"obs-{i:05d}", "label": "p"} for i in range(EARLY)],
    )
    deps = archive_deps(tmp_path, archive)
    cloudwatch = deps.cloudwatch
    result = run_cycle(deps, at=T0 + timedelta(days=3))
    assert result.metrics.records == EARLY + NEWER
    published = {d["MetricName"]: d["Value"] for d in cloudwatch.data if "Dimensions" not in d}
    assert published["FalseEdibleRate"] == 1.0
    assert published["LabelsJoined"] == EARLY
    assert published["UnscoredLabels"] == 0


def _window(reader, name, start, end, labels=(), previous=None):
    return reader.read(name, end, start, _labels(labels), end=end, previous=previous)


def test_a_label_before_its_verdict_waits_and_joins_once_when_the_verdict_lands(tmp_path):
    """Firehose buffers verdicts for minutes; a lab may answer sooner. Such a label waits,
    joins in the window where its verdict's scored_at falls (the pair's time is
    max(label's window end, verdict's scored_at)), and is counted there only: not in the
    window that read it, not again when the id is scored once more. A correction sent while
    it waits replaces it. Real archive objects, DuckDB."""
    objects = FolderObjects(tmp_path)
    reader = ArchiveReader(DuckDBEngine.local(objects.root), objects)
    t1, t2, t3, t4 = (T0 + timedelta(minutes=m) for m in (5, 10, 15, 20))
    archive_object(objects, "verdicts", T0, "known", _verdicts(0, 100, "edible", T0))
    labels = [{"mushroom_id": f"obs-{i:05d}", "label": "p"} for i in range(150)]

    first = _window(reader, "w1", T0 - timedelta(minutes=1), t1, labels)
    assert (first.labels.joined, first.labels.waiting, first.labels.unscored) == (100, 50, 0)
    assert first.metrics.false_edible == 100

    # Ten of the waiting labels are corrected while they wait: they still wait.
    fixed = [{"mushroom_id": f"obs-{i:05d}", "label": "e"} for i in range(140, 150)]
    second = _window(reader, "w2", t1, t2, fixed, previous=stamp(t1))
    assert (second.labels.joined, second.labels.waiting) == (0, 50)
    assert second.metrics.labelled == 0

    # obs-00100..149 are scored in the third window: their labels join there, the latest
    # answer of each (40 poisonous called edible, 10 edible).
    late = _verdicts(100, 50, "edible", t2 + timedelta(seconds=30))
    archive_object(objects, "verdicts", t2 + timedelta(seconds=40), "late", late)
    third = _window(reader, "w3", t2, t3, previous=stamp(t2))
    assert third.labels.joined == third.labels.joined_late == 50
    assert third.labels.waiting == 0 and third.labels.unscored == 0
    assert third.metrics.labelled == 50 and third.metrics.labelled_poisonous == 40
    assert third.metrics.false_edible == 40 and third.metrics.false_edible_rate == 1.0

    # The same ids scored again (a re-put) and copies of the late object: nothing counts twice.
    again = _verdicts(100, 50, "poisonous", t3 + timedelta(seconds=30), prefix="obs")
    archive_object(objects, "verdicts", t3 + timedelta(seconds=40), "again", again)
    archive_object(objects, "verdicts", t3 + timedelta(seconds=41), "copy", late)
    fourth = _window(reader, "w4", t3, t4, previous=stamp(t3))
    assert (fourth.labels.joined, fourth.labels.waiting, fourth.metrics.labelled) == (0, 0, 0)


def test_a_label_whose_verdict_never_comes_is_unscored_once_its_look_back_runs_out(tmp_path):
    objects = FolderObjects(tmp_path)
    reader = ArchiveReader(DuckDBEngine.local(objects.root), objects, look_back=timedelta(hours=1))
    archive_object(objects, "verdicts", T0, "known", _verdicts(0, 10, "edible", T0))
    labels = [{"mushroom_id": "ghost-1", "label": "p"}, {"mushroom_id": "obs-00001", "label": "p"}]
    ends = [T0 + timedelta(minutes=m) for m in (5, 35, 65, 95)]
    first = _window(reader, "w1", T0 - timedelta(minutes=1), ends[0], labels)
    assert (first.labels.joined, first.labels.waiting) == (1, 1)
    waits = _window(reader, "w2", ends[0], ends[1], previous=stamp(ends[0]))
    assert (waits.labels.waiting, waits.labels.unscored) == (1, 0)
    expired = _window(reader, "w3", ends[1], ends[2], previous=stamp(ends[1]))
    assert (expired.labels.waiting, expired.labels.unscored) == (0, 1)
    assert expired.labels.unscored_examples == ["ghost-1"]
    assert expired.labels.metric_values()["UnscoredLabels"] == 1
    # Its verdict after the look-back: too late, and the label is not reported again.
    archive_object(
        objects, "verdicts", ends[2], "ghost", _verdicts(1, 1, "edible", ends[2], prefix="ghost")
    )
    after = _window(reader, "w4", ends[2], ends[3], previous=stamp(ends[2]))
    assert (after.labels.joined, after.labels.waiting, after.labels.unscored) == (0, 0, 0)
