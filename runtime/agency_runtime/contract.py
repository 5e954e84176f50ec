"""The environment contract between the operator and the runtime.

The operator starts one runtime process per AgentRun — in a Pod (executor `pod`) or as a local
process (executor `local`) — and both get exactly the same environment, built by `RunEnv.to_env()`.
The runtime reads it back with `RunEnv.from_env()`. Nothing else passes between them at start:

- identity and endpoints: which run, the API server, the CA and the bound token file;
- the run file (`AGENCY_RUN_FILE`): JSON with the resolved Agent spec, the governing policy's
  spec, the run's input and trigger (see `RunFile`), written by the operator, never holding secrets;
- the budget the runtime must enforce (already the minimum of policy and run);
- model credentials come only as `AGENCY_MODEL_API_KEY`, a fallback's own as
  `AGENCY_MODEL_FALLBACK_<i>_API_KEY` and the judge's as `AGENCY_JUDGE_API_KEY`, each from the Secret key
  its model names (a `secretKeyRef` in the Pod), so no provider ever receives another provider's key;
- OpenTelemetry: the standard `OTEL_*` variables and `TRACEPARENT`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

PREFIX = "AGENCY_"
MODEL_API_KEY = "AGENCY_MODEL_API_KEY"
JUDGE_API_KEY = "AGENCY_JUDGE_API_KEY"
"""The judge model's key, from `spec.judge.model.credentialsSecretRef`, when the Agent's judge has one."""


def fallback_api_key(index: int) -> str:
    """The variable of fallback `index`'s key, from `spec.model.fallbacks[index].credentialsSecretRef`."""
    return f"AGENCY_MODEL_FALLBACK_{index}_API_KEY"


def fallback_api_keys(fallbacks_with_own_key: Sequence[bool], environ: Mapping[str, str]) -> list[str | None]:
    """Each fallback's key: its own variable when it names a Secret key, else the primary model's."""
    primary = environ.get(MODEL_API_KEY) or None
    return [
        (environ.get(fallback_api_key(i)) or None) if own else primary
        for i, own in enumerate(fallbacks_with_own_key)
    ]


class ContractError(ValueError):
    """The environment does not describe a run; the message names the variable."""


@dataclass(frozen=True)
class Budget:
    """Limits for one run. `None` means unlimited on that axis."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_steps: int | None = None
    max_wall_seconds: int | None = None

    def tighten(self, other: Budget) -> Budget:
        """The stricter of two budgets on every axis (a run may only lower its policy's budget)."""

        def low(a: float | None, b: float | None) -> float | None:
            if a is None:
                return b
            if b is None:
                return a
            return min(a, b)

        tokens, steps, wall = (
            low(self.max_tokens, other.max_tokens),
            low(self.max_steps, other.max_steps),
            low(self.max_wall_seconds, other.max_wall_seconds),
        )
        return Budget(
            max_tokens=None if tokens is None else int(tokens),
            max_cost_usd=low(self.max_cost_usd, other.max_cost_usd),
            max_steps=None if steps is None else int(steps),
            max_wall_seconds=None if wall is None else int(wall),
        )

    def to_env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f"{PREFIX}BUDGET_{f.name.upper()}"] = (
                    repr(value) if isinstance(value, float) else str(value)
                )
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Budget:
        values: dict[str, int | float | None] = {}
        for f in fields(cls):
            name = f"{PREFIX}BUDGET_{f.name.upper()}"
            raw = env.get(name)
            if raw is None or raw == "":
                values[f.name] = None
                continue
            try:
                number: int | float = float(raw) if f.name == "max_cost_usd" else int(raw)
            except ValueError:
                raise ContractError(f"{name}={raw!r} is not a number") from None
            if not math.isfinite(number) or number <= 0:
                raise ContractError(f"{name}={raw!r} must be a positive number")
            values[f.name] = number
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunEnv:
    """Everything the runtime process is told through its environment."""

    run_name: str
    namespace: str
    run_uid: str
    agent_name: str
    run_file: Path
    api_server: str
    ca_file: Path | None = None
    token_file: Path | None = None
    journal: str = "kubernetes"
    budget: Budget = field(default_factory=Budget)
    otlp_endpoint: str | None = None
    traceparent: str | None = None

    def to_env(self) -> dict[str, str]:
        """The variables to set on the process (credentials and OTEL_* extras are added by the caller)."""
        env = {
            f"{PREFIX}RUN_NAME": self.run_name,
            f"{PREFIX}RUN_NAMESPACE": self.namespace,
            f"{PREFIX}RUN_UID": self.run_uid,
            f"{PREFIX}AGENT_NAME": self.agent_name,
            f"{PREFIX}RUN_FILE": str(self.run_file),
            f"{PREFIX}KUBE_API": self.api_server,
            f"{PREFIX}JOURNAL": self.journal,
            "OTEL_SERVICE_NAME": "agency-runtime",
            "OTEL_RESOURCE_ATTRIBUTES": ",".join(
                [
                    f"agency.agent={self.agent_name}",
                    f"agency.run={self.run_name}",
                    f"k8s.namespace.name={self.namespace}",
                ]
            ),
            # litellm otherwise fetches a price list from the internet at import time.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        if self.ca_file:
            env[f"{PREFIX}KUBE_CA_FILE"] = str(self.ca_file)
        if self.token_file:
            env[f"{PREFIX}KUBE_TOKEN_FILE"] = str(self.token_file)
        if self.otlp_endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.otlp_endpoint
        if self.traceparent:
            env["TRACEPARENT"] = self.traceparent
        env.update(self.budget.to_env())
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunEnv:
        def need(name: str) -> str:
            value = env.get(f"{PREFIX}{name}", "")
            if not value:
                raise ContractError(
                    f"{PREFIX}{name} is not set: the runtime is started by the operator "
                    "(or `agency run` for a local run)"
                )
            return value

        def maybe_path(name: str) -> Path | None:
            value = env.get(f"{PREFIX}{name}")
            return Path(value) if value else None

        return cls(
            run_name=need("RUN_NAME"),
            namespace=need("RUN_NAMESPACE"),
            run_uid=need("RUN_UID"),
            agent_name=need("AGENT_NAME"),
            run_file=Path(need("RUN_FILE")),
            api_server=need("KUBE_API"),
            ca_file=maybe_path("KUBE_CA_FILE"),
            token_file=maybe_path("KUBE_TOKEN_FILE"),
            journal=env.get(f"{PREFIX}JOURNAL") or "kubernetes",
            budget=Budget.from_env(env),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            traceparent=env.get("TRACEPARENT") or None,
        )
