"""The packet as plain text or Markdown. Both read only the packet's JSON, as HTML does, so
every format shows the same facts: open alerts first, then the medications."""
from __future__ import annotations

SEVERITY_MARK = {"high": "HIGH", "moderate": "MODERATE", "low": "LOW"}


def short(ts: str | None) -> str:
    """2007-12-03T11:00:00-08:00 -> 2007-12-03 11:00 (the packet's times are the patient's local time)."""
    return "-" if not ts else ts[:16].replace("T", " ")


def mme_number(x) -> str:
    return "-" if x is None else f"{x:,.0f}" if abs(x) >= 10 else f"{x:g}"


def alert_head(a: dict) -> str:
    return f"[{SEVERITY_MARK.get(a['severity'], a['severity'])}] {a['drug']} ({a['rule'].replace('_', ' ')}, {short(a['at'])})"


def reconciliation_summary(p: dict) -> str | None:
    r = p.get("reconciliation")
    if not r:
        return None
    lines = r["lines"]
    bad = [x for x in lines if not x["reconciled"]]
    what = f"Reconciliation of the {r['transition']} of {short(r['at'])}"
    if not bad:
        return f"{what}: all {len(lines)} lines reconciled."
    names = "; ".join(f"{x['drug']} {x['status']}" + (f" ({', '.join(x['discrepancy'])})" if x["discrepancy"] else "")
                      for x in bad)
    return f"{what}: {len(bad)} of {len(lines)} lines NOT reconciled: {names} - no documented reason."


def list_heading(p: dict) -> str:
    n = len(p["medications"])
    if p["mode"] == "transition":
        return f"Medications on the list that leaves ({n})"
    return f"Active medications ({n})"


def med_facts(m: dict) -> list[tuple[str, str]]:
    """(label, text) rows about one medication, in reading order."""
    out = []
    if m.get("indication"):
        out.append(("indication", m["indication"]))
    started = short(m.get("started_at"))
    if m.get("first_started_at") and m["first_started_at"] != m.get("started_at"):
        started += f" (first started {short(m['first_started_at'])})"
    out.append(("started", started + (f", order {m['order_id']}" if m.get("order_id") else "")))
    out.append(("last dose", last_dose_text(m.get("last_dose"), m.get("order_id"))))
    if m.get("taper"):
        out.append(("taper in progress", m["taper"]["text"]))
    if m.get("reason"):
        out.append(("reason", m["reason"]))
    if m.get("note"):
        out.append(("note", m["note"]))
    if m.get("why"):
        out.append(("why it matters", "; ".join(m["why"])))
    return out


def last_dose_text(d: dict | None, order_id: str | None = None) -> str:
    """The drug's last dose or running rate; the order it came from when that is not the
    line's own (two orders of one drug, such as a PCA beside an infusion)."""
    if not d:
        return "none recorded"
    if "rate" in d:
        state = f"stopped {short(d['at'])}" if d.get("stopped") else "running"
        text = f"{d['rate']:g} {d['rate_unit']} {d['route']} since {short(d['running_since'])} ({state})"
    else:
        text = f"{short(d['at'])}: {d['amount']:g} {d['unit']} {d['route']} ({d['kind'].replace('_', ' ')})"
    if order_id and d.get("order_id") and d["order_id"] != order_id:
        text += f", order {d['order_id']}"
    return text


def status_word(m: dict) -> str:
    return m.get("status") or "active"


def prescribed_summary(pm: dict) -> str:
    return (f"scheduled {mme_number(pm['scheduled_mme'])} MME/day; as needed at most "
            f"{mme_number(pm['as_needed_max_mme'])} MME/day; together at most {mme_number(pm['max_mme'])} MME/day "
            f"({pm['mme_table']} {pm['mme_table_edition']})")


# --- text -----------------------------------------------------------------------------------------


def to_text(p: dict) -> str:
    out = [f"{p['title'].upper()}", f"patient {p['patient_id']}; at {short(p['at'])} ({p['timezone']})", ""]
    out += _text_alerts(p)
    out += ["", list_heading(p).upper()]
    for i, m in enumerate(p["medications"], 1):
        out.append(f"{i}. {m['drug']} {m['text']}  [{status_word(m)}]")
        out += [f"   {label}: {text}" for label, text in med_facts(m)]
    if not p["medications"]:
        out.append("   none")
    if p["omitted"]:
        out += ["", "LEFT OFF WITHOUT A DOCUMENTED DECISION"]
        for x in p["omitted"]:
            out.append(f"  {x['drug']}: {x['before']['text']} (order {x['before'].get('order_id')}) - ask the prescriber")
            if x.get("why"):
                out.append(f"    why it matters: {'; '.join(x['why'])}")
    if p["mode"] == "transition":
        out += ["", "STOPPED AT THIS TRANSITION (documented)"]
        out += [f"  {x['drug']}: {x['before']['text']} - {x['reason']}" for x in p["stopped"]] or ["  none"]
    out += ["", "CHANGES IN THE LAST 7 DAYS"]
    out += [f"  {c['at']}  {c['drug'] or '':<14} {c['change']}" + (f" ({c['reason']})" if c["reason"] else "")
            for c in p["changes_last_7_days"]] or ["  none"]
    out += ["", "TAPERS IN PROGRESS"]
    out += [f"  {t['drug']} (order {t['order_id']}): {t['text']}" for t in p["tapers"]] or ["  none"]
    out += ["", "OPIOID EXPOSURE"]
    adm = p["mme"]["administered"]
    out.append(f"  Administered MME per day (what was given; {adm['mme_table']} {adm['mme_table_edition']}):")
    out += [f"    {d['date']}  {mme_number(d['mme']):>8}" + ("  (day in progress)" if d["partial"] else "")
            for d in adm["days"]]
    pm = p["mme"]["prescribed"]
    out.append(f"  Prescribed MME of {pm['source']} (what it allows, not what was given):")
    out.append(f"    {prescribed_summary(pm)}")
    older = p["alerts"]["older"]
    if older:
        out += ["", f"OLDER OPEN ALERTS, NOT ACKNOWLEDGED ({len(older)})"]
        out += [f"  {alert_head(a)}" for a in older]
    return "\n".join(out) + "\n"


