"""The per-window HTML report, the JSON timeline and its index page (plain functions, no AWS).

The report is one small self-contained HTML file: metrics, alarm states, actions taken and why,
plots (matplotlib, embedded as PNG). Evidently's interactive drift page is not inlined (it is
~5 MB of JavaScript per window): the drift run is kept in the monitoring workspace
(``make monitoring-ui``). ``index.html`` draws the timeline: one chart per figure over the
windows, with the alarm thresholds, alarm transitions and deployments.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by batch jobs
import matplotlib.pyplot as plt  # noqa: E402

from config.settings import REPO_ROOT  # noqa: E402
from lambda_function import verdict_metrics as vm  # noqa: E402
from monitoring.drift import DriftResult, describe_reference  # noqa: E402
from monitoring.inputs import InputReport  # noqa: E402
from monitoring.metrics import DASHBOARD_FIGURES, VERDICTS, WindowMetrics  # noqa: E402
from monitoring.shadow_evidence import SHADOW  # noqa: E402
from monitoring.shadow_report import (  # noqa: E402
    COLOURS,
    FIGURES_BY_NAME,
    event_labels,
    event_marks,
    role_values,
    shadow_section,
)

log = logging.getLogger(__name__)

WALL_CLOCK = "wall clock"
# Metrics that are counts: CloudWatch values are floats, people read integers.
COUNT_METRICS = frozenset({"Records", "InvalidVerdicts", "InvalidObservations", "InvalidLabels"})
# The timeline charts of index.html, in order (CloudWatch names).
TIMELINE_FIGURES = DASHBOARD_FIGURES
INDEX_WINDOWS = 288  # windows drawn in index.html: a day of 5-minute cycles
# What DecisionAccuracy means (lambda_function.verdict_metrics.decision_accuracy), said wherever
# it is shown: with every verdict unknown it is the share of poisonous mushrooms, not noise.
DECISION_ACCURACY_NOTE = (
    "DecisionAccuracy = right actions / labelled verdicts: edible called edible, poisonous called "
    "poisonous or unknown. Unknown means 'do not eat': right for a poisonous mushroom, wrong for "
    "an edible one (abstentions are not excluded). So when every verdict is unknown, "
    "DecisionAccuracy is the share of labelled mushrooms that are poisonous."
)


def display_values(values: Mapping[str, float]) -> dict[str, int | float]:
    """Metric values as shown to people: counts as integers, rates as they are."""
    return {k: int(v) if k in COUNT_METRICS else v for k, v in values.items()}


def monitoring_ui_hint(workspace: Path | None) -> str:
    """The command that opens ``workspace`` in the dashboard, as pasted at the repository root.

    The workspace is always named: ``make monitoring-ui`` alone opens the default one, which is
    not the one of a scenario with its own reports directory (``make demo-drift``)."""
    if workspace is None:
        return "make monitoring-ui"
    path = Path(workspace)
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    return f"make monitoring-ui MONITORING_WORKSPACE={shlex.quote(str(shown))}"


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
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "-"
    return str(value)


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k that is >= ``value`` (> 0)."""
    exponent = math.floor(math.log10(value))
    for mantissa in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        candidate = mantissa * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return float(f"{candidate:.12g}")  # 0.30000000000000004 -> 0.3
    return 10.0 ** (exponent + 1)  # not reached


def axis_range(values: Sequence[float]) -> tuple[float, float]:
    """A chart's y axis: from zero (every figure here is a count, a rate, a share or a version)
    to a round number at or above the largest value, so that one point or a flat series sits on
    a readable scale instead of a made-up +-0.5 around it."""
    low = min([0.0, *values])
    high = max([0.0, *values])
    if high > 0:
        high = _nice_ceiling(high)
    if low < 0:
        low = -_nice_ceiling(-low)
    if high == low:
        high = 1.0
    return low, high


