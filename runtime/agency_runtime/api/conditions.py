"""Standard Kubernetes conditions, written once for every kind (kopf has no helpers for them).

Pure functions: they take the current list (models or the dicts found in a body) and return a new list
of models, so a handler can compute a status patch without side effects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from agency_runtime.api.common import Condition, ConditionStatus

READY = "Ready"

ConditionLike = Condition | Mapping[str, Any]


def _model(condition: ConditionLike) -> Condition:
    return condition if isinstance(condition, Condition) else Condition.model_validate(dict(condition))


def _status(value: bool | str | ConditionStatus) -> ConditionStatus:
    if isinstance(value, bool):
        return ConditionStatus.TRUE if value else ConditionStatus.FALSE
    return ConditionStatus(value)


def now() -> datetime:
    """The current time, to the second, in UTC: the precision Kubernetes stores."""
    return datetime.now(UTC).replace(microsecond=0)


def get_condition(conditions: Iterable[ConditionLike], type_: str) -> Condition | None:
    """The condition of this type, if there is one."""
    for condition in conditions:
        model = _model(condition)
        if model.type == type_:
            return model
    return None


def set_condition(
    conditions: Sequence[ConditionLike],
    type_: str,
    status: bool | str | ConditionStatus,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    at: datetime | None = None,
) -> list[Condition]:
    """The conditions with this one set, in place of any earlier one of the same type.

    lastTransitionTime only moves when the status changes, so it tells when the state changed, not when
    the operator last looked.
    """
    new_status = _status(status)
    previous = get_condition(conditions, type_)
    changed = previous is None or previous.status != new_status
    transition = (at or now()) if changed or previous is None else previous.last_transition_time
    updated = Condition(
        type=type_,
        status=new_status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    result: list[Condition] = []
    placed = False
    for condition in conditions:
        model = _model(condition)
        if model.type == type_:
            if not placed:
                result.append(updated)
                placed = True
        else:
            result.append(model)
    if not placed:
        result.append(updated)
    return result


def remove_condition(conditions: Sequence[ConditionLike], type_: str) -> list[Condition]:
    """The conditions without the one of this type."""
    return [model for model in map(_model, conditions) if model.type != type_]


def is_true(conditions: Iterable[ConditionLike], type_: str = READY) -> bool:
    """Whether the condition is present and True (Ready by default)."""
    condition = get_condition(conditions, type_)
    return condition is not None and condition.status == ConditionStatus.TRUE


def is_false(conditions: Iterable[ConditionLike], type_: str = READY) -> bool:
    """Whether the condition is present and False (Ready by default)."""
    condition = get_condition(conditions, type_)
    return condition is not None and condition.status == ConditionStatus.FALSE


def to_k8s(conditions: Iterable[ConditionLike]) -> list[dict[str, Any]]:
    """The conditions as JSON-ready dicts for a status patch."""
    return [_model(condition).to_k8s() for condition in conditions]