def _text_alerts(p: dict) -> list[str]:
    current = p["alerts"]["current"]
    out = [f"!! OPEN ALERTS ({len(current)})" if current else "Open alerts: none in the last 7 days or at this transition"]
    for a in current:
        out.append(f"!! {alert_head(a)}")
        out.append(f"   {a['message']}")
    summary = reconciliation_summary(p)
    if summary:
        out.append(("!! " if "NOT" in summary else "") + summary)
    if p["alerts"].get("problem"):
        out.append(f"(note: {p['alerts']['problem']})")
    return out


# --- markdown ---------------------------------------------------------------------------------------


def _cell(text) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def to_markdown(p: dict) -> str:
    out = [f"# {p['title']}", "", f"Patient `{p['patient_id']}`, at {short(p['at'])} ({p['timezone']}).", ""]
    current = p["alerts"]["current"]
    out.append(f"## Open alerts ({len(current)})")
    out.append("")
    for a in current:
        out.append(f"> **{alert_head(a)}**  ")
        out.append(f"> {a['message']}")
        out.append("")
    if not current:
        out += ["None in the last 7 days or at this transition.", ""]
    summary = reconciliation_summary(p)
    if summary:
        out += [f"**{summary}**" if "NOT" in summary else summary, ""]
    out += [f"## {list_heading(p)}", "", "| drug | dose, route, frequency | status | indication | started | last dose |",
            "|---|---|---|---|---|---|"]
    for m in p["medications"]:
        out.append(f"| **{_cell(m['drug'])}** | {_cell(m['text'])} | {_cell(status_word(m))} | {_cell(m.get('indication'))}"
                   f" | {_cell(short(m.get('started_at')))} | {_cell(last_dose_text(m.get('last_dose'), m.get('order_id')))} |")
    out.append("")
    for m in p["medications"]:
        if m.get("why") or m.get("taper"):
            out.append(f"- **{m['drug']}**: " + "; ".join(([f"taper in progress: {m['taper']['text']}"] if m.get("taper") else [])
                                                          + m.get("why", [])))
    if p["omitted"]:
        out += ["", "## Left off without a documented decision", ""]
        out += [f"- **{x['drug']}** {x['before']['text']} (order {x['before'].get('order_id')}): ask the prescriber."
                + (f" Why it matters: {'; '.join(x['why'])}" if x.get("why") else "") for x in p["omitted"]]
    if p["mode"] == "transition":
        out += ["", "## Stopped at this transition (documented)", ""]
        out += [f"- {x['drug']}: {x['before']['text']}: {x['reason']}" for x in p["stopped"]] or ["None."]
    out += ["", "## Changes in the last 7 days", ""]
    if p["changes_last_7_days"]:
        out += ["| when | drug | change | reason |", "|---|---|---|---|"]
        out += [f"| {c['at']} | {_cell(c['drug'])} | {_cell(c['change'])} | {_cell(c['reason'])} |"
                for c in p["changes_last_7_days"]]
    else:
        out.append("None.")
    out += ["", "## Tapers in progress", ""]
    out += [f"- {t['drug']} (order {t['order_id']}): {t['text']}" for t in p["tapers"]] or ["None."]
    adm, pm = p["mme"]["administered"], p["mme"]["prescribed"]
    out += ["", "## Opioid exposure", "",
            f"**Administered MME per day** (what was given; {adm['mme_table']} {adm['mme_table_edition']}):", "",
            "| date | MME |", "|---|---|"]
    out += [f"| {d['date']}{' (in progress)' if d['partial'] else ''} | {mme_number(d['mme'])} |" for d in adm["days"]]
    out += ["", f"**Prescribed MME of {pm['source']}** (what it allows, not what was given): {prescribed_summary(pm)}"]
    older = p["alerts"]["older"]
    if older:
        out += ["", f"## Older open alerts, not acknowledged ({len(older)})", ""]
        out += [f"- {alert_head(a)}" for a in older]
    return "\n".join(out) + "\n"
