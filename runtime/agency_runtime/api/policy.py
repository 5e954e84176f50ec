"""The AgentPolicy kind: what the agents it governs may use, how freely they may act, and their budgets."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from agency_runtime.api.common import DailyBudget, PolicyRunBudget, Risk, StatusBase
from agency_runtime.api.meta import (
    DNS_SUBDOMAIN_PATTERN,
    DNS_SUBDOMAIN_SHAPE,
    ApiModel,
    CrdFacts,
    DnsLabel,
    DnsSubdomain,
    PrinterColumn,
    Resource,
    k8s,
    rule,
    shape,
)

TOOL_PATTERN = r"^[a-zA-Z0-9_*-]+$"
HOST_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
LABEL_KEY_PATTERN = rf"^{_PREFIX}[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"

ToolPattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=TOOL_PATTERN,
        json_schema_extra=shape("must be a tool name (letters, digits, '_' and '-'), optionally with '*'"),
    ),
]
LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


class Autonomy(StrEnum):
    """How freely an agent may make a tool call, from least to most."""

    NOTIFY = "notify"
    PROPOSE = "propose"
    ACT = "act"


class Rollback(StrEnum):
    """Whether acting needs a way back."""

    REQUIRED = "Required"
    NOT_REQUIRED = "NotRequired"


class AutonomySetting(ApiModel):
    """How freely calls of a kind may be made."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "!has(self.rollback) || self.level == 'act'",
                "rollback applies only when level is act: set level to act or remove rollback",
                field_path=".rollback",
            )
        )
    )

    level: Autonomy
    """notify: the call is not made, approvers are told what the agent wanted to do.
    propose: the call waits in the run's status.pendingApprovals until an approver decides.
    act: the call is made at once."""

    rollback: Rollback | None = None
    """With level act: Required means the call is made only if the tool can undo it (it records how), and
    is proposed otherwise. Unset means NotRequired."""


class RiskAutonomy(ApiModel):
    """The autonomy for each risk class; a tool rule can override it for one tool."""

    read_only: AutonomySetting = Field(
        default_factory=lambda: AutonomySetting(level=Autonomy.ACT),
        json_schema_extra={"default": {"level": "act"}},
    )
    """For read-only tools. Defaults to act."""

    idempotent: AutonomySetting = Field(
        default_factory=lambda: AutonomySetting(level=Autonomy.PROPOSE),
        json_schema_extra={"default": {"level": "propose"}},
    )
    """For idempotent tools (repeating a call changes nothing more). Defaults to propose."""

    destructive: AutonomySetting = Field(
        default_factory=lambda: AutonomySetting(level=Autonomy.PROPOSE),
        json_schema_extra={"default": {"level": "propose"}},
    )
    """For destructive tools (a call changes the world in ways that may not be undone). Defaults to
    propose."""


class ToolRule(ApiModel):
    """Policy for one tool by name: its risk class and autonomy, overriding what the Agent declares."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule("has(self.risk) || has(self.autonomy)", "a tool rule sets risk, autonomy or both")
        )
    )

    name: ToolPattern
    """The tool's name as the Agent declares it."""

    risk: Risk | None = None
    """The risk class this policy assigns the tool: read-only, idempotent or destructive."""

    autonomy: AutonomySetting | None = None
    """The autonomy for this tool. Unset means the autonomy of its risk class."""


class ToolPolicy(ApiModel):
    """Which tools agents may call, and per-tool rules."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "!has(self.allowed) || !has(self.denied) || !self.allowed.exists(t, t in self.denied)",
                "a tool cannot be both allowed and denied; remove it from one of the lists",
            )
        )
    )

    allowed: Annotated[list[ToolPattern], Field(max_length=64, json_schema_extra=k8s(list_set=True))] = Field(
        default_factory=lambda: ["*"], json_schema_extra={"default": ["*"]}
    )
    """Tool names agents may call; `*` matches any run of characters. Defaults to every tool (`*`)."""

    denied: Annotated[list[ToolPattern], Field(max_length=64, json_schema_extra=k8s(list_set=True))] = Field(
        default_factory=list
    )
    """Tool names agents may never call, even when allowed matches them; `*` matches any run of characters."""

    rules: Annotated[list[ToolRule], Field(max_length=64, json_schema_extra=k8s(list_map_keys=("name",)))] = (
        Field(default_factory=list)
    )
    """Risk class and autonomy for individual tools, one rule per tool name."""


class ModelPolicy(ApiModel):
    """Which language models agents may use."""

    allowed: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]],
        Field(max_length=64, json_schema_extra=k8s(list_set=True)),
    ] = Field(default_factory=lambda: ["*"], json_schema_extra={"default": ["*"]})
    """litellm model ids agents may use (primary and fallbacks); `*` matches any run of characters, so
    `anthropic/*` allows every Anthropic model. Defaults to every model (`*`)."""


class Approver(ApiModel):
    """Someone whose decision on a proposed tool call counts."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "self.kind == 'ServiceAccount' ? has(self.namespace) : !has(self.namespace)",
                "namespace is required for a ServiceAccount approver and not allowed for a User or Group",
                field_path=".namespace",
            ),
            rule(
                f"self.kind != 'ServiceAccount' || self.name.matches(r'{DNS_SUBDOMAIN_PATTERN}')",
                f"a ServiceAccount's name {DNS_SUBDOMAIN_SHAPE}",
                field_path=".name",
            ),
        )
    )

    kind: Literal["User", "Group", "ServiceAccount"]
    """User, Group or ServiceAccount, as in RBAC subjects."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The user name, group name or ServiceAccount name."""

    namespace: DnsLabel | None = None
    """The ServiceAccount's namespace (ServiceAccounts only)."""


