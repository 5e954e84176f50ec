"""Agency's shared loop runtime and the API models every component speaks."""

__version__ = "0.1.0"

FIELD_DOCS = True
"""Whether the API models read their fields' docs from the source when their classes are made (pydantic's
`use_attribute_docstrings`). The CRDs need them; a run's process does not, and sets this to False before
its first import of `agency_runtime.api` (which makes every model at once), saving ~50 ms of its start."""
