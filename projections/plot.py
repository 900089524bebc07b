"""The picture of one patient's course (the reference paper's Figure 2, for any patient).

Top panel: daily opioid use per drug and route (mg per local day, a step per day), and on a
second axis the adjuvant infusions (non-opioid infusions such as ketamine) as their rate in
mg/h over time; doses of oral NMDA antagonists (memantine) are marked along the bottom with
their dose. Bottom panel: the day's MME with the alert thresholds. Transitions of care
(admission, discharge, readmission, transfer) and death are vertical lines across both.

`figure_data` is pure (events in, series out) and is what a test compares; `draw` only
draws it, headless (matplotlib's Agg backend).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from mar.catalog import NMDA_ANTAGONIST, Catalog, default_catalog
from mar.errors import MarError, UnknownPatient

from .course import build_course
from .mme import MmeTable, load_table
from .timeline import day_bounds, days_between, local_day, to_datetime, zone
from .totals import amounts

WIDTH_IN, HEIGHT_IN, DPI = 14, 8, 100  # 1400 x 800 pixels
MARKED_CLASSES = (NMDA_ANTAGONIST,)
TRANSITION_WORDS = {"admitted": "admitted", "discharged": "discharged", "readmitted": "readmitted",
                    "transferred": "transfer", "died": "died"}


class PlotError(MarError):
    pass


@dataclass
class FigureData:
    patient_id: str
    timezone: str
    days: list[date]
    opioids: dict[str, list[float]] = field(default_factory=dict)  # "drug route" -> mg per day
    mme: list[float] = field(default_factory=list)
    mme_table: str = ""
    # drug -> (start, end, mg/h) of each constant-rate piece
    infusions: dict[str, list[tuple[datetime, datetime, float]]] = field(default_factory=dict)
    marked: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)  # drug -> (time, mg)
    transitions: list[tuple[datetime, str]] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)


def figure_data(events: list[dict], first: date | None = None, last: date | None = None,
                catalog: Catalog | None = None, table: MmeTable | None = None,
                thresholds: list[float] | None = None) -> FigureData:
    catalog = catalog or default_catalog()
    table = table or load_table()
    course = build_course(events)
    if course.timezone is None:
        raise PlotError(f"patient {course.patient_id!r} has no registered time zone: no local days to draw")
    tz = zone(course.timezone)
    horizon = course.horizon
    doses = [(a.at, a.drug, a.route, a.mg) for a in course.administrations]
    pieces = [(s.start, s.end, s.drug, s.route, s.mg_per_h) for s in course.segments]
    given = [a.at for a in course.administrations] + [s.start for s in course.segments]
    first = first or (local_day(min(given), tz) if given else local_day(horizon, tz))
    last = last or local_day(horizon, tz)
    if last < first:
        raise PlotError(f"--to {last} is before --from {first}")
    days = list(days_between(first, last))
    data = FigureData(course.patient_id, course.timezone, days, mme_table=table.label,
                      thresholds=list(thresholds or []))
    _daily(data, amounts(doses, pieces, tz, horizon, "day", first, last), catalog, table, tz)
    lo, hi = day_bounds(first, tz)[0], day_bounds(last, tz)[1]
    local = lambda us: to_datetime(us, tz).replace(tzinfo=None)  # noqa: E731  (the axis is in local time)
    for s in course.segments:
        drug = catalog.drug(s.drug)
        end = min(s.end if s.end is not None else horizon, hi)
        if drug is None or drug.is_opioid or s.mg_per_h is None or end <= lo or s.start >= hi:
            continue
        data.infusions.setdefault(s.drug, []).append((local(max(s.start, lo)), local(end), s.mg_per_h))
    for a in course.administrations:
        drug = catalog.drug(a.drug)
        if drug is not None and not drug.is_opioid and any(drug.is_a(c) for c in MARKED_CLASSES) \
                and a.route not in ("iv",) and lo <= a.at < hi:
            data.marked.setdefault(a.drug, []).append((local(a.at), a.mg))
    for tr in course.transitions:
        if lo <= tr.at < hi:
            where = tr.data.get("destination") or tr.data.get("to_location") or ""
            data.transitions.append((local(tr.at), f"{TRANSITION_WORDS[tr.kind]} {where}".strip()))
    if course.died_at is not None and lo <= course.died_at < hi:
        data.transitions.append((local(course.died_at), "died"))
    return data


def _daily(data: FigureData, rows, catalog: Catalog, table: MmeTable, tz) -> None:
    index = {d.isoformat(): i for i, d in enumerate(data.days)}
    mme = [[] for _ in data.days]
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(data.days))
    for r in rows:
        drug = catalog.drug(r.drug)
        if drug is None or not drug.is_opioid or r.date not in index:
            continue
        i = index[r.date]
        series[f"{r.drug} {r.route}"][i] += r.amount_mg
        d0, d1 = day_bounds(date.fromisoformat(r.date), tz)
        value = table.mme(r.drug, r.route, r.amount_mg, r.amount_mg, (d1 - d0) / 3_600_000_000)
        if value is not None:
            mme[i].append(value)
    data.opioids = dict(sorted(series.items(), key=lambda kv: -max(kv[1])))
    data.mme = [math.fsum(x) for x in mme]


def draw(data: FigureData, path: str) -> tuple[int, int]:
    """Write the PNG; returns its (width, height) in pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    rows = [3.2, 0.8, 1.4] if data.marked else [3.2, 1.4]
    fig, axes = plt.subplots(len(rows), 1, sharex=True, figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI,
                             gridspec_kw={"height_ratios": rows})
    top, bottom = axes[0], axes[-1]
    edges = [datetime.combine(d, datetime.min.time()) for d in data.days]
    edges.append(edges[-1] + timedelta(days=1))
    handles = _opioid_panel(top, data, edges) + _adjuvant_axis(top, data)
    if data.marked:
        handles += _marked_panel(axes[1], data)
    handles += _mme_panel(bottom, data, edges)
    for ax in axes:
        for when, _ in data.transitions:
            ax.axvline(when, color="0.35", linestyle="--", linewidth=1)
    for when, label in data.transitions:
        top.annotate(label, (mdates.date2num(when), 1), xycoords=("data", "axes fraction"), rotation=90,
                     va="top", ha="right", fontsize=8, color="0.2", xytext=(-2, -4), textcoords="offset points")
    bottom.set_xlim(edges[0], edges[-1])
    locator = mdates.AutoDateLocator(minticks=6, maxticks=16)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    bottom.set_xlabel(f"local day ({data.timezone}); dashed lines: transitions of care")
    fig.suptitle(f"{data.patient_id}: daily opioid use against adjuvant infusions, "
                 f"{data.days[0]} to {data.days[-1]}", x=0.01, y=0.99, ha="left", fontsize=13)
    fig.legend([h for h, _ in handles], [label for _, label in handles], loc="upper left", ncol=4, fontsize=8.5,
               frameon=False, bbox_to_anchor=(0.01, 0.955))
    fig.tight_layout(rect=(0, 0, 1, 0.885))
    fig.savefig(path, dpi=DPI)
    width, height = fig.canvas.get_width_height()
    plt.close(fig)
    return width, height


