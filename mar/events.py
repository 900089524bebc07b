"""The event vocabulary: every medication fact about a patient, as a frozen pydantic model.

Shapes, types and units are checked here; facts that need the drug catalog or the
patient's chart (unknown drug, dose against a stopped order, ...) are checked in
`mar.checks`. Stored topics are `mar.events:<ClassName>`: renaming or moving a class
needs an alias in `TOPIC_ALIASES`.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
)

from .event_types import (  # noqa: F401  (re-exported for callers of mar.events)
    CLASS_NAMES,
    TOPIC_ALIASES,
    UPCASTERS,
    VERSIONS,
    topic_for,
    type_for_topic,
    upcast,
)
from .units import MASS_TO_MG, RATE_TO_MG_PER_H, WEIGHT_TO_KG

NonEmpty = Annotated[str, Field(min_length=1, max_length=500)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _unit_in(allowed: dict, what: str):
    def check(unit: str) -> str:
        if unit not in allowed:
            raise ValueError(
                f"unit {unit!r} does not fit {what}; use one of {', '.join(allowed)}"
            )
        return unit

    return AfterValidator(check)


# allow_inf_nan=False rather than a validator: constraints such as gt=0 then stay
# plain numbers, shown as exclusiveMinimum in `mar schema`.
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _unit(allowed: dict, what: str):
    """A unit checked with a clear message, and listed as an enum in `mar schema`."""
    return Annotated[str, _unit_in(allowed, what), Field(json_schema_extra={"enum": list(allowed)})]


MassUnit = _unit(MASS_TO_MG, "a dose")
RateUnit = _unit(RATE_TO_MG_PER_H, "a rate")
WeightUnit = _unit(WEIGHT_TO_KG, "a body weight")


class Dose(Frozen):
    """An amount of drug: a mass (mg, mcg, g). Volumes need a concentration and are refused."""

    value: Annotated[Finite, Field(gt=0)]
    unit: MassUnit


class Rate(Frozen):
    """An infusion rate: mass per time, optionally per kg of body weight."""

    value: Annotated[Finite, Field(gt=0)]
    unit: RateUnit


class RateOrStop(Rate):
    """A new rate for a running infusion; 0 means the infusion was stopped."""

    value: Annotated[Finite, Field(ge=0)]


class Weight(Frozen):
    value: Annotated[Finite, Field(gt=0)]
    unit: WeightUnit


# --- dosing forms -------------------------------------------------------------------


class Scheduled(Frozen):
    form: Literal["scheduled"]
    dose: Dose
    frequency: NonEmpty


class AsNeeded(Frozen):
    form: Literal["as_needed"]
    dose: Dose
    frequency: NonEmpty = Field(description="shortest allowed interval, e.g. q4h")
    max_daily: Dose | None = None
    prn_reason: str | None = None


class Infusion(Frozen):
    form: Literal["infusion"]
    rate: Rate


class PCA(Frozen):
    form: Literal["pca"]
    demand_dose: Dose
    lockout_minutes: Annotated[Finite, Field(gt=0, le=240)]
    basal_rate: Rate | None = None
    limit: Dose | None = Field(None, description="most drug allowed per limit_hours")
    limit_hours: Literal[1, 4] | None = None


Dosing = Annotated[Union[Scheduled, AsNeeded, Infusion, PCA], Field(discriminator="form")]


class ListedMedication(Frozen):
    """One line of a medication list that crosses a transition (discharge, transfer ...)."""

    drug: NonEmpty
    route: NonEmpty
    dosing: Dosing
    indication: str | None = None
    order_id: str | None = Field(None, description="the inpatient order this line carries over")
    note: str | None = None


class Decision(Frozen):
    """A documented reconciliation decision about one medication at a transition."""

    drug: NonEmpty
    action: Literal["continue", "change", "stop", "hold"]
    reason: NonEmpty
    order_id: str | None = None


# --- the events ---------------------------------------------------------------------


class Event(Frozen):
    """Fields every event carries."""

    type: str
    patient_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
    effective_at: AwareDatetime = Field(description="when it happened clinically, with UTC offset")
    recorded_at: AwareDatetime | None = Field(
        None, description="when the source system charted it; defaults to the store's time"
    )
    recorded_by: str | None = Field(None, description="who charted it; defaults to the writing user")
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    note: str | None = None
    inferred: tuple[str, ...] = Field(
        (), description="names of fields filled in by inference rather than from a source"
    )


class PatientRegistered(Event):
    type: Literal["patient_registered"]
    timezone: NonEmpty = Field(description="IANA time zone of the patient's calendar days")
    display_name: str | None = None


class WeightRecorded(Event):
    type: Literal["weight_recorded"]
    weight: Weight


class Admitted(Event):
    type: Literal["admitted"]
    location: NonEmpty
    reason: str | None = None
    decisions: tuple[Decision, ...] = ()


class Transferred(Event):
    type: Literal["transferred"]
    to_location: NonEmpty
    from_location: str | None = None
    medication_list: tuple[ListedMedication, ...] | None = None
    decisions: tuple[Decision, ...] = ()


class Discharged(Event):
    type: Literal["discharged"]
    destination: NonEmpty
    medication_list: tuple[ListedMedication, ...] = Field(
        description="the discharge medication list exactly as sent"
    )
    decisions: tuple[Decision, ...] = ()


class Readmitted(Event):
    type: Literal["readmitted"]
    location: NonEmpty
    from_facility: str | None = None
    reason: str | None = None
    medication_list: tuple[ListedMedication, ...] | None = Field(
        None, description="what the patient received where they came from"
    )
    decisions: tuple[Decision, ...] = ()


class Died(Event):
    type: Literal["died"]


class HomeMedicationRecorded(Event):
    type: Literal["home_medication_recorded"]
    drug: NonEmpty
    route: NonEmpty
    dosing: Dosing
    indication: str | None = None
    source: str | None = Field(None, description="patient, family, pharmacy, prior record ...")


class MedicationOrdered(Event):
    type: Literal["medication_ordered"]
    order_id: NonEmpty
    drug: NonEmpty
    route: NonEmpty
    dosing: Dosing
    prescriber: NonEmpty
    indication: str | None = None


class OrderChanged(Event):
    type: Literal["order_changed"]
    order_id: NonEmpty
    reason: NonEmpty
    dose: Dose | None = None
    frequency: str | None = None
    rate: Rate | None = None
    route: str | None = None
    max_daily: Dose | None = None
    demand_dose: Dose | None = None
    lockout_minutes: Annotated[Finite, Field(gt=0, le=240)] | None = None
    basal_rate: RateOrStop | None = None
    limit: Dose | None = None
    prescriber: str | None = None

    CHANGEABLE: ClassVar[tuple[str, ...]] = (
        "dose", "frequency", "rate", "route", "max_daily",
        "demand_dose", "lockout_minutes", "basal_rate", "limit",
    )


class OrderHeld(Event):
    type: Literal["order_held"]
    order_id: NonEmpty
    reason: NonEmpty


class OrderResumed(Event):
    type: Literal["order_resumed"]
    order_id: NonEmpty
    reason: str | None = None


class OrderDiscontinued(Event):
    type: Literal["order_discontinued"]
    order_id: NonEmpty
    reason: NonEmpty


class DoseGiven(Event):
    type: Literal["dose_given"]
    order_id: NonEmpty
    dose: Dose
    route: NonEmpty
    kind: Literal["scheduled", "as_needed", "bolus", "pca_demand"]


class InfusionRateChanged(Event):
    type: Literal["infusion_rate_changed"]
    order_id: NonEmpty
    rate: RateOrStop
    reason: str | None = None


class DoseNotGiven(Event):
    type: Literal["dose_not_given"]
    order_id: NonEmpty
    status_reason: Literal["held", "refused", "unavailable"]


class EnteredInError(Event):
    type: Literal["entered_in_error"]
    target_event_id: NonEmpty
    reason: NonEmpty


class AlertAcknowledged(Event):
    type: Literal["alert_acknowledged"]
    alert_id: NonEmpty
    reason: NonEmpty


EVENT_CLASSES: tuple[type[Event], ...] = (
    PatientRegistered, WeightRecorded, Admitted, Transferred, Discharged, Readmitted, Died,
    HomeMedicationRecorded, MedicationOrdered, OrderChanged, OrderHeld, OrderResumed,
    OrderDiscontinued, DoseGiven, InfusionRateChanged, DoseNotGiven, EnteredInError,
    AlertAcknowledged,
)

BY_TYPE: dict[str, type[Event]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls for cls in EVENT_CLASSES
}

AnyEvent = Annotated[Union[EVENT_CLASSES], Field(discriminator="type")]  # type: ignore[valid-type]
EVENT_ADAPTER: TypeAdapter = TypeAdapter(AnyEvent)

# Names, versions, topics and upcasting live in the light module the read path imports.
for _type, _cls in BY_TYPE.items():
    if CLASS_NAMES.get(_type) != _cls.__name__:
        raise RuntimeError(f"mar.event_types.CLASS_NAMES disagrees with mar.events for {_type!r}")
if set(CLASS_NAMES) != set(BY_TYPE):
    raise RuntimeError("mar.event_types.CLASS_NAMES and mar.events.BY_TYPE list different types")


def json_schema() -> dict:
    return EVENT_ADAPTER.json_schema()
