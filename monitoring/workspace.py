"""The monitoring dashboard over time: one Evidently run per window in a local workspace.

``make monitoring-ui`` serves the workspace with ``evidently ui``. Its project
(:data:`PROJECT_NAME`) gets one run (snapshot) per window, timestamped with the window's metric
time and tagged ``window=...`` and ``model_version=...``; the run holds the window's figures
(:data:`FIGURES`, each a ``MeanValue`` of a one-row dataset, so the dashboard plots the value
the cycle published) and, when drift was computed, Evidently's own drift results. Every figure
has a bar panel, one bar per window: windows are discrete, and Evidently's line panel joins
them with a smoothed curve that its panel API cannot turn off (decision 0010). A figure with an
alarm also plots the alarm's threshold as a second series (the panel API draws series, not
reference lines) and names it in the subtitle.

:class:`WindowRun` is plain data (built by :func:`window_run`); :class:`EvidentlyWorkspace` is
the adapter (the ``RunStore`` port in ``monitoring.ports``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from monitoring.drift import DriftResult
from monitoring.metrics import WindowMetrics

PROJECT_NAME = "mushroom-classifier monitoring"
MODEL_VERSION = "ModelVersion"
# CloudWatch name -> panel title, in dashboard order.
FIGURES = {
    "Records": "Records (verdicts in the window)",
    "UnknownRate": "Unknown rate (unknown / scored)",
    "RejectedRate": "Rejected rate (rejected / records)",
    "FalseEdibleRate": "False-edible rate (poisonous called edible / labelled poisonous)",
    "DecisionAccuracy": "Decision accuracy (right actions / labelled; unknown = do not eat)",
    "DriftShare": "Drift share (drifted features / features)",
    MODEL_VERSION: "Model version (that scored most of the window)",
}
THRESHOLD_SUFFIX = " alarm threshold"


@dataclass
class WindowRun:
    """What the dashboard keeps of one window."""

    window: str
    at: datetime
    model_version: str | None
    figures: dict[str, float]  # FIGURES name -> value (absent: not computable in the window)
    thresholds: dict[str, tuple[str, float]] = field(default_factory=dict)  # figure -> alarm
    drift_snapshot: Any = None  # Evidently's drift Snapshot, kept in the run

    @property
    def tags(self) -> list[str]:
        return [f"window={self.window}", f"model_version={self.model_version or 'none'}"]


def window_run(
    window: str,
    at: datetime,
    metrics: WindowMetrics,
    alarms: Sequence[Mapping[str, Any]],
    drift: DriftResult | None,
) -> WindowRun:
    """The window's run: its figures, the thresholds of the alarms on them, the drift snapshot."""
    values = metrics.cloudwatch_values()
    figures = {name: values[name] for name in FIGURES if name in values}
    version = metrics.dominant_model_version
    if version is not None and version.isdigit():
        figures[MODEL_VERSION] = float(version)
    thresholds = {  # alarms as AlarmStatus.to_dict gives them
        str(a["metric"]): (str(a["name"]), float(a["threshold"]))
        for a in alarms
        if a.get("metric") in FIGURES and a.get("threshold") is not None
    }
    return WindowRun(
        window=window,
        at=at,
        model_version=version,
        figures=figures,
        thresholds=thresholds,
        drift_snapshot=drift.snapshot if drift is not None else None,
    )


class EvidentlyWorkspace:
    """A local Evidently workspace: the project, its dashboard panels and one run per window."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def add_window(self, run: WindowRun) -> str:
        """Add the window's run and refresh the panels; returns the run's file path."""
        # Evidently imports in seconds; only pay that when a window is written.
        from evidently.ui.workspace import Workspace  # noqa: PLC0415

        self.path.mkdir(parents=True, exist_ok=True)
        workspace = Workspace(str(self.path))
        found = workspace.search_project(PROJECT_NAME)
        project = found[0] if found else workspace.create_project(PROJECT_NAME)
        ref = workspace.add_run(project.id, _snapshot(run))
        workspace.save_dashboard(project.id, _dashboard(run.thresholds))
        return str(ref.url)


def _snapshot(run: WindowRun) -> Any:
    """The run: ``MeanValue`` of each figure (and threshold) column, merged with the drift run."""
    import pandas as pd  # noqa: PLC0415
    from evidently import DataDefinition, Dataset, Report  # noqa: PLC0415
    from evidently.core.report import Snapshot  # noqa: PLC0415
    from evidently.metrics import MeanValue  # noqa: PLC0415

    row = dict(run.figures)
    for name, (_, threshold) in run.thresholds.items():
        row[name + THRESHOLD_SUFFIX] = threshold
    frame = pd.DataFrame([row]) if row else pd.DataFrame([{"Records": 0.0}])
    dataset = Dataset.from_pandas(
        frame, data_definition=DataDefinition(numerical_columns=list(frame.columns))
    )
    snapshot = Report([MeanValue(column=c) for c in frame.columns]).run(
        dataset, None, timestamp=run.at, tags=run.tags, name=run.window
    )
    # The dashboard plots metric values; the figures' widgets (a plotly chart per MeanValue,
    # ~160 KB a window) would only repeat them. One run per window: the figures and Evidently's
    # drift results, its widgets included (its page under Reports).
    model = snapshot.to_snapshot_model()
    model.widgets = []
    for result in model.metric_results.values():
        result.widget = []
    if run.drift_snapshot is not None:
        drift = run.drift_snapshot.to_snapshot_model()
        model.metric_results = {**drift.metric_results, **model.metric_results}
        model.top_level_metrics = [*model.top_level_metrics, *drift.top_level_metrics]
        model.widgets = drift.widgets
    return Snapshot.load_model(model)


def _dashboard(thresholds: Mapping[str, tuple[str, float]]) -> Any:
    """One bar panel per figure (a bar per window); a figure with an alarm also plots its
    threshold as a second bar per window."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric  # noqa: PLC0415
    from evidently.sdk.panels import bar_plot_panel  # noqa: PLC0415

    panels = []
    for name, title in FIGURES.items():
        values = [PanelMetric(legend=name, metric="MeanValue", metric_labels={"column": name})]
        subtitle = "per window"
        if name in thresholds:
            alarm, threshold = thresholds[name]
            values.append(
                PanelMetric(
                    legend=f"alarm threshold {threshold:g}",
                    metric="MeanValue",
                    metric_labels={"column": name + THRESHOLD_SUFFIX},
                )
            )
            subtitle = f"per window; alarm {alarm}, threshold {threshold:g}"
        panels.append(bar_plot_panel(title, values, description=subtitle, size="half"))
    tab = DashboardTabModel(title="Over time", panels=[p.id for p in panels])
    return DashboardModel(tabs=[tab], panels=panels)
