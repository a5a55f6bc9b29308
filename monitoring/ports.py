"""The ports of a monitoring cycle: what it reads, stores and publishes, as small protocols.

``monitoring.aws`` implements them over boto3; the unit tests use in-memory fakes. A cycle gets
them, and the injected actions (notify, retrain, deploy), in one :class:`CycleDeps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Protocol, Sequence

import pandas as pd

from config.settings import MonitoringConfig
from monitoring import alarms as alarm_eval
from monitoring.archive_window import ArchiveReader
from monitoring.drift import DriftReference
from monitoring.inputs import StreamRead
from monitoring.lease import CycleLease
from monitoring.respond import Deploy, NoNewData, Retrain, TagRun
from monitoring.shadow import ShadowActions, TagVersion
from monitoring.workspace import WindowRun


class StreamReader(Protocol):
    stream_name: str

    def read(self, checkpoint: Mapping[str, str], max_records: int = ...) -> StreamRead: ...


class JsonStore(Protocol):
    """The state document with compare-and-swap saves (raise ``StateConflict``)."""

    location: str

    def load(self) -> tuple[dict[str, Any] | None, str | None]: ...

    def save(self, document: Mapping[str, Any], expected: str | None) -> str: ...


class ObjectStore(Protocol):
    bucket: str

    def list_keys(self, prefix: str, suffix: str = "") -> list[str]: ...

    def list_keys_after(self, prefix: str, start_after: str, delimiter: str = "") -> list[str]:
        """Keys under ``prefix`` sorting after ``start_after`` (with ``delimiter``: only those
        directly under ``prefix``)."""
        ...

    def read_bytes(self, key: str) -> bytes: ...

    def put(self, key: str, body: bytes, content_type: str) -> str: ...


class MetricsService(Protocol):
    def put_metric_data(self, namespace: str, metric_data: Sequence[Mapping[str, Any]]) -> int: ...

    def describe_alarms(self, names: Sequence[str]) -> list[dict[str, Any]]: ...

    def period_statistics(
        self, spec: alarm_eval.AlarmSpec, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]: ...

    def set_alarm_state(self, name: str, state: str, reason: str, reason_data: str) -> None: ...


class RunStore(Protocol):
    """Where the dashboard over time keeps one run per window (``monitoring.workspace``)."""

    def add_window(self, run: WindowRun) -> str: ...


@dataclass
class CycleDeps:
    """Everything a cycle touches (see the module docstring)."""

    config: MonitoringConfig
    verdicts: StreamReader
    state_store: JsonStore
    cloudwatch: MetricsService
    notify: Callable[[str, str], str]
    retrain: Retrain
    deploy: Deploy
    evaluation_mode: str = "local"
    observations: StreamReader | None = None
    objects: ObjectStore | None = None  # labels in, reports and timeline out (data bucket)
    # The drift reference for the model served now (a DriftReference; a plain frame also works).
    reference: Callable[[], DriftReference | pd.DataFrame] | None = None
    tag_run: TagRun | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    lease: CycleLease | None = None  # one cycle at a time (run_exclusive)
    # Whether the labelled records add anything to the champion's training data (respond).
    no_new_data: NoNewData | None = None
    workspace: RunStore | None = None  # the dashboard over time (make monitoring-ui)
    clock_label: str = "wall clock"  # where window times come from, said in the reports
    # The archive and its query engine: when set, the window's metrics come from SQL over it
    # (monitoring.archive_window) instead of reading the streams.
    archive: ArchiveReader | None = None
    # The scorer's shadow (monitoring.shadow): when set, a model that passes the gate becomes
    # the shadow instead of being deployed, and each cycle decides on the active shadow by its
    # paired evidence; ``tag_version`` records starts and decisions on the MLflow model version.
    shadow: ShadowActions | None = None
    tag_version: TagVersion | None = None
