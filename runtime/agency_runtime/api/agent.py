"""The Agent kind: which model an agent uses, what it is told, and which tools it may call."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from agency_runtime.api.common import (
    AgentReference,
    LocalObjectReference,
    Risk,
    RunPhase,
    SecretKeyReference,
    StatusBase,
    Usage,
)
from agency_runtime.api.meta import (
    DNS_LABEL_PATTERN,
    ApiModel,
    CrdFacts,
    DnsLabel,
    JsonObject,
    PrinterColumn,
    Resource,
    k8s,
    rule,
    shape,
)

MAX_AGENT_NAME = 50
MAX_TEXT = 65536
TOOL_NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_-]*$"
SKILL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(  # the hex forms of RFC 4291 (the "::" shortenings spelled out: RE2 has no lookahead)
    (
        f"({_H}:){{7}}{_H}",
        f"({_H}:){{1,7}}:",
        f"({_H}:){{1,6}}:{_H}",
        *(f"({_H}:){{1,{n}}}(:{_H}){{1,{7 - n}}}" for n in range(5, 0, -1)),
        f":((:{_H}){{1,7}}|:)",
    )
)
#: Scheme, optional user info, a host name, IPv4 or bracketed IPv6 address, an optional port from 1 to
#: 65535, then anything without spaces: what the runtime's HTTP client and the NetworkPolicy builder parse.
URL_PATTERN = rf"^https?://([^\s/?#@\[\]]+@)?([^\s/?#@:\[\]]+|\[({_IPV6})\])(:{_PORT})?([/?#][^\s]*)?$"
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY_PATTERN = rf"^(\+)?{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"

ToolName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=TOOL_NAME_PATTERN,
        json_schema_extra=shape("must be letters, digits, '_' and '-', starting with a letter"),
    ),
]
Description = Annotated[str, Field(max_length=1024)]
Url = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2048,
        pattern=URL_PATTERN,
        json_schema_extra=shape(
            "must be an http:// or https:// URL without spaces, with any port from 1 to 65535 and any IPv6 "
            "address in brackets (http://[fd00::1]:8000)"
        ),
    ),
]
Quantity = (
    Annotated[int, Field(ge=0)]
    | Annotated[
        str,
        Field(
            max_length=64,
            pattern=QUANTITY_PATTERN,
            json_schema_extra=shape("must be a non-negative Kubernetes quantity such as 500m, 2 or 1Gi"),
        ),
    ]
)
FreeFormObject = Annotated[JsonObject, Field(json_schema_extra=k8s(preserve_unknown_fields=True))]


class ModelParameters(ApiModel):
    """Sampling settings passed to the model on every call; unset ones use the provider's defaults."""

    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    """Sampling temperature between 0 and 2; lower is more deterministic."""

    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    """Nucleus sampling: consider only the most likely tokens whose probabilities add up to this (0 to 1)."""

    max_output_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """Most tokens the model may return in one reply."""

    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    """A seed for providers that support reproducible sampling."""

    reasoning_effort: Literal["low", "medium", "high"] | None = None
    """How hard reasoning models should think: low, medium or high. Ignored by other models."""

    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 120
    """How long one model call may take before it is retried or a fallback is tried. Defaults to 120."""


class FallbackModel(ApiModel):
    """A model tried, in order, when the primary model fails or is rate limited."""

    name: Annotated[str, Field(min_length=1, max_length=256)]
    """The litellm model id, for example `openai/gpt-4o-mini`."""

    api_base: Url | None = None
    """Base URL of the model's API when it is not the provider's public endpoint."""

    credentials_secret_ref: SecretKeyReference | None = None
    """The Secret key holding this model's API key. Unset means the primary model's credentials are used."""


class ModelPricing(ApiModel):
    """What the model costs, for models litellm has no price for (self-hosted, new or private ones)."""

    input_per_million_tokens_usd: Annotated[float, Field(ge=0, le=10_000)] = Field(
        alias="inputPerMillionTokensUSD"
    )
    """US dollars per million input (prompt) tokens."""

    output_per_million_tokens_usd: Annotated[float, Field(ge=0, le=10_000)] = Field(
        alias="outputPerMillionTokensUSD"
    )
    """US dollars per million output (completion) tokens."""