def axis_label(value: float) -> str:
    """An axis end as people read it: 0, 0.004, 0.25, 1, 2,000 (no 2e+03)."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.6g}"


def render_html(
    window: str,
    at: datetime,
    metrics: WindowMetrics,
    alarms: Sequence[Mapping[str, Any]],
    actions: Sequence[Mapping[str, Any]],
    p_poisonous: Sequence[float] = (),
    drift: DriftResult | None = None,
    inputs: InputReport | None = None,
    clock: str = WALL_CLOCK,
    workspace: Path | None = None,
) -> str:
    """The window's report as one HTML document; ``clock`` says where ``at`` came from,
    ``workspace`` is the dashboard workspace that holds the window's drift run."""
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
        f"<p>Metric timestamp {html.escape(at.isoformat())} ({html.escape(clock)}); model versions "
        f"{html.escape(json.dumps(metrics.model_versions))}; duplicates dropped "
        f"{metrics.duplicates}; labelled verdicts {metrics.labelled}.</p>",
        "<h2>Metrics (published to CloudWatch)</h2>",
        _table(sorted(display_values(values).items()), ["metric", "value"]),
        "".join(f"<p>{html.escape(note)}</p>" for note in metrics.not_published()),
        f"<p>{html.escape(DECISION_ACCURACY_NOTE)}</p>",
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
            f"<p>Drifted: {html.escape(', '.join(drift.drifted) or 'none')}. Evidently's own "
            "drift page for this window is its run in the monitoring workspace "
            f"(<code>{html.escape(monitoring_ui_hint(workspace))}</code>).</p>"
        )
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
    """The timeline's entries; a line that is not a JSON object is skipped (and logged)."""
    if not path.is_file():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            log.warning("%s line %d skipped: %s", path, number, exc)
            continue
        if isinstance(entry, dict) and "window" in entry:
            entries.append(entry)
        else:
            log.warning("%s line %d skipped: not a timeline entry", path, number)
    return entries


def transitions(timeline: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, str, str]]:
    """(entry index, alarm, before, after) for each alarm whose state changed at that window.

    An alarm's first state counts only when it is ALARM (the first check of a new alarm is no
    event)."""
    found: list[tuple[int, str, str, str]] = []
    last: dict[str, str] = {}
    for index, entry in enumerate(timeline):
        for name, state in (entry.get("alarms") or {}).items():
            before = last.get(name)
            if state != before and (before is not None or state == "ALARM"):
                found.append((index, name, before or "INSUFFICIENT_DATA", state))
            last[name] = state
    return found