def _daily_path(values: list[float], edges) -> tuple[list, list]:
    """A step per day; no line at all on days without any (a log axis has no zero)."""
    xs, ys = [], []
    for i, v in enumerate(values):
        if v > 0:
            xs += [edges[i], edges[i + 1]]
            ys += [v, v]
        else:
            xs.append(edges[i])
            ys.append(math.nan)
    return xs, ys


# One colour per opioid whatever the range drawn, so two pictures compare at a glance.
OPIOID_COLORS = {"hydromorphone": "#1f4e9c", "methadone": "#c0392b", "morphine": "#2e8b57",
                 "oxycodone": "#8e44ad", "fentanyl": "#d35400", "hydrocodone": "#b7950b"}
OTHER_COLORS = ["#555555", "#17a589", "#a04000", "#5d6d7e"]


def _opioid_style(name: str) -> dict:
    drug, _, route = name.partition(" ")
    color = OPIOID_COLORS.get(drug) or OTHER_COLORS[sum(map(ord, drug)) % len(OTHER_COLORS)]
    # The same drug by two routes: parenteral solid, oral dash-dot.
    style = "-" if route in ("iv", "sc", "im") else "-."
    return {"color": color, "linestyle": style}


def _opioid_panel(ax, data: FigureData, edges) -> list:
    positive = [v for s in data.opioids.values() for v in s if v > 0]
    handles = []
    for name, values in data.opioids.items():
        line, = ax.plot(*_daily_path(values, edges), linewidth=2, **_opioid_style(name))
        handles.append((line, f"{name}, mg/day"))
    if positive and max(positive) / min(positive) > 50:
        ax.set_yscale("log")
    ax.set_ylabel("opioid given, mg per local day")
    ax.grid(True, axis="y", alpha=0.3)
    if not positive:
        ax.text(0.5, 0.5, "no opioid given in this range", transform=ax.transAxes, ha="center", color="0.4")
    return handles