class ApprovalPolicy(ApiModel):
    """Who decides on proposed tool calls and how long proposals wait."""

    approvers: Annotated[list[Approver], Field(max_length=32)] = Field(default_factory=list)
    """Who may approve or reject proposals. Without approvers, proposals can only expire."""

    timeout_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 86400
    """How long a proposal waits for a decision before it counts as rejected. Defaults to 86400 (a day)."""


class ClusterRoleGrant(ApiModel):
    """A ClusterRole a run's ServiceAccount is bound to, and where."""

    name: DnsSubdomain
    """Name of the ClusterRole."""

    namespaces: Annotated[list[DnsLabel], Field(max_length=32, json_schema_extra=k8s(list_set=True))] = Field(
        default_factory=list
    )
    """Namespaces in which it is bound (with a RoleBinding). Empty means the run's own namespace."""


class Identity(ApiModel):
    """The Kubernetes identity each run gets: a ServiceAccount of its own with these permissions."""

    cluster_roles: Annotated[
        list[ClusterRoleGrant], Field(max_length=16, json_schema_extra=k8s(list_map_keys=("name",)))
    ] = Field(default_factory=list)
    """ClusterRoles a run may be bound to. Empty means the run gets no Kubernetes permissions."""

    token_audience: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """Audience of the run's bound token. Unset means the API server's default audience."""

    token_expiration_seconds: Annotated[int, Field(ge=600, le=86400)] = 3600
    """Lifetime of the run's bound token, 600 to 86400 seconds. Defaults to 3600."""


class Port(ApiModel):
    """A destination port."""

    port: Annotated[int, Field(ge=1, le=65535)]
    """The port number."""

    protocol: Literal["TCP", "UDP"] = "TCP"
    """TCP or UDP. Defaults to TCP."""


class EgressRule(ApiModel):
    """Destinations runs may reach."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "(has(self.hosts) && size(self.hosts) > 0) || (has(self.cidrs) && size(self.cidrs) > 0)",
                "each egress rule names at least one host or CIDR",
            )
        )
    )

    hosts: Annotated[
        list[
            Annotated[
                str,
                Field(
                    min_length=1,
                    max_length=253,
                    pattern=HOST_PATTERN,
                    json_schema_extra=shape("must be a lowercase host name, optionally starting with '*.'"),
                ),
            ]
        ],
        Field(max_length=32, json_schema_extra=k8s(list_set=True)),
    ] = Field(default_factory=list)
    """Host names the http tools may call; `*.example.com` matches subdomains. Checked by the runtime."""

    cidrs: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]],
        Field(
            max_length=32,
            json_schema_extra=k8s(
                rule(
                    "self.all(c, isCIDR(c))",
                    "each entry of cidrs must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32",
                ),
                list_set=True,
            ),
        ),
    ] = Field(default_factory=list)
    """Address ranges runs may connect to, such as `10.20.0.0/16`. Enforced by a NetworkPolicy."""

    ports: Annotated[list[Port], Field(min_length=1, max_length=16)]
    """Ports this rule allows."""


class NetworkPolicySpec(ApiModel):
    """Network access of runs. The operator always allows cluster DNS and the Kubernetes API besides."""

    egress: Annotated[list[EgressRule], Field(max_length=32)] = Field(default_factory=list)
    """Allowed outbound destinations. Empty means none beyond DNS, the Kubernetes API and the model."""


class Budgets(ApiModel):
    """Spending limits."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            *(
                rule(
                    f"!has(self.perRun) || !has(self.perAgentDaily) || !has(self.perRun.{field})"
                    f" || !has(self.perAgentDaily.{field})"
                    f" || self.perRun.{field} <= self.perAgentDaily.{field}",
                    f"must not exceed spec.budgets.perAgentDaily.{field}: "
                    "one run cannot be allowed more than the agent's whole day",
                    field_path=f".perRun.{field}",
                )
                for field in ("maxTokens", "maxCostUSD")
            )
        )
    )

    per_run: PolicyRunBudget = Field(default_factory=PolicyRunBudget, json_schema_extra={"default": {}})
    """Limits on each run. An AgentRun may ask for lower limits, never higher."""

    per_agent_daily: DailyBudget | None = None
    """Limits on each agent per day (UTC), over the runs of the agent started that day. A run's usage
    includes what the runs it delegated to used, so delegated work counts against the delegating agent's
    day as well as against the delegate's own."""


