"""Links from a run's trace id to the tracing backend the user has (`--url` or AGENCY_TRACE_URL).

The base URL decides the shape of the link:
- contains `{traceId}`: a template, filled in (any backend);
- ends in `/explore` (Grafana with a Tempo data source): an Explore link querying the trace id with
  TraceQL, `?left={"datasource":"<uid>","queries":[{"refId":"A","queryType":"traceql","query":"<id>"}]}`;
  the data source uid is the URL's `datasource` query parameter, `tempo` when absent;
- ends in `/api/traces` (Tempo's or Jaeger's HTTP API): `<base>/<id>`, the trace as JSON;
- anything else is a Jaeger UI: `<base>/trace/<id>`.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, quote, urlsplit

DEFAULT_DATASOURCE = "tempo"


def trace_link(base: str, trace_id: str) -> str:
    if "{traceId}" in base:
        return base.replace("{traceId}", trace_id)
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    root = f"{parts.scheme}://{parts.netloc}{path}"
    if path.endswith("/explore"):
        datasource = parse_qs(parts.query).get("datasource", [DEFAULT_DATASOURCE])[0]
        left = {
            "datasource": datasource,
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": "tempo", "uid": datasource},
                    "queryType": "traceql",
                    "query": trace_id,
                }
            ],
            "range": {"from": "now-24h", "to": "now"},
        }
        return f"{root}?orgId=1&left={quote(json.dumps(left, separators=(',', ':')), safe='')}"
    if path.endswith("/api/traces"):
        return f"{root}/{trace_id}"
    return f"{root}/trace/{trace_id}"
