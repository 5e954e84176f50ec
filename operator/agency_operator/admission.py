"""The validating admission webhook: refuse at `kubectl apply` what the operator would refuse later.

CRD rules (CEL) see one object only, but whether an AgentRun's budget is allowed depends on the policy
that governs its Agent, two objects away (AgentRun -> Agent -> AgentPolicy); the same holds for the
models and tools of an Agent. kopf serves this webhook and manages the ValidatingWebhookConfiguration
`agency.dev` itself (creating it, pointing it at the operator, removing its webhooks on a clean stop).

The webhook is an early fence, not the guard: its failurePolicy is Ignore, so while the operator is
down (or the apiserver cannot reach it) objects are accepted, and the operator's conditions
(`resolve.py`, `runs.py`) refuse them when it comes back. It only refuses what nothing but a new object
can fix (a run's budget above its policy's; an agent's model or tool its policy forbids), and lets
through what may be fixed later (a run whose Agent or policy does not exist yet) for the conditions to
report.

`check_run` and `check_agent_fields` are pure; the handlers only fetch the objects they need.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Collection, Sequence
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agency_operator.kube import Kube, path_for
from agency_operator.resolve import is_delegated, matches, policy_for
from agency_operator.settings import Settings
from agency_runtime.api.agent import Agent
from agency_runtime.api.common import RunBudget
from agency_runtime.api.meta import API_VERSION, GROUP, VERSION
from agency_runtime.api.policy import AgentPolicy
from agency_runtime.api.run import AgentRun

#: The ValidatingWebhookConfiguration kopf creates and keeps pointed at this operator.
CONFIGURATION_NAME = "agency.dev"

_BUDGET_FIELDS = (
    ("max_tokens", "maxTokens"),
    ("max_cost_usd", "maxCostUSD"),
    ("max_steps", "maxSteps"),
    ("max_wall_seconds", "maxWallSeconds"),
)


# ----- decisions (pure) ---------------------------------------------------------------------------------
def check_run(run: AgentRun, agent: Agent, policy: AgentPolicy) -> list[str]:
    """Why a new AgentRun of `agent` under `policy` is refused, one message per field; empty if it is not.

    Only the budget: a run may lower its policy's per-run limits, never raise them, and no later change
    makes such a run valid. (`agent` is the run's Agent: part of the signature so the caller shows which
    objects the decision rests on.)
    """
    del agent  # the policy is already the agent's; nothing else of it decides a run's admission
    asked: RunBudget | None = run.spec.budget
    if asked is None or is_delegated(run):  # a delegated budget is a ceiling, clamped by the operator
        return []
    limits = policy.spec.budgets.per_run
    problems = []
    for attribute, wire in _BUDGET_FIELDS:
        mine, limit = getattr(asked, attribute), getattr(limits, attribute)
        if mine is not None and limit is not None and mine > limit:
            problems.append(
                f"spec.budget.{wire}: {mine} is above the policy {policy.metadata.name}'s per-run limit "
                f"{limit} (spec.budgets.perRun.{wire}); a run may only lower its policy's limits"
            )
    return problems


def check_agent_fields(agent: Agent, policy: AgentPolicy) -> list[str]:
    """Why `agent` may not be governed by `policy`: models not allowed, tools denied or not allowed."""
    problems = []
    allowed_models = policy.spec.models.allowed
    models = [("spec.model.name", agent.spec.model.name)] + [
        (f"spec.model.fallbacks[{i}].name", fallback.name)
        for i, fallback in enumerate(agent.spec.model.fallbacks)
    ]
    for where, model in models:
        if not matches(model, allowed_models):
            problems.append(
                f"{where}: model {model} is not allowed by the policy {policy.metadata.name} "
                f"(spec.models.allowed: {', '.join(allowed_models) or 'none'})"
            )
    tools = policy.spec.tools
    for i, tool in enumerate(agent.spec.tools):
        if matches(tool.name, tools.denied):
            problems.append(
                f"spec.tools[{i}].name: tool {tool.name} is denied by the policy {policy.metadata.name} "
                "(spec.tools.denied)"
            )
        elif not matches(tool.name, tools.allowed):
            problems.append(
                f"spec.tools[{i}].name: tool {tool.name} is not allowed by the policy "
                f"{policy.metadata.name} (spec.tools.allowed: {', '.join(tools.allowed) or 'none'})"
            )
    return problems


def changed_agent_problems(agent: Agent, old: Agent | None, policy: AgentPolicy) -> list[str]:
    """`check_agent_fields` of a new Agent, or of a changed one only the problems its old spec did not have
    (a policy made stricter later must not stop people from fixing an agent one field at a time)."""
    problems = check_agent_fields(agent, policy)
    if old is None or not problems:
        return problems
    before = set(check_agent_fields(old, policy))
    return [problem for problem in problems if problem not in before]


def refusal(kind: str, name: str, problems: Sequence[str]) -> str:
    """The one message the apiserver shows; `kubectl apply` prints it after `admission webhook ... denied`."""
    return f"{kind} {name} is refused: " + "; ".join(problems)


# ----- reading the objects the decisions rest on --------------------------------------------------------
def governing_policy(kube: Kube, agent: Agent) -> AgentPolicy | None:
    """The agent's policy, or None when it has none (yet): the operator's conditions report that."""
    namespace = agent.metadata.namespace or ""
    policies = [AgentPolicy.from_k8s(p) for p in kube.list(path_for(API_VERSION, "agentpolicies", namespace))]
    found = policy_for(agent, policies)
    return found if isinstance(found, AgentPolicy) else None


def run_problems(kube: Kube, body: dict[str, Any]) -> list[str]:
    """What `check_run` says about a new run, once its Agent and policy are read; nothing if either is
    missing (the run waits for them, which the operator reports)."""
    run = AgentRun.from_k8s(body)
    namespace = run.metadata.namespace or ""
    agent_body = kube.get_or_none(path_for(API_VERSION, "agents", namespace, run.spec.agent_ref.name))
    if agent_body is None:
        return []
    agent = Agent.from_k8s(agent_body)
    policy = governing_policy(kube, agent)
    return [] if policy is None else check_run(run, agent, policy)


def agent_problems(kube: Kube, body: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """What `check_agent_fields` says about a new or changed Agent. A change is refused only for problems
    it brings: one that leaves the spec alone (a label, an annotation) or fixes part of what a stricter
    policy now forbids goes through; the operator's Ready condition keeps reporting the rest."""
    if old is not None and old.get("spec") == body.get("spec"):
        return []
    agent = Agent.from_k8s(body)
    policy = governing_policy(kube, agent)
    if policy is None:
        return []
    return changed_agent_problems(agent, Agent.from_k8s(old) if old is not None else None, policy)