class ContentCapture(StrEnum):
    """Whether traces record what was said."""

    DISABLED = "Disabled"
    ENABLED = "Enabled"


class TracingPolicy(ApiModel):
    """What the runs' traces record."""

    content_capture: ContentCapture = ContentCapture.DISABLED
    """Enabled records prompts, completions and tool arguments in traces; Disabled records only timings,
    token counts and names. Defaults to Disabled."""


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement, as in Kubernetes label selectors."""

    key: LabelKey
    """The label key."""

    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """In, NotIn, Exists or DoesNotExist."""

    values: Annotated[list[LabelValue], Field(max_length=64)] = Field(default_factory=list)
    """Values for In and NotIn; empty for Exists and DoesNotExist."""


class LabelSelector(ApiModel):
    """Selects objects by their labels; an empty selector selects everything."""

    match_labels: Annotated[dict[str, LabelValue], Field(max_length=32)] = Field(default_factory=dict)
    """Labels an object must have, with these values."""

    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] = Field(
        default_factory=list
    )
    """Further requirements, all of which must hold."""


class AgentPolicySpec(ApiModel):
    """Governance for the agents this policy applies to."""

    agent_selector: LabelSelector = Field(default_factory=LabelSelector)
    """Which Agents in this namespace this policy applies to. Empty (the default) means all of them."""

    models: ModelPolicy = Field(default_factory=ModelPolicy)
    """Which language models the agents may use."""

    tools: ToolPolicy = Field(default_factory=ToolPolicy)
    """Which tools the agents may call, and per-tool risk and autonomy."""

    autonomy: RiskAutonomy = Field(default_factory=RiskAutonomy, json_schema_extra={"default": {}})
    """How freely tools of each risk class may be called."""

    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    """Who approves proposed tool calls."""

    identity: Identity = Field(default_factory=Identity)
    """The Kubernetes permissions each run gets."""

    network: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)
    """Where runs may connect."""

    budgets: Budgets = Field(default_factory=Budgets, json_schema_extra={"default": {}})
    """Limits per run and per agent per day."""

    tracing: TracingPolicy = Field(default_factory=TracingPolicy)
    """What traces record."""

    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=365 * 24 * 3600)] = 604800
    """How long finished AgentRuns are kept before they are deleted. Defaults to 604800 (a week)."""


class AgentPolicyStatus(StatusBase):
    """What the operator last saw of the policy."""

    agents: Annotated[int, Field(ge=0)] = 0
    """How many Agents are bound to this policy."""


class AgentPolicy(Resource):
    """Governance for agents: models, tools, autonomy, approvers, identity, network and budgets."""

    kind: Literal["AgentPolicy"] = "AgentPolicy"
    spec: AgentPolicySpec = Field(default_factory=AgentPolicySpec)
    """The rules for the agents this policy applies to: models, tools, autonomy, approvers, identity,
    network, budgets and tracing."""
    status: AgentPolicyStatus = Field(default_factory=AgentPolicyStatus)
    """What the operator last saw; written by the operator."""

    crd: ClassVar[CrdFacts] = CrdFacts(
        plural="agentpolicies",
        short_names=("agpol",),
        columns=(
            PrinterColumn("Agents", "integer", ".status.agents", "Agents bound to this policy"),
            PrinterColumn(
                "Destructive", "string", ".spec.autonomy.destructive.level", "Autonomy for destructive tools"
            ),
            PrinterColumn(
                "Run-Tokens", "integer", ".spec.budgets.perRun.maxTokens", "Token limit per run", 1
            ),
            PrinterColumn("Run-Cost", "number", ".spec.budgets.perRun.maxCostUSD", "USD limit per run", 1),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp", "When the policy was created"),
        ),
        max_name_length=63,
    )
