"""The base of every agency.dev model: one pydantic configuration, object metadata and schema helpers.

The CRDs are generated from these models, so the helpers here are how a model states what only a
Kubernetes schema can say (CEL rules, list types, defaults the API server applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

import agency_runtime

GROUP = "agency.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

PATTERN_MESSAGE = "x-agency-pattern-message"


def shape(message: str) -> dict[str, str]:
    """Say in words what a field's `pattern` means; the CRD then checks it with a CEL rule carrying the
    message, so users read "must be a DNS label" instead of a regular expression."""
    return {PATTERN_MESSAGE: message}


DNS_LABEL_SHAPE = "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
DNS_SUBDOMAIN_SHAPE = (
    "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
)

DnsLabel = Annotated[
    str,
    Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN, json_schema_extra=shape(DNS_LABEL_SHAPE)),
]
DnsSubdomain = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        json_schema_extra=shape(DNS_SUBDOMAIN_SHAPE),
    ),
]

JsonObject = dict[str, Any]


class ApiModel(BaseModel):
    """Base of every spec and status type: camelCase on the wire, unknown fields refused.

    Field docs are attribute docstrings; they become the CRD descriptions that `kubectl explain` shows,
    so they are written for the people who write the YAML.
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        use_attribute_docstrings=agency_runtime.FIELD_DOCS,
        use_enum_values=False,
    )

    def to_k8s(self) -> JsonObject:
        """The object as the API server stores it: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def rule(
    expression: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> JsonObject:
    """One `x-kubernetes-validations` entry: a CEL rule and the message the user sees when it fails."""
    entry: JsonObject = {"rule": expression, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def k8s(
    *rules: JsonObject,
    list_map_keys: tuple[str, ...] = (),
    list_set: bool = False,
    default: Any = None,
    preserve_unknown_fields: bool = False,
) -> JsonObject:
    """Schema extras for a field or model that only Kubernetes understands.

    Pass the result as `json_schema_extra`; the CRD generator copies the keys into the schema.
    """
    extra: JsonObject = {}
    if rules:
        extra["x-kubernetes-validations"] = list(rules)
    if list_map_keys:
        extra["x-kubernetes-list-type"] = "map"
        extra["x-kubernetes-list-map-keys"] = list(list_map_keys)
    if list_set:
        extra["x-kubernetes-list-type"] = "set"
    if default is not None:
        extra["default"] = default
    if preserve_unknown_fields:
        extra["x-kubernetes-preserve-unknown-fields"] = True
    return extra


def plain(value: Any) -> Any:
    """Deep-copy any Mapping/list structure (kopf bodies, API client dicts) into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata the operator and runtime read.

    Unlike the spec models this ignores unknown keys: metadata carries server-managed fields
    (managedFields, finalizers...) that are not ours to model.
    """

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(ApiModel):
    """Common behaviour of the four top-level kinds; subclasses declare `spec`, `status` and CRD facts."""

    model_config = ConfigDict(extra="ignore")

    crd: ClassVar[CrdFacts]

    api_version: str = API_VERSION
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def from_k8s(cls, body: Mapping[str, Any]) -> Self:
        """Parse an object as the API server (or kopf) hands it over.

        Everything the API server accepted parses: the CRD schema is generated from these models.
        """
        return cls.model_validate(plain(body))


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get`; priority 1 columns appear only with `-o wide`."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0
    format: str | None = None


@dataclass(frozen=True)
class CrdFacts:
    """What the CRD generator needs besides the spec and status schemas."""

    plural: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    max_name_length: int
    """Longest metadata.name, so that names derived from it (pods, ServiceAccounts, labels) stay valid."""
    name_pattern: str | None = None
    """A pattern for metadata.name stricter than a DNS subdomain, for names reused as label values."""
    root_rules: tuple[JsonObject, ...] = ()
    selectable_fields: tuple[str, ...] = ()
    """JSON paths a list may be filtered by on the server (`fieldSelector`), e.g. one Agent's runs."""
