"""The packet as one printable HTML page: inline CSS, no scripts, no external resources.

Open alerts come first in a red box, before the medication table, so that a printed page
shows them at the top. Administered and prescribed MME sit in separate, labelled boxes.
"""
from __future__ import annotations

from html import escape

from .plain import (alert_head, last_dose_text, list_heading, med_facts, mme_number, prescribed_summary,
                     reconciliation_summary, short, status_word)

CSS = """
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { font: 10pt/1.35 "DejaVu Sans", Arial, sans-serif; color: #111; margin: 0 auto; padding: 8mm; max-width: 200mm; }
h1 { font-size: 15pt; margin: 0 0 1mm; }
h2 { font-size: 11.5pt; margin: 5mm 0 1.5mm; border-bottom: 1.5px solid #333; }
.meta { color: #444; margin-bottom: 3mm; }
.alerts { border: 3px solid #b00020; background: #fff1f1; padding: 2mm 3mm; margin: 2mm 0 3mm; }
.alerts h2 { color: #b00020; border: 0; margin-top: 0; }
.alert { margin: 1.5mm 0; }
.sev { display: inline-block; padding: 0 1.5mm; border-radius: 1mm; font-weight: bold; font-size: 8.5pt; }
.sev.high { background: #b00020; color: #fff; }
.sev.moderate { background: #e07b00; color: #fff; }
.sev.low { background: #777; color: #fff; }
.recon.bad { font-weight: bold; color: #b00020; }
.recon.ok { color: #1b5e20; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 1mm 1.5mm; border-bottom: 1px solid #ccc; }
th { background: #eee; font-size: 9pt; }
td.drug { font-weight: bold; white-space: nowrap; }
.status { font-size: 8.5pt; text-transform: uppercase; }
.status.changed, .status.new { color: #e07b00; font-weight: bold; }
.why { color: #333; font-size: 9pt; }
.omitted { border: 2px solid #b00020; padding: 1mm 2mm; }
.mme { display: flex; gap: 4mm; }
.mme > div { flex: 1; border: 1px solid #999; padding: 2mm; }
.bar { display: inline-block; height: 2.5mm; background: #555; vertical-align: middle; }
.small { font-size: 8.5pt; color: #444; }
@media print { body { padding: 0; } .alerts, tr, .mme { break-inside: avoid; } }
"""


def e(x) -> str:
    return escape("" if x is None else str(x))


def to_html(p: dict) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(p['title'])} - {e(p['patient_id'])}</title>", f"<style>{CSS}</style></head><body>",
             f"<h1>{e(p['title'])}</h1>",
             f'<div class="meta">Patient <b>{e(p["patient_id"])}</b> - at {e(short(p["at"]))} ({e(p["timezone"])})</div>']
    parts += _alerts(p)
    parts += _medications(p)
    parts += _left_off(p)
    parts += _changes(p)
    parts += _mme(p)
    parts += _older(p)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _alerts(p: dict) -> list[str]:
    current = p["alerts"]["current"]
    out = ['<section class="alerts" id="alerts">', f"<h2>Open alerts ({len(current)})</h2>"]
    for a in current:
        out.append(f'<div class="alert"><span class="sev {e(a["severity"])}">{e(a["severity"].upper())}</span> '
                   f"<b>{e(a['drug'])}</b> - {e(a['rule'].replace('_', ' '))}, {e(short(a['at']))}"
                   f"<br>{e(a['message'])}</div>")
    if not current:
        out.append("<div>None in the last 7 days or at this transition.</div>")
    summary = reconciliation_summary(p)
    if summary:
        out.append(f'<div class="recon {"bad" if "NOT" in summary else "ok"}">{e(summary)}</div>')
    if p["alerts"].get("problem"):
        out.append(f'<div class="small">{e(p["alerts"]["problem"])}</div>')
    out.append("</section>")
    return out


