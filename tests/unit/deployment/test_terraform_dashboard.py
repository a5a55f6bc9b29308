"""The CloudWatch dashboard (terraform/dashboard.tf) charts the metrics monitoring publishes.

Metric names are defined in Python (monitoring.metrics, lambda_function.verdict_metrics); the
Terraform files name them once, in ``local.metric_names``, which the alarms use too. These
tests parse the files (python-hcl2, checkov's HCL parser) and hold both definitions equal.
"""

from __future__ import annotations

import hcl2
import pytest

from config.settings import REPO_ROOT
from lambda_function import verdict_metrics as vm
from monitoring.metrics import DASHBOARD_FIGURES, METRIC_NAMES
from monitoring.publish import MODEL_VERSION_DIMENSION

TERRAFORM = REPO_ROOT / "terraform"
# The figures the dashboard must chart (README, Monitoring).
FIGURES = set(DASHBOARD_FIGURES)


def _attributes(block: dict) -> dict:
    """A block's attributes (this parser wraps each attribute's value in a one-item list)."""
    return {k: v[0] for k, v in block.items() if not k.startswith("__")}


def _locals(name: str) -> dict:
    with (TERRAFORM / name).open() as handle:
        blocks = hcl2.load(handle)["locals"]
    return {key: value for block in blocks for key, value in _attributes(block).items()}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return _locals("dashboard.tf")


def test_metric_names_are_the_ones_monitoring_publishes(dashboard):
    names = dashboard["metric_names"]
    assert set(names.values()) <= set(METRIC_NAMES)
    assert set(names.values()) == FIGURES
    # Keys that are shared verdict metric names map to that metric's CloudWatch name.
    for key, metric in names.items():
        if key in vm.CLOUDWATCH_NAMES:
            assert metric == vm.CLOUDWATCH_NAMES[key], key
    assert dashboard["model_version_dimension"] == MODEL_VERSION_DIMENSION


def test_every_figure_is_charted_and_alarm_thresholds_are_drawn(dashboard):
    figures = {figure["key"]: figure for figure in dashboard["dashboard_figures"]}
    assert set(figures) == set(dashboard["metric_names"])
    with (TERRAFORM / "main.tf").open() as handle:
        modules = {k: v for block in hcl2.load(handle)["module"] for k, v in block.items()}
    alarms = _attributes(modules["alerting"])["metric_alarms"]
    alarmed = set()
    for alarm in alarms.values():
        # The alarms take their metric from the same map: "${local.metric_names.<key>}".
        key = alarm["metric_name"].removeprefix("${local.metric_names.").removesuffix("}")
        assert alarm["metric_name"] == "${local.metric_names.%s}" % key
        assert figures[key]["thresholds"] == [alarm["threshold"]]
        alarmed.add(key)
    assert alarmed == {"unknown_rate", "false_edible_rate"}
    assert all(figures[key]["thresholds"] == [] for key in set(figures) - alarmed)


def test_shadow_charts_name_what_the_shadow_step_publishes(dashboard):
    """Champion and shadow lines (ModelRole), the disagreement rate and the decision markers
    are the names monitoring.shadow publishes."""
    from monitoring.publish import ROLE_DIMENSION
    from monitoring.shadow import DISAGREEMENT, MARKERS, ROLE_METRICS

    assert dashboard["role_dimension"] == ROLE_DIMENSION
    assert tuple(dashboard["shadow_role_metrics"]) == ROLE_METRICS
    assert dashboard["shadow_disagreement"] == DISAGREEMENT
    assert set(dashboard["shadow_markers"]) == set(MARKERS.values())
