"""Which Events a status write posts: every warning alone, the normal steps of one write as one story."""

from __future__ import annotations

from agency_operator.events import Story, condition_type, fold


def _type(status: str, reason: str) -> str:
    return "Warning" if status == "False" and reason != "Starting" else "Normal"


def test_a_run_start_is_one_event_telling_every_step_in_order() -> None:
    stories = fold(
        [
            ("Admitted", "True", "Admitted", "Agent helper is governed by AgentPolicy default."),
            ("CredentialsReady", "True", "Found", "The model credentials exist."),
            ("IdentityReady", "True", "Bound", "ServiceAccount agency-run-r1 with its own Role."),
            ("Ready", "False", "Starting", "The runtime is starting."),
        ],
        _type,
    )
    assert stories == [
        Story(
            "Normal",
            "Starting",
            "Admitted: Agent helper is governed by AgentPolicy default. Found: The model credentials exist. "
            "Bound: ServiceAccount agency-run-r1 with its own Role. Starting: The runtime is starting.",
        )
    ]


def test_each_warning_is_an_event_of_its_own_beside_the_normal_story() -> None:
    stories = fold(
        [
            ("Admitted", "True", "Admitted", "Governed by default."),
            ("CredentialsReady", "False", "SecretNotFound", "Secret model-key does not exist."),
            ("Ready", "False", "BudgetSpent", "The daily budget is spent."),
        ],
        _type,
    )
    assert stories == [
        Story("Warning", "SecretNotFound", "Secret model-key does not exist."),
        Story("Warning", "BudgetSpent", "The daily budget is spent."),
        Story("Normal", "Admitted", "Governed by default."),
    ]


def test_a_single_normal_step_keeps_its_own_message_and_nothing_posts_nothing() -> None:
    assert fold([("Ready", "True", "Running", "The runtime is running.")], _type) == [
        Story("Normal", "Running", "The runtime is running.")
    ]
    assert fold([("Ready", "True", "Succeeded", "")], _type) == [Story("Normal", "Succeeded", "")]
    assert fold([], _type) == []


def test_an_agent_that_becomes_ready_within_budget_is_one_event_and_a_refusal_is_a_warning() -> None:
    ready = fold(
        [
            ("DailyBudgetAvailable", "True", "WithinBudget", "The agent has daily budget left."),
            ("Ready", "True", "Ready", "Governed by AgentPolicy default; new runs start."),
        ],
        condition_type,
    )
    refused = fold([("Ready", "False", "ModelNotAllowed", "Not allowed.")], condition_type)

    assert ready == [
        Story(
            "Normal",
            "Ready",
            "WithinBudget: The agent has daily budget left. "
            "Ready: Governed by AgentPolicy default; new runs start.",
        )
    ]
    assert refused == [Story("Warning", "ModelNotAllowed", "Not allowed.")]
