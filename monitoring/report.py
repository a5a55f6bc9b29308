"""The per-window HTML report and the JSON timeline (plain functions, no AWS).

The report is one self-contained HTML file: metrics, alarm states, actions taken and why, plots
(matplotlib, embedded as PNG) and, when drift was computed, Evidently's interactive drift report
embedded in an iframe.
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by batch jobs
import matplotlib.pyplot as plt  # noqa: E402

from lambda_function import verdict_metrics as vm  # noqa: E402
from monitoring.drift import DriftResult, describe_reference  # noqa: E402
from monitoring.inputs import InputReport  # noqa: E402
from monitoring.metrics import VERDICTS, WindowMetrics  # noqa: E402


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def plots(
    metrics: WindowMetrics, p_poisonous: Sequence[float], drift: DriftResult | None
) -> dict[str, str]:
    """Title -> base64 PNG for the window's plots."""
    images: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(4.5, 3))
    shares = [metrics.verdict_shares.get(v, 0.0) for v in VERDICTS]
    ax.bar(VERDICTS, shares, color=["#4caf50", "#e53935", "#9e9e9e"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of scored records")
    ax.set_title(f"Verdicts ({metrics.scored} scored, {metrics.rejected} rejected)")
    images["Verdict shares"] = _png(fig)

    if len(p_poisonous):
        fig, ax = plt.subplots(figsize=(4.5, 3))
        ax.hist(list(p_poisonous), bins=20, range=(0, 1), color="#5c6bc0")
        ax.set_xlabel("p_poisonous")
        ax.set_ylabel("records")
        ax.set_title("Score distribution")
        images["p_poisonous"] = _png(fig)

    if metrics.labelled:
        fig, ax = plt.subplots(figsize=(4.5, 3))
        shown = (
            vm.DECISION_ACCURACY,
            vm.COVERED_ACCURACY,
            vm.FALSE_EDIBLE_RATE,
            vm.FALSE_POISONOUS_RATE,
        )
        names = [vm.CLOUDWATCH_NAMES[n] for n in shown]
        values = [getattr(metrics, n) for n in shown]
        ax.bar(names, [v or 0.0 for v in values], color="#26a69a")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=30)
        ax.set_title(f"With labels ({metrics.labelled} labelled)")
        images["Label metrics"] = _png(fig)

    if drift is not None and drift.columns:
        fig, ax = plt.subplots(figsize=(6, 4))
        names = list(drift.columns)
        colors = ["#e53935" if drift.columns[n]["drifted"] else "#90a4ae" for n in names]
        ax.barh(names, [drift.columns[n]["score"] for n in names], color=colors)
        ax.invert_yaxis()
        ax.set_xlabel("drift score (red = drifted; p-value tests: low = drifted)")
        ax.set_title(f"Feature drift: share {drift.share:.2f}")
        images["Feature drift"] = _png(fig)
    return images


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "-"
    return str(value)


def render_html(
    window: str,
    at: datetime,
    metrics: WindowMetrics,
    alarms: Sequence[Mapping[str, Any]],
    actions: Sequence[Mapping[str, Any]],
    p_poisonous: Sequence[float] = (),
    drift: DriftResult | None = None,
    inputs: InputReport | None = None,
) -> str:
    """The window's report as one HTML document."""
    values = metrics.cloudwatch_values()
    images = plots(metrics, p_poisonous, drift)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Mushroom monitoring {html.escape(window)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "img{margin:0.5em}iframe{width:100%;height:1200px;border:1px solid #ccc}</style>",
        "</head><body>",
        f"<h1>Monitoring window {html.escape(window)}</h1>",
        f"<p>Metric timestamp {html.escape(at.isoformat())}; model versions "
        f"{html.escape(json.dumps(metrics.model_versions))}; duplicates dropped "
        f"{metrics.duplicates}; labelled verdicts {metrics.labelled}.</p>",
        "<h2>Metrics (published to CloudWatch)</h2>",
        _table(sorted(values.items()), ["metric", "value"]),
        "".join(f"<p>{html.escape(note)}</p>" for note in metrics.not_published()),
        "<h2>Alarms</h2>",
        _table(
            [
                (a.get("name"), a.get("previous_state"), a.get("state"), a.get("reason"))
                for a in alarms
            ],
            ["alarm", "before", "after", "reason"],
        ),
        "<h2>Actions</h2>",
        (
            _table([(a.get("action"), a.get("detail")) for a in actions], ["action", "why / what"])
            if actions
            else "<p>None.</p>"
        ),
        *_inputs_section(inputs),
        "<h2>Plots</h2>",
        "".join(
            f"<figure style='display:inline-block'><img alt='{html.escape(t)}' "
            f"src='data:image/png;base64,{img}'><figcaption>{html.escape(t)}</figcaption></figure>"
            for t, img in images.items()
        ),
    ]
    if drift is not None:
        parts.append(
            f"<h2>Feature drift (Evidently DataDriftPreset, {drift.rows} rows)</h2>"
            f"<p>Reference: {html.escape(describe_reference(drift.reference))}</p>"
            f"<p>Drifted: {html.escape(', '.join(drift.drifted) or 'none')}</p>"
        )
        if drift.html:
            parts.append(f'<iframe srcdoc="{html.escape(drift.html, quote=True)}"></iframe>')
    parts.append("</body></html>")
    return "".join(parts)


def _inputs_section(inputs: InputReport | None) -> list[str]:
    """What could not be used (counts, first reasons), checkpoint gaps and the monitor's lag."""
    if inputs is None:
        return []
    parts = ["<h2>Unusable input, checkpoint gaps, lag</h2>"]
    rows = [(name, r.count, " | ".join(r.reasons)) for name, r in inputs.problems()]
    parts.append(
        _table(rows, ["input", "invalid (skipped)", "first reasons"])
        if rows
        else "<p>Every record and label line read was usable.</p>"
    )
    if inputs.gaps:
        parts.append(_table([(g.describe(),) for g in inputs.gaps], ["checkpoint gap"]))
    else:
        parts.append("<p>No checkpoint gaps.</p>")
    parts.append(
        _table(
            [(stream, lag) for stream, lag in inputs.lag_ms.items()],
            ["stream", "behind its tip after the read (ms)"],
        )
    )
    return parts


def write_report(reports_dir: Path, window: str, document: str) -> Path:
    """Save ``<reports_dir>/<window>.html``."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{window}.html"
    path.write_text(document, encoding="utf-8")
    return path


def append_timeline(path: Path, entry: Mapping[str, Any]) -> None:
    """Append one JSON line to the timeline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")


def read_timeline(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