def _adjuvant_axis(ax, data: FigureData) -> list:
    if not data.infusions:
        return []
    right = ax.twinx()
    handles, top = [], 0.0
    for (drug, pieces), color in zip(sorted(data.infusions.items()), ["#e67e22", "#16a085", "#7f8c8d"] * 3):
        xs, ys, last_end = [], [], None
        for start, end, rate in pieces:
            if last_end is not None and start != last_end:
                xs.append(last_end)
                ys.append(math.nan)
            xs += [start, end]
            ys += [rate, rate]
            last_end = end
            top = max(top, rate)
        line, = right.plot(xs, ys, linestyle=(0, (2, 1.5)), linewidth=2.4, color=color)
        handles.append((line, f"{drug} infusion, mg/h (right axis)"))
    right.set_ylabel("adjuvant infusion, mg/h")
    right.set_ylim(0, top * 1.25 if top else 1)
    return handles


def _marked_panel(ax, data: FigureData) -> list:
    handles = []
    top = 0.0
    for (drug, doses), marker in zip(sorted(data.marked.items()), ["v", "D", "s"] * 3):
        xs, ys = [t for t, _ in doses], [mg for _, mg in doses]
        handles.append((ax.scatter(xs, ys, marker=marker, s=18, color="#6c3483", zorder=5),
                        f"{drug} dose, mg (middle panel)"))
        top = max(top, *ys)
        previous = None
        for t, mg in doses:
            if mg != previous:
                ax.annotate(f"{mg:g} mg", (t, mg), fontsize=8, color="#6c3483", xytext=(3, 4),
                            textcoords="offset points")
                previous = mg
    ax.set_ylim(0, top * 1.6)
    ax.set_ylabel("dose, mg", fontsize=9)
    ax.set_title(", ".join(sorted(data.marked)) + " doses", fontsize=9, loc="left")
    ax.grid(True, axis="y", alpha=0.3)
    return handles


def _mme_panel(ax, data: FigureData, edges) -> list:
    art = ax.stairs(data.mme, edges, fill=True, color="#34495e", alpha=0.55)
    positive = [v for v in data.mme if v > 0]
    if positive and max(positive) / min(positive) > 50:
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(1.0, min(positive + data.thresholds) / 2))
    elif data.thresholds:
        ax.set_ylim(0, max([*positive, *data.thresholds]) * 1.15)
    for i, level in enumerate(sorted(data.thresholds, reverse=True)):
        ax.axhline(level, color="#c0392b", linewidth=1, linestyle="-.")
        # the highest label above its line, the others below theirs: close lines stay legible
        ax.annotate(f"{level:g} MME", (0.002, level), xycoords=("axes fraction", "data"), fontsize=8,
                    color="#c0392b", va="bottom" if i == 0 else "top")
    ax.set_ylabel("MME per day")
    ax.grid(True, axis="y", alpha=0.3)
    return [(art, f"MME per day ({data.mme_table})")]


def plot_patient(store, patient_id: str, path: str, first: str | None = None, last: str | None = None) -> dict:
    """What `mar plot` runs: catch the read models up, read the patient, draw."""
    from .alerts.config import default_rules
    from .events_table import patient_events
    from .runner import Runner

    with Runner(store) as runner:
        runner.catch_up()
        events = patient_events(runner.db, patient_id)
    if not events:
        raise UnknownPatient(patient_id)
    rules = default_rules().rule("mme_threshold")
    data = figure_data(events, _day(first, "--from"), _day(last, "--to"),
                       table=load_table(rules["mme_table"]), thresholds=[t["mme"] for t in rules["thresholds"]])
    width, height = draw(data, path)
    return {"days": len(data.days), "from": data.days[0].isoformat(), "to": data.days[-1].isoformat(),
            "width": width, "height": height}


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PlotError(f"{option}={text!r}: give a local day as YYYY-MM-DD") from None
