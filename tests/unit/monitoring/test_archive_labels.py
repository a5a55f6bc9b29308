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

    # Labels for ids never scored, and one id answered both ways within the cycle.
    odd = _labels(
        [{"mushroom_id": f"ghost-{i}", "label": "p"} for i in range(1_000)]
        + [{"mushroom_id": "obs-00900", "label": "e"}, {"mushroom_id": "obs-00900", "label": "p"}]
    )
    read = reader.read("w3", later + timedelta(hours=1), later, odd, previous=stamp(later))
    assert read.labels.unscored == 1_000
    assert read.labels.unscored_examples[:2] == ["ghost-0", "ghost-1"]
    assert read.labels.conflicts == 1
    assert read.labels.joined == 1  # obs-00900, with its later answer "p"
    assert read.metrics.false_edible == 1
    assert any("without a scored verdict" in line for line in read.labels.lines())


def test_the_whole_cycle_publishes_the_late_false_edible_rate(archive, tmp_path):
    """The same scenario through run_cycle: the window publishes FalseEdibleRate 1.0 from the
    1,000 late labels, and LabelsJoined 1,000."""
    from monitoring.cycle import run_cycle
    from monitoring.ports import CycleDeps
    from tests.fakes.monitoring import FakeCloudWatch, FakeStore, FakeStream, FakeTrainer, config

    archive.put_labels(
        "labels/received/2026-11-30T09-00-00.000000Z-lab.jsonl",
        [{"mushroom_id": f"obs-{i:05d}", "label": "p"} for i in range(EARLY)],
    )
    cloudwatch = FakeCloudWatch()
    deps = CycleDeps(
        config=config(tmp_path),
        verdicts=FakeStream("unused"),
        state_store=FakeStore(),
        cloudwatch=cloudwatch,
        notify=lambda subject, message: "msg",
        retrain=FakeTrainer(),
        deploy=lambda version: None,
        objects=archive,
        archive=ArchiveReader(DuckDBEngine.local(archive.root), archive),
    )
    result = run_cycle(deps, at=T0 + timedelta(days=3))
    assert result.metrics.records == EARLY + NEWER
    published = {d["MetricName"]: d["Value"] for d in cloudwatch.data if "Dimensions" not in d}
    assert published["FalseEdibleRate"] == 1.0
    assert published["LabelsJoined"] == EARLY
    assert published["UnscoredLabels"] == 0
