"""`python -m agency_operator`: run the operator (kopf) with Agency's handlers.

    AGENCY_EXECUTOR=local KUBECONFIG=... python -m agency_operator --namespace demo

Without --namespace the operator watches the whole cluster (or AGENCY_NAMESPACES, comma-separated).
Logs are JSON lines; liveness is served at AGENCY_LIVENESS_ENDPOINT (kopf's probe), metrics on
AGENCY_METRICS_PORT.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace

import kopf

from agency_operator import handlers
from agency_operator.settings import Settings, SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agency_operator", description=__doc__.split("\n")[0])
    parser.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"agency-operator: {err}", file=sys.stderr)
        return 2
    if args.namespace:
        settings = replace(settings, namespaces=tuple(args.namespace))
    if args.liveness:
        settings = replace(settings, liveness_endpoint=args.liveness)
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.JSON)
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, settings)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