class ModelSpec(ApiModel):
    """The language model an agent thinks with, named as litellm names it."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "!has(self.fallbacks) || self.fallbacks.all(f, f.name != self.name)",
                "must not repeat the primary model, spec.model.name",
                field_path=".fallbacks",
            )
        )
    )

    name: Annotated[str, Field(min_length=1, max_length=256)]
    """The litellm model id, for example `anthropic/claude-sonnet-4-5` or `ollama/llama3.1`.

    The AgentPolicy must allow it (spec.models.allowed)."""

    api_base: Url | None = None
    """Base URL of the model's API when it is not the provider's public endpoint, such as a vLLM server."""

    credentials_secret_ref: SecretKeyReference | None = None
    """The Secret key holding the provider API key; its value is passed to litellm as `api_key`.

    Unset means the provider needs no key or the runtime's environment supplies it."""

    parameters: ModelParameters = Field(default_factory=ModelParameters)
    """Sampling settings for every call."""

    pricing: ModelPricing | None = None
    """The price the runtime uses to count cost against budgets. Unset means litellm's price list for
    this model id, and zero cost for a model litellm does not know."""

    fallbacks: Annotated[
        list[FallbackModel], Field(max_length=4, json_schema_extra=k8s(list_map_keys=("name",)))
    ] = Field(default_factory=list)
    """Models to try in order when the primary one fails; each name once."""


class BuiltinTool(StrEnum):
    """The tools the runtime ships."""

    KUBERNETES = "kubernetes"
    HTTP = "http"
    PUBLISH_SIGNAL = "publish_signal"
    DELEGATE = "delegate"
    MEMORY = "memory"
    REQUEST_APPROVAL = "request_approval"
    FIND_AGENTS = "find_agents"


class HttpMethod(StrEnum):
    """HTTP methods an HTTP tool may use."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class HeaderSource(ApiModel):
    """Where a header value comes from when it is a secret."""

    secret_key_ref: SecretKeyReference
    """The Secret key whose value is sent as the header value."""


class HttpHeader(ApiModel):
    """One header sent with every call of an HTTP tool."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "has(self.value) != has(self.valueFrom)",
                "each HTTP header sets exactly one of value or valueFrom",
            )
        )
    )

    name: Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME_PATTERN)]
    """The header name, for example `Authorization`."""

    value: Annotated[str, Field(max_length=4096)] | None = None
    """A literal value. Use valueFrom for anything secret."""

    value_from: HeaderSource | None = None
    """Take the value from a Secret."""


class HttpTool(ApiModel):
    """A tool that calls one HTTP endpoint with the arguments the model chose."""

    url: Url
    """The endpoint, http:// or https://. The policy's network rules must allow its host."""

    method: HttpMethod = HttpMethod.GET
    """GET sends the arguments as query parameters, other methods as a JSON body. Defaults to GET."""

    headers: Annotated[
        list[HttpHeader], Field(max_length=16, json_schema_extra=k8s(list_map_keys=("name",)))
    ] = Field(default_factory=list)
    """Headers sent with every call, each name once."""

    input_schema: FreeFormObject | None = None
    """JSON Schema of the arguments the model passes. Unset means the tool takes no arguments."""

    timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 30
    """How long one call may take. Defaults to 30."""


