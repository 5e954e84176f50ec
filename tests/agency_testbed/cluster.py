"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

No scheduler and no kubelet run, so Pods stay Pending; everything the API does is real: CRDs with
CEL, RBAC, TokenRequest and TokenReview, garbage collection, namespace deletion.

    tb = Testbed.start(Path("/tmp/tb"))   # builds nothing; binaries come from build.ensure()
    tb.kubectl("get", "ns")
    tb.stop()

`Testbed.attach(folder)` reconnects to one started earlier (the `make testbed` CLI uses that).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from agency_testbed import build
from agency_testbed.certs import Pki, make_pki
from agency_testbed.procs import alive, free_port, log_tail, start, stop, wait_until

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
STATE_FILE = "testbed.json"


class Kubectl(Protocol):
    """The `kubectl` fixture: the testbed's kubectl as admin; raises KubectlError when check=True."""

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; str() carries its stderr so a failing test shows why."""

    def __str__(self) -> str:
        return f"kubectl {' '.join(self.cmd[1:])} exited {self.returncode}: {self.stderr.strip()}"


@dataclass
class Testbed:
    """A running control plane: where its files are, how to reach it, which pids to stop."""

    __test__ = False  # not a pytest test class, despite the name

    folder: Path
    server: str
    kubeconfig: Path
    bin_dir: Path
    pids: dict[str, int] = field(default_factory=dict)

    # ----- lifecycle -------------------------------------------------------------------------
    @classmethod
    def start(cls, folder: Path, *, timeout: float = 120.0) -> Testbed:
        """Start etcd, kube-apiserver and kube-controller-manager in `folder`; wait until ready."""
        bins = build.bin_dir()
        if lacking := build.missing(build.CONTROL_PLANE):
            raise RuntimeError(
                f"testbed binaries missing ({', '.join(lacking)}); "
                "run `make testbed-build` (python3 tests/agency_testbed/build.py) first"
            )
        folder.mkdir(parents=True, exist_ok=True)
        pki = make_pki(folder / "pki")
        etcd_port, etcd_peer, api_port, kcm_port = (free_port() for _ in range(4))
        server = f"https://127.0.0.1:{api_port}"
        kubeconfig = folder / "kubeconfig"
        _write_kubeconfig(kubeconfig, server, pki)
        tb = cls(folder=folder, server=server, kubeconfig=kubeconfig, bin_dir=bins)
        logs = folder / "logs"
        try:
            tb.pids["etcd"] = start(_etcd_argv(bins, folder, etcd_port, etcd_peer), logs / "etcd.log")
            tb._save()
            tb.pids["kube-apiserver"] = start(
                _apiserver_argv(bins, folder, pki, api_port, etcd_port), logs / "kube-apiserver.log"
            )
            tb._save()
            wait_until(
                lambda: tb._get("/readyz") == 200,
                timeout,
                f"kube-apiserver {server}/readyz",
                lambda: tb._why("kube-apiserver") + log_tail(logs / "etcd.log", 10),
            )
            tb.pids["kube-controller-manager"] = start(
                _controller_manager_argv(bins, folder, pki, kubeconfig, kcm_port),
                logs / "kube-controller-manager.log",
            )
            tb._save()
            wait_until(
                lambda: _https_status(f"https://127.0.0.1:{kcm_port}/healthz") == 200,
                timeout,
                "kube-controller-manager /healthz",
                lambda: tb._why("kube-controller-manager"),
            )
            # The ServiceAccount controller creating `default` in `default` shows the controllers run.
            wait_until(
                lambda: tb.kubectl("get", "sa", "default", "-n", "default", check=False).returncode == 0,
                timeout,
                "the ServiceAccount controller",
                lambda: tb._why("kube-controller-manager"),
            )
        except BaseException:
            tb.stop()
            raise
        return tb

    @classmethod
    def attach(cls, folder: Path) -> Testbed:
        """The testbed started earlier in `folder` (raises FileNotFoundError if there is none)."""
        data = json.loads((folder / STATE_FILE).read_text())
        return cls(
            folder=Path(data["folder"]),
            server=data["server"],
            kubeconfig=Path(data["kubeconfig"]),
            bin_dir=Path(data["bin_dir"]),
            pids={k: int(v) for k, v in data["pids"].items()},
        )

    def running(self) -> bool:
        return bool(self.pids) and all(alive(pid) for pid in self.pids.values())

    def stop(self) -> None:
        """Stop every process this testbed started, newest first, by pid."""
        for name in reversed(list(self.pids)):
            stop(self.pids[name])
        self.pids.clear()
        (self.folder / STATE_FILE).unlink(missing_ok=True)

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again with the same flags (for chaos tests)."""
        argv = json.loads((self.folder / "kube-apiserver.argv").read_text())
        stop(self.pids["kube-apiserver"])
        self.pids["kube-apiserver"] = start(argv, self.folder / "logs" / "kube-apiserver.log")
        self._save()
        wait_until(lambda: self._get("/readyz") == 200, 120, "kube-apiserver to come back")

    # ----- clients ---------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment a client process needs: KUBECONFIG and the testbed's binaries on PATH."""
        return dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            KUBECACHEDIR=str(self.folder / "kube-cache"),
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}",
        )

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the testbed's kubectl as the admin user, exactly as a person would."""
        cmd = [
            str(self.bin_dir / "kubectl"),
            "--kubeconfig",
            str(self.kubeconfig),
            # Discovery is cached per host:port in ~/.kube/cache; loopback ports are reused by later
            # testbeds whose kinds differ, so each testbed keeps a cache of its own.
            f"--cache-dir={self.folder / 'kube-cache'}",
            *args,
        ]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def ssl_context(self, *, admin: bool = False) -> ssl.SSLContext:
        """Trusts the testbed's CA; with `admin`, also presents the admin client certificate."""
        pki = self.folder / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        if admin:
            ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def http(self, *, token: str | None = None, timeout: float = 10.0) -> httpx.Client:
        """An HTTP client for the API server: as the bearer of `token`, or as admin without one."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=self.server,
            verify=self.ssl_context(admin=token is None),
            headers=headers,
            timeout=timeout,
        )

    # ----- internals -------------------------------------------------------------------------
    def _save(self) -> None:
        data = asdict(self)
        data = {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
        (self.folder / STATE_FILE).write_text(json.dumps(data, indent=2))

    def _get(self, path: str) -> int:
        pki = self.folder / "pki"
        return _https_status(
            self.server + path, ca=pki / "ca.crt", cert=(pki / "admin.crt", pki / "admin.key")
        )

    def _why(self, name: str) -> str:
        pid = self.pids.get(name)
        state = "running" if pid and alive(pid) else "not running"
        return f" ({name} {state})" + log_tail(self.folder / "logs" / f"{name}.log")


def _https_status(url: str, ca: Path | None = None, cert: tuple[Path, Path] | None = None) -> int:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()  # noqa: S323
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:  # noqa: S310 - loopback only
            status: int = resp.status
            return status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return 0


def _etcd_argv(bins: Path, folder: Path, port: int, peer: int) -> list[str]:
    client, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    return [
        str(bins / "etcd"),
        "--name=testbed",
        f"--data-dir={folder / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=testbed={peer_url}",
        "--unsafe-no-fsync",  # a throwaway store: durability costs seconds per test on slow disks
        "--log-level=warn",
    ]


def _apiserver_argv(bins: Path, folder: Path, pki: Pki, port: int, etcd_port: int) -> list[str]:
    argv = [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={folder / 'apiserver-certs'}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--allow-privileged=false",
        "--enable-priority-and-fairness=false",
        # /debug/pprof only when asked (AGENCY_TESTBED_PROFILING=1): how the benchmarks' "where the time
        # goes" was measured; off otherwise, as in most managed control planes.
        f"--profiling={'true' if os.environ.get('AGENCY_TESTBED_PROFILING') == '1' else 'false'}",
        "--v=1",
    ]
    (folder / "kube-apiserver.argv").write_text(json.dumps(argv))
    return argv


def _controller_manager_argv(bins: Path, folder: Path, pki: Pki, kubeconfig: Path, port: int) -> list[str]:
    return [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        "--use-service-account-credentials",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={folder / 'kcm-certs'}",
        # No nodes, no cloud: controllers that need them would only log errors.
        "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-route",
        "--v=1",
    ]


def _write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    import yaml  # local: yaml is a dev dependency of the harness, not of build.py's stdlib path

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "agency-testbed",
                "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
            }
        ],
        "contexts": [{"name": "agency-testbed", "context": {"cluster": "agency-testbed", "user": "admin"}}],
        "current-context": "agency-testbed",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
