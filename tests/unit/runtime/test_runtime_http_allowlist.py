"""HTTP tools reach only hosts the tool's allowedHosts and the policy's egress rules both allow."""

from __future__ import annotations

import pytest

from agency_runtime.tools.base import ToolError
from agency_runtime.tools.http import check_destination
from unit.runtime.runtime_support import policy

EGRESS = policy(network={"egress": [{"hosts": ["*.example.com"], "ports": [{"port": 443}]}]})


def test_a_wildcard_host_matches_subdomains_but_not_the_domain_itself() -> None:
    check_destination("https://api.example.com/x", ["*.example.com"], None)

    with pytest.raises(ToolError, match=r"'example\.com' is not in this tool's allowedHosts"):
        check_destination("https://example.com/x", ["*.example.com"], None)


def test_the_policy_egress_rules_decide_host_and_port() -> None:
    check_destination("https://api.example.com/x", None, EGRESS)

    with pytest.raises(ToolError, match=r"do not allow api\.example\.com:8443"):
        check_destination("https://api.example.com:8443/x", None, EGRESS)
    with pytest.raises(ToolError, match=r"do not allow evil\.test:443"):
        check_destination("https://evil.test/x", None, EGRESS)


def test_without_an_allow_list_or_policy_nothing_is_reachable() -> None:
    with pytest.raises(ToolError, match="no allowedHosts setting and no policy"):
        check_destination("https://api.example.com/x", None, None)


def test_only_http_and_https_urls_are_called() -> None:
    with pytest.raises(ToolError, match="not an http:// or https:// URL"):
        check_destination("file:///etc/passwd", ["*"], None)