class Tool(ApiModel):
    """A tool the agent may call: a built-in one, an HTTP endpoint, or another agent."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "[has(self.builtin), has(self.http), has(self.agentRef)].filter(x, x).size() == 1",
                "each tool sets exactly one of builtin, http or agentRef",
            ),
            rule(
                "!has(self.settings) || has(self.builtin)",
                "settings apply only to built-in tools; HTTP and agent tools are configured in http or "
                "agentRef",
                field_path=".settings",
            ),
            rule(
                "!has(self.http) || has(self.description)",
                "an HTTP tool needs a description: it is how the model learns what the tool does",
                field_path=".description",
            ),
        )
    )

    name: ToolName
    """The name the model calls the tool by: letters, digits, `_` and `-`, at most 64 characters."""

    description: Description | None = None
    """What the tool does, for the model. Built-in and agent tools have a default description."""

    builtin: BuiltinTool | None = None
    """Which built-in tool this is."""

    settings: Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=32)] | None = None
    """Settings of a built-in tool, as strings (for example `namespace: cold-chain` for kubernetes)."""

    http: HttpTool | None = None
    """Call an HTTP endpoint."""

    agent_ref: AgentReference | None = None
    """Ask another Agent in this namespace: each call starts a child AgentRun with the arguments as input."""

    risk: Risk | None = None
    """The harm a call can do: read-only, idempotent or destructive. The policy may override it.

    Unset: built-in tools declare their own; HTTP GET is read-only, PUT idempotent and every other method
    destructive; agent tools are idempotent because the called agent is governed by its own policy."""


class MemoryScope(StrEnum):
    """How long what an agent remembers lives."""

    DISABLED = "Disabled"
    RUN = "Run"
    AGENT = "Agent"


class MemorySpec(ApiModel):
    """What the agent's memory tool keeps and for how long."""

    scope: MemoryScope = MemoryScope.RUN
    """Disabled: no memory tool. Run: notes last for one run. Agent: notes carry over between runs.
    Defaults to Run."""

    max_entries: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Most notes kept; the oldest are dropped first. Defaults to 100."""


class ResourceList(ApiModel):
    """Compute resources, as Kubernetes quantities (for example `500m` or `1Gi`)."""

    cpu: Quantity | None = None
    """CPU, for example `250m` or `1`."""

    memory: Quantity | None = None
    """Memory, for example `256Mi`."""


def _request_within_limit(resource: str) -> JsonObject:
    """The Pod API refuses a request above its limit, so an Agent asking for one could never run."""
    request, limit = f"string(self.requests.{resource})", f"string(self.limits.{resource})"
    return rule(
        f"!has(self.requests) || !has(self.limits) || !has(self.requests.{resource})"
        f" || !has(self.limits.{resource}) || !isQuantity({request}) || !isQuantity({limit})"
        f" || !quantity({request}).isGreaterThan(quantity({limit}))",
        f"must not exceed limits.{resource}: a container cannot request more than its limit",
        field_path=f".requests.{resource}",
    )


class ResourceRequirements(ApiModel):
    """Requests and limits of the container that runs the agent."""

    model_config = ConfigDict(
        json_schema_extra=k8s(_request_within_limit("cpu"), _request_within_limit("memory"))
    )

    requests: ResourceList | None = None
    """What the scheduler reserves."""

    limits: ResourceList | None = None
    """The most the container may use."""


class RuntimeOverrides(ApiModel):
    """Changes to how the agent's runs are executed; unset fields use the operator's defaults."""

    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """Container image of the runtime, for an agent that needs extra packages."""

    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When to pull the image: Always, IfNotPresent or Never."""

    resources: ResourceRequirements | None = None
    """CPU and memory of the run's container."""


class Skill(ApiModel):
    """Something the agent is good at, so other agents can find and ask it (find_agents)."""

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            pattern=SKILL_NAME_PATTERN,
            json_schema_extra=shape("must be lowercase letters, digits, '-', '_' and '.'"),
        ),
    ]
    """A short id, lowercase, for example `route-planning`."""

    description: Annotated[str, Field(min_length=1, max_length=1024)]
    """What the skill does, in a sentence other agents (and people) can act on."""

    input_schema: FreeFormObject | None = None
    """JSON Schema of the input the skill expects, when it is structured."""


MAX_RUBRIC = 8192


class JudgeModel(ApiModel):
    """The model that judges runs, named as litellm names it."""

    name: Annotated[str, Field(min_length=1, max_length=256)]
    """The litellm model id, for example `openai/gpt-4o-mini`. The AgentPolicy must allow it."""

    api_base: Url | None = None
    """Base URL of the judge's API when it is not the provider's public endpoint."""

    credentials_secret_ref: SecretKeyReference | None = None
    """The Secret key holding the judge's API key. Unset means the agent's own model credentials."""


class JudgeSpec(ApiModel):
    """An LLM-as-a-judge that scores each finished run against a rubric (the score lands in status.judge)."""

    model: JudgeModel
    """The judging model; its calls count against the run's budget."""

    rubric: Annotated[str, Field(min_length=1, max_length=MAX_RUBRIC)] | None = None
    """What a good outcome is, in words, at most 8 KiB. Unset means: the task was done correctly, safely
    and without unnecessary steps."""


class Guardrail(ApiModel):
    """A health check the runtime (never the model) makes after each call that changed something."""

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            pattern=SKILL_NAME_PATTERN,
            json_schema_extra=shape("must be lowercase letters, digits, '-', '_' and '.'"),
        ),
    ]
    """A short id, named in the run's result when the check fails."""

    url: Url
    """Answers 2xx while all is well; anything else (or no answer) fails the check and rolls the run's
    changes back. The policy's network rules must allow its host."""

    tools: Annotated[list[ToolName], Field(max_length=64, json_schema_extra=k8s(list_set=True))] | None = None
    """The tools whose calls are checked. Unset means every tool call that acted and was not read-only."""


