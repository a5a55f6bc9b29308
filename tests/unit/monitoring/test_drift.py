"""Feature drift with Evidently, the per-window HTML report and the dashboard workspace
(Evidently imports in ~5 s)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from lambda_function.schema import FEATURE_NAMES, FEATURES
from monitoring.drift import MISSING_CODE, compute_drift, features_frame, load_reference
from monitoring.metrics import LabelledVerdict, window_metrics
from monitoring.report import render_html
from monitoring.workspace import FIGURES, PROJECT_NAME, EvidentlyWorkspace, window_run
from tests.fakes.monitoring import verdict


def frame(n: int, seed: int, shift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {}
    for feature in FEATURES:
        if feature.is_numeric:
            columns[feature.name] = rng.gamma(2.0, 3.0, n) + (20.0 if shift else 0.0)
        else:
            codes = list(feature.vocabulary[-2:] if shift else feature.vocabulary[:2])
            columns[feature.name] = rng.choice(codes + [None], n).tolist()
    return pd.DataFrame(columns)


def test_features_frame_types_and_missing_code():
    out = features_frame([{"cap_diameter": 1, "cap_shape": None}])
    assert list(out.columns) == list(FEATURE_NAMES)
    assert out.loc[0, "cap_shape"] == MISSING_CODE and out.loc[0, "cap_diameter"] == 1.0
    assert np.isnan(out.loc[0, "stem_width"])


@pytest.mark.slow
def test_drift_share_separates_shifted_data(tmp_path):
    reference_file = tmp_path / "reference.parquet"
    frame(400, 0, False).to_parquet(reference_file)
    reference = load_reference(reference_file, sample=300)
    assert len(reference) == 300
    same = compute_drift(reference, frame(200, 1, False))
    shifted = compute_drift(reference, frame(200, 2, True))
    assert same.share < 0.2
    assert shifted.share > 0.8 and "cap_diameter" in shifted.drifted
    assert set(shifted.columns) == set(FEATURE_NAMES)
    assert shifted.snapshot is not None  # kept for the workspace, not rendered to HTML

    metrics = window_metrics(
        [verdict(0, "edible", 0.1), verdict(1, "unknown", 0.6)],
        [LabelledVerdict("obs-00000", "edible", "p")],
        shifted.share,
    )
    document = render_html(
        "w1",
        datetime(2026, 11, 27, tzinfo=timezone.utc),
        metrics,
        [{"name": "a", "previous_state": "OK", "state": "ALARM", "reason": "x"}],
        [{"action": "retrain", "detail": "alarm:a"}],
        [0.1, 0.6],
        shifted,
    )
    assert document.count("data:image/png;base64") == 4
    assert "FalseEdibleRate" in document and "make monitoring-ui" in document
    # Small: Evidently's JavaScript is not inlined (it was ~5 MB per window).
    assert "<iframe" not in document and len(document.encode()) <= 300_000

    # The window's run in the workspace holds the figures and Evidently's drift results.
    alarms = [{"name": "a", "metric": "UnknownRate", "threshold": 0.2, "state": "ALARM"}]
    workspace = EvidentlyWorkspace(tmp_path / "workspace")
    run = window_run("w1", datetime(2026, 11, 27, tzinfo=timezone.utc), metrics, alarms, shifted)
    workspace.add_window(run)
    workspace.add_window(
        window_run("w2", datetime(2026, 11, 27, 0, 5, tzinfo=timezone.utc), metrics, alarms, None)
    )
    check_workspace(tmp_path / "workspace", shifted.share)


def check_workspace(path, drift_share):
    from evidently.core.report import Snapshot
    from evidently.ui.workspace import Workspace

    store = Workspace(str(path))
    (project,) = store.list_projects()
    assert project.name == PROJECT_NAME
    runs = sorted(
        (store.get_run(project.id, i) for i in store.list_runs(project.id)),
        key=lambda r: r.timestamp,
    )
    assert [r.tags for r in runs] == [
        ["window=w1", "model_version=1"],
        ["window=w2", "model_version=1"],
    ]
    assert runs[0].timestamp == datetime(2026, 11, 27, tzinfo=timezone.utc)
    results = Snapshot.load_model(runs[0]).dict()["metrics"]
    means = {
        m["config"]["column"]: m["value"] for m in results if "MeanValue" in m["config"]["type"]
    }
    assert means["UnknownRate"] == 0.5 and means["UnknownRate alarm threshold"] == 0.2
    assert means["DriftShare"] == drift_share and means["Records"] == 2
    assert any("DriftedColumnsCount" in m["config"]["type"] for m in results)
    dashboard = store.get_dashboard(project.id)
    titles = [p.title for p in dashboard.panels]
    assert titles == list(FIGURES.values())
    unknown = dashboard.panels[titles.index(FIGURES["UnknownRate"])]
    assert [v.metric_labels["column"] for v in unknown.values] == [
        "UnknownRate",
        "UnknownRate alarm threshold",
    ]
    assert "threshold 0.2" in unknown.subtitle
    # A run without drift keeps values, not the figures' widgets (was ~160 KB a window).
    sizes = sorted(f.stat().st_size for f in path.glob("*/snapshots/*.json"))
    assert len(sizes) == 2 and sizes[0] < 20_000, sizes


@pytest.mark.slow
def test_a_large_window_is_drifted_on_a_seeded_sample():
    reference = frame(300, 0, False)
    window = pd.concat([frame(600, 1, False), frame(600, 2, True)], ignore_index=True)
    sampled = compute_drift(reference, window, max_rows=200)
    assert (sampled.rows, sampled.window_rows) == (200, 1200)
    again = compute_drift(reference, window, max_rows=200)
    assert again.columns == sampled.columns  # same seed, same rows
    # Half the window shifted: the sample still finds the drift the whole window shows.
    whole = compute_drift(reference, window, max_rows=5000)
    assert (whole.rows, whole.window_rows) == (1200, 1200)  # below the cap: every row
    assert sampled.share > 0.5 and whole.share > 0.5
