"""kopf keeps no essence of objects here, which is right only while no handler compares two states."""

from __future__ import annotations

from typing import Any

import kopf

from agency_operator import handlers
from agency_operator.essence import NoEssence, changing_handlers
from agency_operator.settings import Settings


def test_the_operator_registers_no_handler_that_compares_an_object_with_its_last_state() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, Settings())
    assert changing_handlers(registry) == []


def test_a_comparing_handler_would_be_found() -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.update("agency.dev", "v1alpha1", "agents", id="spec-changed", registry=registry)
    def changed(**_: Any) -> None:
        """Would never fire with NoEssence: the reason the test above exists."""

    assert changing_handlers(registry) == ["spec-changed"]


def test_no_essence_is_built_or_kept() -> None:
    storage = NoEssence()
    body = kopf.Body({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"model": {"name": "m"}}})
    assert storage.build(body=body) == {}
    storage.store(body=body, patch=kopf.Patch(), essence=storage.build(body=body))
    assert storage.fetch(body=body) is None
