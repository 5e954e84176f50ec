"""Discovery served by the real operator: a Ready agent advertises its skills in its status, and its
A2A-style agent card is shown to whoever may get the Agent (token for the server's audience)."""

from __future__ import annotations

import httpx

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    JsonDict,
    OperatorFactory,
    agent,
    api_get,
    apply,
    policy,
    secret,
    wait_for,
)
from agency_testbed.procs import free_port

AUDIENCE = "agency.dev/signals"
SKILLS = [
    {"name": "route-planning", "description": "Plans delivery routes for refrigerated trucks."},
    {"name": "dispatch", "description": "Sends a truck to a lot."},
]


def _agent_status(testbed: Testbed, namespace: str, name: str) -> JsonDict:
    body = api_get(testbed, f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agents/{name}")
    status: JsonDict = (body or {}).get("status") or {}
    return status


def _reader_token(kubectl: Kubectl, namespace: str, *, may_get_agents: bool) -> str:
    kubectl("create", "serviceaccount", "portal", "-n", namespace)
    if may_get_agents:
        kubectl(
            "create", "role", "agent-reader", "-n", namespace, "--verb=get", "--resource=agents.agency.dev"
        )
        kubectl(
            "create", "rolebinding", "portal-reads-agents", "-n", namespace,
            "--role=agent-reader", f"--serviceaccount={namespace}:portal",
        )  # fmt: skip
    return kubectl("create", "token", "portal", "-n", namespace, "--audience", AUDIENCE).stdout.strip()


class Server:
    def __init__(self, operator: OperatorFactory, namespace: str) -> None:
        port = free_port()
        operator.start(executor="local", env={**STUB_ENV, "AGENCY_SIGNALS_PORT": str(port)})
        self.base = f"http://127.0.0.1:{port}"
        self.namespace = namespace

    def card(self, name: str, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.base}/namespaces/{self.namespace}/agents/{name}/.well-known/agent-card.json"
        return httpx.get(url, headers=headers, timeout=30)


def test_a_ready_agent_advertises_its_skills_and_its_card_lists_them(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    dispatcher = agent(
        namespace, "dispatcher", skills=SKILLS, description="Dispatches replacement shipments."
    )
    apply(kubectl, secret(namespace), policy(namespace), dispatcher)
    server = Server(operator, namespace)
    wait_for(
        lambda: (
            _agent_status(testbed, namespace, "dispatcher").get("skills") == ["route-planning", "dispatch"]
        ),
        30,
        "the agent to advertise its skills",
        lambda: f" (status: {_agent_status(testbed, namespace, 'dispatcher')})",
    )

    answer = server.card("dispatcher", _reader_token(kubectl, namespace, may_get_agents=True))

    assert answer.status_code == 200, answer.text
    card = answer.json()
    assert card["name"] == "dispatcher"
    assert card["description"] == "Dispatches replacement shipments."
    assert card["url"] == f"{server.base}/namespaces/{namespace}/agents/dispatcher"
    assert card["protocolVersion"] == "0.3.0"
    assert card["defaultInputModes"] == ["text/plain"]
    assert [(s["id"], s["description"]) for s in card["skills"]] == [
        ("route-planning", "Plans delivery routes for refrigerated trucks."),
        ("dispatch", "Sends a truck to a lot."),
    ]
    assert card["securitySchemes"]["kubernetes"]["scheme"] == "bearer"


def test_an_agent_that_cannot_run_advertises_no_skills(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, policy(namespace), agent(namespace, "dispatcher", skills=SKILLS))  # no model key Secret
    server = Server(operator, namespace)
    wait_for(
        lambda: any(
            c["type"] == "Ready" and c["status"] == "False"
            for c in _agent_status(testbed, namespace, "dispatcher").get("conditions", [])
        ),
        30,
        "the agent to be found not Ready",
    )
    assert "skills" not in _agent_status(testbed, namespace, "dispatcher")
    answer = server.card("dispatcher", _reader_token(kubectl, namespace, may_get_agents=True))
    assert answer.status_code == 200, answer.text
    assert answer.json()["skills"] == []


def test_an_agent_card_needs_a_token_and_rbac_to_get_the_agent(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace, "dispatcher", skills=SKILLS))
    server = Server(operator, namespace)
    anonymous = server.card("dispatcher", None)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert server.card("dispatcher", "not-a-token").status_code == 401
    stranger = server.card("dispatcher", _reader_token(kubectl, namespace, may_get_agents=False))
    assert stranger.status_code == 403
    assert "skills" not in stranger.json()


def test_an_agent_card_of_a_missing_agent_is_404(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    server = Server(operator, namespace)
    answer = server.card("nobody", _reader_token(kubectl, namespace, may_get_agents=True))
    assert answer.status_code == 404
