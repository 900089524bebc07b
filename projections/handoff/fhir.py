"""The packet as a FHIR Bundle, written by `mar.fhir_out` from plain data: a
MedicationStatement per line of the list (flagged unchanged, changed or prescribed from the
reconciliation; stops documented at this transition flagged ceased), a List with the flags,
and a DetectedIssue per open alert. Omissions have no list line: they are open alerts."""
from __future__ import annotations

from datetime import datetime

from mar.fhir_out import HandoffPacket, PacketAlert, PacketLine, flag_for, handoff_bundle

NO_STATUS_FLAG = "unchanged"  # a medication with no transition behind it (in-hospital packet)


def to_fhir(p: dict, version: str = "R5") -> dict:
    lines = [PacketLine(m["line"], flag_for(m["status"]) if m.get("status") else NO_STATUS_FLAG,
                        m.get("reason"), _time(m.get("started_at")), _last_given(m))
             for m in p["medications"]]
    lines += [PacketLine(x["line"], flag_for("stopped"), x.get("reason")) for x in p["stopped"]]
    alerts = [PacketAlert(a["id"], a["severity"], a["rule"].replace("_", " "), a["message"],
                          tuple(d.strip() for d in a["drug"].split(",")), tuple(a.get("evidence") or ()),
                          _time(a["at"]))
              for a in p["alerts"]["current"] + p["alerts"]["older"]]
    packet = HandoffPacket(p["patient_id"], datetime.fromisoformat(p["at"]), lines, alerts, p["title"])
    return handoff_bundle(packet, version)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _last_given(m: dict) -> datetime | None:
    d = m.get("last_dose")
    return _time(d["at"]) if d and "amount" in d else None