# ----- serving ------------------------------------------------------------------------------------------
def self_signed_certificate(hostnames: Collection[str], password: str | None = None) -> tuple[bytes, bytes]:
    """A certificate (PEM) for `hostnames` and its key, signed by itself; the apiserver trusts it through
    the caBundle kopf writes into the webhook configuration. Made with `cryptography` (a dependency
    already) instead of kopf's default `certbuilder`/`oscrypto`."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = [h for h in dict.fromkeys(hostnames) if h and h not in ("0.0.0.0", "::")]  # noqa: S104
    sans: list[x509.GeneralName] = []
    for host in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or ["agency-webhook"])[0][:64])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class WebhookServer(kopf.WebhookServer):
    """kopf's webhook server, with its self-signed certificate made by `self_signed_certificate`."""

    @staticmethod
    def build_certificate(hostnames: Collection[str], password: str | None = None) -> tuple[bytes, bytes]:
        return self_signed_certificate(hostnames, password)


def configure(kopf_settings: kopf.OperatorSettings, app: Settings) -> None:
    """Serve the webhook and let kopf manage its configuration, when `AGENCY_WEBHOOK_PORT` is set."""
    if not app.webhook_port:
        return
    kopf_settings.admission.server = WebhookServer(
        addr=app.webhook_addr, port=app.webhook_port, host=app.webhook_host or None
    )
    kopf_settings.admission.managed = CONFIGURATION_NAME


def _watched(app: Settings, namespace: str | None) -> bool:
    """Whether this operator answers for the namespace: the configuration is cluster-wide, its handlers
    only judge what this operator reconciles."""
    return not app.namespaces or (namespace or "") in app.namespaces


def _kube(memo: Any) -> Kube | None:
    ctx = getattr(memo, "ctx", None)
    kube: Kube | None = getattr(ctx, "kube", None)
    return kube


def _judge(
    memo: Any,
    app: Settings,
    namespace: str | None,
    kind: str,
    body: kopf.Body,
    check: Callable[[Kube], list[str]],
    logger: kopf.Logger,
) -> None:
    """Raise the refusal `check` finds; anything else (an object or API it cannot read, the operator not
    started yet) lets the request through, as the failurePolicy Ignore would: the conditions decide later.
    (kopf answers any other exception with a refusal, hence the catch-all.)"""
    if not _watched(app, namespace):
        return
    kube = _kube(memo)
    if kube is None:
        return
    try:
        problems = check(kube)
    except Exception as error:  # never refuse for the webhook's own trouble
        logger.warning(f"admission check skipped, the operator will decide: {type(error).__name__}: {error}")
        return
    if problems:
        meta = body.get("metadata") or {}
        name = meta.get("name") or meta.get("generateName") or ""
        raise kopf.AdmissionError(refusal(kind, name, problems), code=422)


def register(registry: kopf.OperatorRegistry, app: Settings) -> None:
    """The validating handlers; kopf only serves them when `configure` set a server."""
    if not app.webhook_port:
        return

    @kopf.on.validate(
        GROUP,
        VERSION,
        "agentruns",
        operations=["CREATE"],
        ignore_failures=True,
        id="agentrun-budget",
        registry=registry,
    )
    def validate_run(
        body: kopf.Body, namespace: str | None, memo: Any, logger: kopf.Logger, **_: Any
    ) -> None:
        _judge(memo, app, namespace, "AgentRun", body, lambda kube: run_problems(kube, dict(body)), logger)

    @kopf.on.validate(
        GROUP,
        VERSION,
        "agents",
        operations=["CREATE", "UPDATE"],
        ignore_failures=True,
        id="agent-policy",
        registry=registry,
    )
    def validate_agent(
        body: kopf.Body,
        namespace: str | None,
        memo: Any,
        logger: kopf.Logger,
        **kwargs: Any,
    ) -> None:
        old = kwargs.get("old")  # the stored Agent on UPDATE (kopf passes it; its typing omits it)
        before = dict(old) if old is not None else None
        _judge(
            memo, app, namespace, "Agent", body, lambda kube: agent_problems(kube, dict(body), before), logger
        )
