"""Event type names, versions and upcasting: what reading stored events needs, without pydantic.

The pydantic models (mar.events) are only needed to validate input; the read path (store,
projections, reports) imports this light module instead, so that read commands start fast.
mar.events checks at import that its classes match these names.
"""
from __future__ import annotations

from typing import Callable

# event type -> the model's class name in mar.events (the stored topic is mar.events:<name>)
CLASS_NAMES: dict[str, str] = {
    "patient_registered": "PatientRegistered",
    "weight_recorded": "WeightRecorded",
    "admitted": "Admitted",
    "transferred": "Transferred",
    "discharged": "Discharged",
    "readmitted": "Readmitted",
    "died": "Died",
    "home_medication_recorded": "HomeMedicationRecorded",
    "medication_ordered": "MedicationOrdered",
    "order_changed": "OrderChanged",
    "order_held": "OrderHeld",
    "order_resumed": "OrderResumed",
    "order_discontinued": "OrderDiscontinued",
    "dose_given": "DoseGiven",
    "infusion_rate_changed": "InfusionRateChanged",
    "dose_not_given": "DoseNotGiven",
    "entered_in_error": "EnteredInError",
    "alert_acknowledged": "AlertAcknowledged",
}

# The current version of each event type. Stored events carry "v", the version they were
# written in; an upcaster turns version n of a type into n+1, on read, so old streams stay
# readable. Raising a version here needs its upcaster in UPCASTERS.
VERSIONS: dict[str, int] = {event_type: 1 for event_type in CLASS_NAMES}
UPCASTERS: dict[tuple[str, int], Callable[[dict], dict]] = {}

# Stored topic for each event type. Old names go here when a class is renamed or moved.
TOPIC_ALIASES: dict[str, str] = {}

_BY_CLASS_NAME = {name: event_type for event_type, name in CLASS_NAMES.items()}


def topic_for(event_type: str) -> str:
    return f"mar.events:{CLASS_NAMES[event_type]}"


def type_for_topic(topic: str) -> str:
    topic = TOPIC_ALIASES.get(topic, topic)
    try:
        return _BY_CLASS_NAME[topic.rsplit(":", 1)[-1]]
    except KeyError:
        raise KeyError(topic) from None


def upcast(data: dict) -> dict:
    kind = data.get("type")
    current = VERSIONS.get(kind)
    if current is None:
        return data
    v = data.get("v", 1)
    while v < current:
        data = UPCASTERS[(kind, v)](data)
        v += 1
        data["v"] = v
    return data