def deployments(timeline: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """(entry index, version) of each window whose alarm response deployed a new model."""
    return [(i, str(e.get("new_version"))) for i, e in enumerate(timeline) if e.get("deployed")]


def timeline_figure(timeline: Sequence[Mapping[str, Any]]) -> Any:
    """One chart per figure over the windows: the value, the alarm thresholds (dashed), alarm
    transitions (red dotted, labelled) and deployments (green, labelled); where a shadow ran,
    its figure on the same records (orange) and its start, promotion or discard (dashed)."""
    shown = list(timeline)[-INDEX_WINDOWS:]
    x = list(range(len(shown)))
    labels = [str(e["window"]) for e in shown]
    fig, axes = plt.subplots(len(TIMELINE_FIGURES), 1, figsize=(7, 1.7 * len(TIMELINE_FIGURES)))
    changes, deployed, marks = transitions(shown), deployments(shown), event_marks(shown)
    for ax, name in zip(axes, TIMELINE_FIGURES):
        values = [(e.get("metrics") or {}).get(name) for e in shown]
        ax.plot(x, [float("nan") if v is None else v for v in values], marker="o", color="#3949ab")
        figure = FIGURES_BY_NAME.get(name)
        shadow = role_values(shown, SHADOW, figure) if figure else []
        if any(v is not None for v in shadow):
            ax.plot(
                x,
                [float("nan") if v is None else v for v in shadow],
                marker="s",
                linestyle="--",
                color=COLOURS[SHADOW],
                label="shadow, same records",
            )
            ax.legend(loc="center left", fontsize=7, frameon=False)
        ax.set_xlim(-0.3, max(len(shown) - 0.7, 0.7))
        limits = sorted({(e.get("thresholds") or {}).get(name) for e in shown} - {None})
        low, high = axis_range(
            [v for v in values if v is not None] + [v for v in shadow if v is not None] + limits
        )
        margin = (high - low) * 0.06  # the points on the axis ends stay whole
        ax.set_ylim(low - margin, high + margin)
        ax.set_yticks([low, high], [axis_label(low), axis_label(high)])
        for value in limits:
            ax.axhline(value, color="#e53935", linestyle="--", linewidth=1)
            ax.annotate(
                f"alarm threshold {value:g}",
                (1.0, value),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=7,
                color="#e53935",
            )
        # An alarm's transitions on its own metric's chart (all charts if its metric is unknown).
        mine = [
            c for c in changes if (shown[c[0]].get("alarm_metrics") or {}).get(c[1], name) == name
        ]
        for n, (index, alarm, before, after) in enumerate(mine):
            ax.axvline(index, color="#e53935", linestyle=":", linewidth=1)
            ax.annotate(
                f"{before} -> {after}",
                (index, 0.75 if n % 2 else 0.45),  # alternate heights: neighbours do not overlap
                xycoords=("data", "axes fraction"),
                xytext=(3, 0),
                textcoords="offset points",
                ha="left" if index < len(shown) - 1 else "right",
                va="center",
                fontsize=7,
                color="#e53935",
            )
        for index, version in deployed:
            ax.axvline(index + 0.5, color="#2e7d32", linewidth=1.5)
        for index, _, colour in marks:
            ax.axvline(index, color=colour, linestyle="--", linewidth=1)
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xticks(x, [] if ax is not axes[-1] else labels, rotation=15, ha="right")
    for index, version in deployed:
        axes[0].annotate(
            f"deployed v{version}",
            (index + 0.5, 1.03),
            xycoords=("data", "axes fraction"),
            ha="center",
            fontsize=8,
            color="#2e7d32",
        )
    per_window: dict[int, int] = {}
    for index, label, colour in marks:
        n = per_window[index] = per_window.get(index, -1) + 1  # stacked labels per window
        axes[0].annotate(
            label,
            (index, 0.85 - 0.2 * n),
            xycoords=("data", "axes fraction"),
            xytext=(3, 0),
            textcoords="offset points",
            ha="left" if index < len(shown) - 1 else "right",
            fontsize=7,
            color=colour,
        )
    fig.suptitle("Monitoring timeline", fontsize=10)
    clock = shown[-1].get("clock", WALL_CLOCK) if shown else WALL_CLOCK
    axes[-1].set_xlabel(f"window ({clock})", fontsize=8)
    # Fixed margins: tight_layout would cost every cycle about half a second more.
    fig.subplots_adjust(left=0.12, right=0.97, top=0.93, bottom=0.09, hspace=0.3)
    return fig


def timeline_png(timeline: Sequence[Mapping[str, Any]]) -> bytes:
    """:func:`timeline_figure` as PNG."""
    fig = timeline_figure(timeline)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def _svg_chart(shown: Sequence[Mapping[str, Any]], name: str, last: bool) -> str:
    """One figure's chart as inline SVG (drawn by hand: matplotlib would cost every cycle
    about half a second): values, thresholds, its alarm's transitions, deployments."""
    width, height, left, right, top, bottom = (
        720,
        130 if last else 100,
        70,
        10,
        16,
        34 if last else 8,
    )
    values = [(e.get("metrics") or {}).get(name) for e in shown]
    thresholds = sorted({(e.get("thresholds") or {}).get(name) for e in shown} - {None})
    low, high = axis_range([v for v in values if v is not None] + list(thresholds))
    step = (width - left - right) / max(len(shown), 1)

    def x(index: float) -> float:
        return left + step * (index + 0.5)

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - value) / (high - low)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"font-family='sans-serif' font-size='10' role='img' aria-label='{name}'>",
        f"<text x='{left}' y='{top - 4}' font-weight='bold'>{html.escape(name)}</text>",
        f"<text class='axis' x='{left - 4}' y='{y(high) + 4:.1f}' "
        f"text-anchor='end'>{axis_label(high)}</text>",
        f"<text class='axis' x='{left - 4}' y='{y(low) + 4:.1f}' "
        f"text-anchor='end'>{axis_label(low)}</text>",
        f"<rect x='{left}' y='{top}' width='{width - left - right}' "
        f"height='{height - top - bottom}' fill='none' stroke='#ccc'/>",
    ]
    for value in thresholds:
        parts.append(
            f"<line class='threshold' x1='{left}' x2='{width - right}' y1='{y(value):.1f}' "
            f"y2='{y(value):.1f}' stroke='#e53935' stroke-dasharray='5,3'/>"
            f"<text x='{width - right - 2}' y='{y(value) - 3:.1f}' text-anchor='end' "
            f"fill='#e53935'>alarm threshold {value:g}</text>"
        )
    for n, (index, alarm, before, after) in enumerate(transitions(shown)):
        if (shown[index].get("alarm_metrics") or {}).get(alarm, name) != name:
            continue
        parts.append(
            f"<line class='transition' x1='{x(index):.1f}' x2='{x(index):.1f}' y1='{top}' "
            f"y2='{height - bottom}' stroke='#e53935' stroke-dasharray='1,2'/>"
            f"<text x='{x(index) + 3:.1f}' y='{top + (12 if n % 2 else 24)}' fill='#e53935'>"
            f"{html.escape(f'{before} -> {after}')}</text>"
        )
    for index, version in deployments(shown):
        parts.append(
            f"<line class='deploy' x1='{x(index + 0.5):.1f}' x2='{x(index + 0.5):.1f}' "
            f"y1='{top}' y2='{height - bottom}' stroke='#2e7d32' stroke-width='2'/>"
            f"<text x='{x(index + 0.5):.1f}' y='{top - 4}' text-anchor='middle' "
            f"fill='#2e7d32'>deployed v{html.escape(version)}</text>"
        )
    points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
    if points:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f"<polyline points='{path}' fill='none' stroke='#3949ab' stroke-width='2'/>")
    for i, v in enumerate(values):
        if v is not None:
            label = html.escape(f"{shown[i]['window']}: {_fmt(display_values({name: v})[name])}")
            parts.append(
                f"<circle class='point' cx='{x(i):.1f}' cy='{y(v):.1f}' r='3' fill='#3949ab'>"
                f"<title>{label}</title></circle>"
            )
    if last:
        for i, entry in enumerate(shown):
            parts.append(
                f"<text x='{x(i):.1f}' y='{height - bottom + 14}' text-anchor='middle'>"
                f"{html.escape(str(entry['window']))}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def render_index(timeline: Sequence[Mapping[str, Any]], workspace: Path | None = None) -> str:
    """``index.html``: the timeline charts and, per window, its figures, alarms and actions;
    ``workspace`` is the dashboard workspace the page's command opens."""
    shown = list(timeline)[-INDEX_WINDOWS:]
    changes = {}
    for index, alarm, before, after in transitions(shown):
        changes.setdefault(index, []).append(f"{alarm}: {before} -> {after}")
    rows = []
    for index, entry in enumerate(shown):
        metrics = entry.get("metrics") or {}
        report = Path(str(entry.get("report", ""))).name
        events = list(changes.get(index, []))
        if entry.get("deployed"):
            events.append(f"deployed model version {entry.get('new_version')}")
        elif entry.get("retrained") and not entry.get("shadow_events"):
            events.append(f"retrained v{entry.get('new_version')}, not deployed")
        events.extend(event_labels(entry))
        rows.append(
            "<tr>"
            + f"<td><a href='{html.escape(report)}'>{html.escape(str(entry['window']))}</a></td>"
            + f"<td>{html.escape(str(entry.get('at', '-')))}</td>"
            + f"<td>{html.escape(_fmt(entry.get('model_version')))}</td>"
            + "".join(
                f"<td>{html.escape(_fmt(display_values(metrics).get(n)))}</td>"
                for n in TIMELINE_FIGURES
            )
            + f"<td>{html.escape('; '.join(events) or '-')}</td></tr>"
        )
    clock = shown[-1].get("clock", WALL_CLOCK) if shown else WALL_CLOCK
    last = shown[-1] if shown else {}
    alarms = {metric: alarm for alarm, metric in (last.get("alarm_metrics") or {}).items()}
    thresholds = ", ".join(
        f"{metric} {value:g} ({alarms.get(metric, 'alarm')})"
        for metric, value in (last.get("thresholds") or {}).items()
    )
    head = "".join(
        f"<th>{h}</th>" for h in ("window", f"time ({clock})", "model", *TIMELINE_FIGURES)
    )
    return "".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'>",
            "<title>Mushroom monitoring timeline</title>",
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>",
            "</head><body><h1>Monitoring timeline</h1>",
            f"<p>{len(shown)} windows (the last {INDEX_WINDOWS} at most); times from the "
            f"{html.escape(clock)}. Dashed red: alarm thresholds; dotted red: alarm state "
            "changes; green: model deployments. The interactive dashboard, from the repository "
            f"root: <code>{html.escape(monitoring_ui_hint(workspace))}</code>.</p>",
            f"<p>Alarm thresholds: {html.escape(thresholds or 'none known')}.</p>",
            "<div>"
            + "<br>".join(
                _svg_chart(shown, name, name == TIMELINE_FIGURES[-1]) for name in TIMELINE_FIGURES
            )
            + "</div>",
            f"<p>{html.escape(DECISION_ACCURACY_NOTE)}</p>",
            f"<table><tr>{head}<th>alarm transitions / deployments</th></tr>{''.join(rows)}",
            "</table>",
            shadow_section(shown),
            "</body></html>",
        ]
    )


def write_index(
    reports_dir: Path, timeline: Sequence[Mapping[str, Any]], workspace: Path | None = None
) -> Path:
    """Write ``index.html`` beside the windows' reports."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / "index.html"
    path.write_text(render_index(timeline, workspace), encoding="utf-8")
    return path


def write_timeline_png(reports_dir: Path) -> Path:
    """Draw ``timeline.jsonl`` as ``timeline.png`` (the index's charts, for a document)."""
    path = reports_dir / "timeline.png"
    path.write_bytes(timeline_png(read_timeline(reports_dir / "timeline.jsonl")))
    return path
