"""The testbed's control-plane flags that a benchmark run may switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from agency_testbed.certs import Pki
from agency_testbed.cluster import _apiserver_argv


def _pki(folder: Path) -> Pki:
    return Pki(*(folder / f"{name}.pem" for name in Pki.__dataclass_fields__))


@pytest.mark.parametrize(("asked", "served"), [(None, "false"), ("0", "false"), ("1", "true")])
def test_the_apiservers_pprof_endpoint_is_served_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: str | None, served: str
) -> None:
    if asked is None:
        monkeypatch.delenv("AGENCY_TESTBED_PROFILING", raising=False)
    else:
        monkeypatch.setenv("AGENCY_TESTBED_PROFILING", asked)

    argv = _apiserver_argv(tmp_path, tmp_path, _pki(tmp_path), 6443, 2379)

    assert [arg for arg in argv if arg.startswith("--profiling")] == [f"--profiling={served}"]
