"""The handoff packet: what a receiving nurse needs at a transition of care.

    packet = build_packet(record, at)            # JSON-ready dict (projections.handoff.packet)
    render(packet, "text" | "md" | "html" | "json" | "fhir")

See docs/reconciliation.md ("Handoff packet").
"""
from __future__ import annotations

import json

from mar.errors import MarError

from .packet import build_packet

FORMATS = ("text", "md", "html", "json", "fhir")


def render(packet: dict, fmt: str) -> str:
    if fmt == "text":
        from .plain import to_text
        return to_text(packet)
    if fmt == "md":
        from .plain import to_markdown
        return to_markdown(packet)
    if fmt == "html":
        from .html import to_html
        return to_html(packet)
    if fmt == "json":
        return json.dumps(packet, indent=2, ensure_ascii=False) + "\n"
    if fmt == "fhir":
        from .fhir import to_fhir
        return json.dumps(to_fhir(packet), indent=2, ensure_ascii=False) + "\n"
    raise MarError(f"--format={fmt!r}: use one of {', '.join(FORMATS)}")


def handoff(store, patient_id: str, at: str | None = None, fmt: str = "text",
            mme_table: str | None = None) -> str:
    """What `mar handoff` runs: the packet of PATIENT at `at`, rendered."""
    from ..reconcile import load_patient

    record = load_patient(store, patient_id)
    return render(build_packet(record, record.time(at), table_name=mme_table), fmt)