class AgentSpec(ApiModel):
    """The desired agent: its model, instructions, tools and limits."""

    description: Description | None = None
    """What the agent is for, in a sentence; shown to other agents by find_agents."""

    model: ModelSpec
    """The language model the agent uses."""

    instructions: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    """The system prompt: the agent's role, goals and rules, at most 64 KiB."""

    tools: Annotated[list[Tool], Field(max_length=64, json_schema_extra=k8s(list_map_keys=("name",)))] = (
        Field(default_factory=list)
    )
    """Tools the agent may call, each name once. The policy decides which of them may run and how freely."""

    skills: Annotated[list[Skill], Field(max_length=32, json_schema_extra=k8s(list_map_keys=("name",)))] = (
        Field(default_factory=list)
    )
    """What the agent offers to other agents."""

    memory: MemorySpec = Field(default_factory=MemorySpec)
    """What the agent remembers and for how long."""

    policy_ref: LocalObjectReference | None = None
    """The AgentPolicy that governs this agent; its agentSelector must match this agent.

    Unset means the one AgentPolicy in this namespace whose agentSelector matches this agent. Without a
    policy the agent does not run."""

    runtime: RuntimeOverrides | None = None
    """Image and resource overrides for this agent's runs."""

    judge: JudgeSpec | None = None
    """Score every finished run with a judge model against a rubric; unset means no judging."""

    guardrails: Annotated[
        list[Guardrail], Field(max_length=16, json_schema_extra=k8s(list_map_keys=("name",)))
    ] = Field(default_factory=list)
    """Checks made after tool calls that changed something; a failed one rolls the run's changes back."""


class LastRun(ApiModel):
    """The most recent run of an agent."""

    name: DnsLabel
    """Name of the AgentRun."""

    phase: RunPhase | None = None
    """Its phase when last seen."""

    start_time: datetime | None = None
    """When it started."""

    completion_time: datetime | None = None
    """When it finished, if it has."""


class DailyUsage(Usage):
    """Usage of one agent on one day (UTC)."""

    date: Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", max_length=10)]
    """The day counted, as YYYY-MM-DD in UTC."""

    runs: Annotated[int, Field(ge=0)] = 0
    """Runs started that day."""


class AgentStatus(StatusBase):
    """What the operator last saw of the agent."""

    bound_policy_ref: LocalObjectReference | None = None
    """The AgentPolicy this agent is governed by."""

    runs_in_flight: Annotated[int, Field(ge=0)] = 0
    """Runs of this agent that have not finished."""

    usage_today: DailyUsage | None = None
    """What the agent used today, counted against the policy's daily budget."""

    last_run: LastRun | None = None
    """The most recently started run."""

    skills: Annotated[
        list[Annotated[str, Field(max_length=63)]], Field(max_length=32, json_schema_extra=k8s(list_set=True))
    ] = Field(default_factory=list)
    """The skills the agent advertises now: those of spec.skills while the agent is Ready (its runs can
    start), none otherwise. Its agent card lists them with their descriptions."""


_READY = '.status.conditions[?(@.type=="Ready")].status'


class Agent(Resource):
    """An AI agent: a model, instructions and tools, run as governed Kubernetes workloads by AgentRuns."""

    kind: Literal["Agent"] = "Agent"
    spec: AgentSpec
    """What the agent is and may do: its model, instructions, tools, skills, memory and governing policy."""
    status: AgentStatus = Field(default_factory=AgentStatus)
    """What the operator last saw; written by the operator."""

    crd: ClassVar[CrdFacts] = CrdFacts(
        plural="agents",
        max_name_length=MAX_AGENT_NAME,
        name_pattern=DNS_LABEL_PATTERN,
        short_names=("ag",),
        columns=(
            PrinterColumn("Model", "string", ".spec.model.name", "The language model"),
            PrinterColumn("Policy", "string", ".status.boundPolicyRef.name", "The governing AgentPolicy"),
            PrinterColumn("Ready", "string", _READY, "Whether the agent can run"),
            PrinterColumn("Running", "integer", ".status.runsInFlight", "Runs not finished yet"),
            PrinterColumn(
                "Tokens-Today", "integer", ".status.usageToday.totalTokens", "Tokens used today", 1
            ),
            PrinterColumn("Cost-Today", "number", ".status.usageToday.costUSD", "US dollars spent today", 1),
            PrinterColumn("Last-Run", "string", ".status.lastRun.name", "The most recent run", 1),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp", "When the agent was created"),
        ),
        root_rules=(
            rule(
                "!has(self.spec.tools) || self.spec.tools.all(t, !has(t.agentRef)"
                " || t.agentRef.name != self.metadata.name)",
                "an Agent cannot call itself as a tool",
                field_path=".spec.tools",
            ),
        ),
    )