def _medications(p: dict) -> list[str]:
    out = [f'<h2 id="medications">{e(list_heading(p))}</h2>', "<table><thead><tr><th>Drug</th><th>Dose, route, "
           "frequency</th><th>Status</th><th>Indication</th><th>Started</th><th>Last dose</th></tr></thead><tbody>"]
    for m in p["medications"]:
        facts = [(k, v) for k, v in med_facts(m) if k in ("why it matters", "taper in progress", "reason", "note")]
        why = "".join(f"<div><b>{e(k)}:</b> {e(v)}</div>" for k, v in facts)
        out.append(f'<tr><td class="drug">{e(m["drug"])}</td><td>{e(m["text"])}</td>'
                   f'<td class="status {e(status_word(m))}">{e(status_word(m))}</td><td>{e(m.get("indication"))}</td>'
                   f'<td>{e(short(m.get("started_at")))}</td><td>{e(last_dose_text(m.get("last_dose"), m.get("order_id")))}</td></tr>')
        if why:
            out.append(f'<tr><td></td><td colspan="5" class="why">{why}</td></tr>')
    if not p["medications"]:
        out.append('<tr><td colspan="6">None.</td></tr>')
    out.append("</tbody></table>")
    return out


def _left_off(p: dict) -> list[str]:
    out = []
    if p["omitted"]:
        out += ['<h2>Left off without a documented decision</h2>', '<div class="omitted">']
        out += [f"<div><b>{e(x['drug'])}</b> {e(x['before']['text'])} (order {e(x['before'].get('order_id'))}): "
                f"ask the prescriber whether it continues"
                + (f'<div class="why"><b>why it matters:</b> {e("; ".join(x["why"]))}</div>' if x.get("why") else "")
                + "</div>" for x in p["omitted"]]
        out.append("</div>")
    if p["mode"] == "transition":
        out.append("<h2>Stopped at this transition (documented)</h2>")
        out += [f"<div>{e(x['drug'])}: {e(x['before']['text'])} - {e(x['reason'])}</div>" for x in p["stopped"]] \
            or ["<div>None.</div>"]
    out.append("<h2>Tapers in progress</h2>")
    out += [f"<div><b>{e(t['drug'])}</b> (order {e(t['order_id'])}): {e(t['text'])}</div>" for t in p["tapers"]] \
        or ["<div>None.</div>"]
    return out


def _changes(p: dict) -> list[str]:
    out = ["<h2>Changes in the last 7 days</h2>"]
    if not p["changes_last_7_days"]:
        return out + ["<div>None.</div>"]
    out.append("<table><thead><tr><th>When</th><th>Drug</th><th>Change</th><th>Reason</th></tr></thead><tbody>")
    out += [f"<tr><td>{e(c['at'])}</td><td>{e(c['drug'])}</td><td>{e(c['change'])}</td><td>{e(c['reason'])}</td></tr>"
            for c in p["changes_last_7_days"]]
    out.append("</tbody></table>")
    return out


def _mme(p: dict) -> list[str]:
    adm, pm = p["mme"]["administered"], p["mme"]["prescribed"]
    top = max([d["mme"] or 0 for d in adm["days"]] + [1])
    rows = "".join(f"<tr><td>{e(d['date'])}{' (in progress)' if d['partial'] else ''}</td>"
                   f"<td>{e(mme_number(d['mme']))}</td>"
                   f'<td><span class="bar" style="width:{40 * (d["mme"] or 0) / top:.1f}mm"></span></td></tr>'
                   for d in adm["days"])
    return ["<h2>Opioid exposure</h2>", '<div class="mme">',
            f'<div id="administered"><b>Administered MME per day</b> <span class="small">(what was given; '
            f'{e(adm["mme_table"])} {e(adm["mme_table_edition"])})</span>'
            f"<table><tbody>{rows}</tbody></table></div>",
            f'<div id="prescribed"><b>Prescribed MME of {e(pm["source"])}</b> <span class="small">(what it allows, '
            f"not what was given)</span><p>{e(prescribed_summary(pm))}</p>"
            + "".join(f'<div class="small">{e(r["drug"])} {e(r["text"])}: {e(r["basis"])} x {e(r["factor"])} = '
                      f'{e(mme_number(r["mme"]))} MME/day{" (as needed, at most)" if r["as_needed"] else ""}</div>'
                      for r in pm["lines"]) + "</div>", "</div>"]


def _older(p: dict) -> list[str]:
    older = p["alerts"]["older"]
    if not older:
        return []
    return [f"<h2>Older open alerts, not acknowledged ({len(older)})</h2>"] + \
        [f'<div class="small">{e(alert_head(a))}</div>' for a in older]
