"""The shadow's part of ``index.html``: the champion's and the shadow's figures on the same
records, window by window (two lines per chart), with the shadow's start, promotion and discard
as markers, drawn from the timeline entries' ``shadow`` and ``shadow_events``."""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from lambda_function import verdict_metrics as vm
from monitoring.shadow_evidence import CHAMPION, ROLES, SHADOW

FIGURES = (vm.DECISION_ACCURACY, vm.FALSE_EDIBLE_RATE, vm.COVERAGE, vm.UNKNOWN_RATE)
COLOURS = {CHAMPION: "#3949ab", SHADOW: "#f57c00"}
EVENT_COLOURS = {"started": "#6d4c41", "promoted": "#2e7d32", "discarded": "#c62828"}


def event_labels(entry: Mapping[str, Any]) -> list[str]:
    """``"shadow v2 promoted"`` for each shadow event of a window."""
    return [
        f"shadow v{e.get('model_version')} {e.get('event')}"
        for e in entry.get("shadow_events") or []
    ]


def shadow_lines(view: Mapping[str, Any] | None) -> list[str]:
    """The printed summary's lines about the window's shadow (none without one)."""
    if not view or not view.get("model_version"):
        return [f"shadow: {e}" for e in (view or {}).get("errors", [])]
    figures = view.get("figures") or {}
    lines = [
        f"shadow v{view['model_version']}: {view.get('records') or 0} records beside the "
        f"champion, {view.get('labelled') or 0} labelled "
        f"({view.get('labelled_poisonous') or 0} poisonous); disagreement "
        f"{_rate(figures.get(vm.DISAGREEMENT_RATE))}; discordant: champion right "
        f"{(view.get('discordant') or {}).get(CHAMPION, 0)}, shadow right "
        f"{(view.get('discordant') or {}).get(SHADOW, 0)}"
    ]
    for figure in FIGURES:
        lines.append(
            f"  {vm.CLOUDWATCH_NAMES[figure]}: champion "
            f"{_rate((figures.get(CHAMPION) or {}).get(figure))}, shadow "
            f"{_rate((figures.get(SHADOW) or {}).get(figure))}"
        )
    decision = view.get("decision") or {}
    if decision:
        lines.append(f"  decision: {decision.get('action')}: {decision.get('reason')}")
    lines.extend(f"  shadow: {e}" for e in view.get("errors", []))
    return lines


def _rate(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


#: A CloudWatch name -> the figure compared by role, for the charts that draw both roles.
FIGURES_BY_NAME = {vm.CLOUDWATCH_NAMES[f]: f for f in FIGURES}


def role_values(shown: Sequence[Mapping[str, Any]], role: str, figure: str) -> list[float | None]:
    """The role's ``figure`` in each window of ``shown`` (None where it has none)."""
    return [_value(e, role, figure) for e in shown]


def event_marks(shown: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, str]]:
    """(window index, label, colour) of each shadow event of ``shown``."""
    return [
        (index, label, EVENT_COLOURS.get(label.rsplit(" ", 1)[-1], "#555"))
        for index, entry in enumerate(shown)
        for label in event_labels(entry)
    ]


def _value(entry: Mapping[str, Any], role: str, figure: str) -> float | None:
    figures = (entry.get("shadow") or {}).get("figures") or {}
    value = (figures.get(role) or {}).get(figure)
    return float(value) if isinstance(value, (int, float)) else None


def _chart(shown: Sequence[Mapping[str, Any]], figure: str) -> str:
    width, height, left, right, top, bottom = 720, 110, 70, 10, 16, 8
    step = (width - left - right) / max(len(shown), 1)

    def x(index: float) -> float:
        return left + step * (index + 0.5)

    def y(value: float) -> float:  # every figure here is a rate in [0, 1]
        return top + (height - top - bottom) * (1.0 - value)

    name = vm.CLOUDWATCH_NAMES[figure]
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"font-family='sans-serif' font-size='10' role='img' aria-label='{name} by role'>",
        f"<text x='{left}' y='{top - 4}' font-weight='bold'>{name}: champion and shadow on the "
        "same records</text>",
        f"<text x='{left - 4}' y='{y(1) + 4:.1f}' text-anchor='end'>1</text>",
        f"<text x='{left - 4}' y='{y(0) + 4:.1f}' text-anchor='end'>0</text>",
        f"<rect x='{left}' y='{top}' width='{width - left - right}' "
        f"height='{height - top - bottom}' fill='none' stroke='#ccc'/>",
    ]
    per_window: dict[int, int] = {}
    for index, label, colour in event_marks(shown):
        n = per_window[index] = per_window.get(index, -1) + 1  # stacked labels per window
        parts.append(
            f"<line class='shadow-event' x1='{x(index):.1f}' x2='{x(index):.1f}' y1='{top}' "
            f"y2='{height - bottom}' stroke='{colour}' stroke-dasharray='4,2'/>"
            f"<text x='{x(index) + 3:.1f}' y='{top + 12 + 12 * n}' fill='{colour}'>"
            f"{html.escape(label)}</text>"
        )
    for role in ROLES:
        points = [
            (x(i), y(v)) for i, e in enumerate(shown) if (v := _value(e, role, figure)) is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f"<polyline class='{role}-line' points='{path}' fill='none' "
                f"stroke='{COLOURS[role]}' stroke-width='2'/>"
            )
        for px, py in points:
            parts.append(
                f"<circle class='{role}-line' cx='{px:.1f}' cy='{py:.1f}' r='3' "
                f"fill='{COLOURS[role]}'><title>{role}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def shadow_section(shown: Sequence[Mapping[str, Any]]) -> str:
    """The section (empty when no window of ``shown`` had a shadow)."""
    if not any(e.get("shadow") or e.get("shadow_events") for e in shown):
        return ""
    rows = []
    for entry in shown:
        view = entry.get("shadow") or {}
        decision = view.get("decision") or {}
        if not view and not entry.get("shadow_events"):
            continue
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    entry.get("window"),
                    view.get("model_version") or "-",
                    view.get("labelled") if view.get("labelled") is not None else "-",
                    view.get("labelled_poisonous") if view.get("labelled") is not None else "-",
                    (view.get("discordant") or {}).get(CHAMPION, "-"),
                    (view.get("discordant") or {}).get(SHADOW, "-"),
                    decision.get("action", "-"),
                    "; ".join([decision.get("reason", ""), *view.get("errors", [])]).strip("; ")
                    or "-",
                )
            )
            + "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "window",
            "shadow",
            "labelled",
            "poisonous",
            "champion only right",
            "shadow only right",
            "decision",
            "why",
        )
    )
    return "".join(
        [
            "<h2>Shadow model</h2>",
            "<p>Blue: the champion, orange: the shadow, on the same records since the shadow "
            "started (its evidence accumulates). Dashed: the shadow's start (brown), promotion "
            "(green), discard (red).</p>",
            "<div>" + "<br>".join(_chart(shown, f) for f in FIGURES) + "</div>",
            f"<table><tr>{head}</tr>{''.join(rows)}</table>",
        ]
    )
