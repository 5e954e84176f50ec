"""Build the testbed's binaries from the Go module proxy, once, into a cache outside the repo.

Standard library only, so it runs before any virtualenv exists:

    python3 tests/agency_testbed/build.py            # build what is missing, print the bin dir
    python3 tests/agency_testbed/build.py --check    # exit 1 if anything is missing

The cache lives in ``$AGENCY_TESTBED_CACHE`` (default ``~/.cache/agency/testbed``), one folder per
version set, so a warm cache is never rebuilt and a version bump builds next to the old one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES = "v1.35.4"
ETCD = "v3.6.16"
HELM = "v3.19.5"
JAEGER = "v1.76.0"  # the Go module tag of Jaeger v2 (its cmd/jaeger)


@dataclass(frozen=True)
class Tool:
    """One Go module whose commands we build."""

    key: str
    module: str
    version: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    ldflags: str = ""


def _k8s_ldflags(version: str) -> str:
    keys = (
        "k8s.io/component-base/version.gitVersion",
        "k8s.io/client-go/pkg/version.gitVersion",
    )
    sets = " ".join(f"-X {k}={version}" for k in keys)
    major, minor = version.lstrip("v").split(".")[:2]
    more = (
        f"-X k8s.io/component-base/version.gitMajor={major}"
        f" -X k8s.io/component-base/version.gitMinor={minor}"
        " -X k8s.io/component-base/version.gitTreeState=clean"
    )
    return f"{sets} {more}"


TOOLS: tuple[Tool, ...] = (
    Tool(
        "kubernetes",
        "k8s.io/kubernetes",
        KUBERNETES,
        (
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kubectl",
        ),
        ("kube-apiserver", "kube-controller-manager", "kubectl"),
        _k8s_ldflags(KUBERNETES),
    ),
    Tool("etcd", "go.etcd.io/etcd/server/v3", ETCD, ("go.etcd.io/etcd/server/v3",), ("etcd",)),
    Tool(
        "jaeger",
        "github.com/jaegertracing/jaeger",
        JAEGER,
        ("github.com/jaegertracing/jaeger/cmd/jaeger",),
        ("jaeger",),
    ),
    Tool(
        "helm",
        "helm.sh/helm/v3",
        HELM,
        ("helm.sh/helm/v3/cmd/helm",),
        ("helm",),
        f"-X helm.sh/helm/v3/internal/version.version={HELM}",
    ),
)

BINARIES = tuple(b for t in TOOLS for b in t.binaries)


def cache_root() -> Path:
    base = os.environ.get("AGENCY_TESTBED_CACHE") or str(Path.home() / ".cache/agency/testbed")
    return Path(base)


def bin_dir() -> Path:
    """The folder holding this version set's binaries."""
    key = f"k8s-{KUBERNETES}_etcd-{ETCD}_helm-{HELM}_jaeger-{JAEGER}"
    return cache_root() / key / "bin"


CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


def missing(names: tuple[str, ...] = BINARIES) -> list[str]:
    """Which of `names` (default: every binary) the cache lacks."""
    return [b for b in names if not os.access(bin_dir() / b, os.X_OK)]


def _say(msg: str) -> None:
    print(f"[testbed-build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


_REPLACE_LINE = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+(\S+))?\s+=>\s+(\S+)(?:\s+(\S+))?\s*$")


def _replaces(gomod: str, tool: Tool) -> list[str]:
    """Turn the target module's replace directives into ones valid in a wrapper module.

    Local-path replaces (Kubernetes' staging repos) become the published version of that
    module; replaces that point at another module version are kept; forbidden markers dropped.
    """
    out: list[str] = []
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].rstrip()
        if line.startswith("replace ("):
            in_block = True
            continue
        if in_block and line.strip() == ")":
            in_block = False
            continue
        if not (in_block or line.startswith("replace ")):
            continue
        m = _REPLACE_LINE.match(line)
        if not m:
            continue
        old, _old_ver, new, new_ver = m.groups()
        if new.startswith(("./", "../")):
            if "FORBIDDEN" in new:
                continue
            if tool.key == "kubernetes" and old.startswith("k8s.io/"):
                staging = "v0." + ".".join(tool.version.lstrip("v").split(".")[1:])
                out.append(f"{old} => {old} {staging}")
            continue
        if new_ver:
            out.append(f"{old} => {new} {new_ver}")
    # Kubernetes also *requires* staging modules at v0.0.0; pin each one.
    if tool.key == "kubernetes":
        staging = "v0." + ".".join(tool.version.lstrip("v").split(".")[1:])
        for mod in sorted(set(re.findall(r"^\s*(k8s\.io/[\w./-]+) v0\.0\.0\s*$", gomod, re.M))):
            line = f"{mod} => {mod} {staging}"
            if line not in out:
                out.append(line)
    return out


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    _say("$ " + " ".join(cmd))
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def _default_binary_name(package: str) -> str:
    """What `go build` names a command: the last path element that is not a major version."""
    parts = package.split("/")
    if re.fullmatch(r"v\d+", parts[-1]) and len(parts) > 1:
        return parts[-2]
    return parts[-1]


def build_tool(tool: Tool, dest: Path) -> None:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false", GOTOOLCHAIN="local")
    with tempfile.TemporaryDirectory(prefix=f"agency-build-{tool.key}-") as tmp:
        work = Path(tmp)
        _say(f"{tool.key}: fetching {tool.module}@{tool.version} from the Go module proxy")
        info = subprocess.run(
            ["go", "mod", "download", "-json", f"{tool.module}@{tool.version}"],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        gomod = Path(json.loads(info.stdout)["GoMod"]).read_text()
        go_line = re.search(r"^go (\S+)", gomod, re.M)
        lines = [
            "module agency.local/testbed-build",
            f"go {go_line.group(1) if go_line else '1.24'}",
            f"require {tool.module} {tool.version}",
        ]
        reps = _replaces(gomod, tool)
        if reps:
            lines.append("replace (")
            lines.extend(f"\t{r}" for r in reps)
            lines.append(")")
        (work / "go.mod").write_text("\n".join(lines) + "\n")
        imports = "\n".join(f'\t_ "{p}"' for p in tool.packages if p != tool.module)
        (work / "tools.go").write_text(
            "//go:build tools\n\npackage tools\n\nimport (\n" + imports + "\n)\n"
            if imports
            else "//go:build tools\n\npackage tools\n"
        )
        _say(f"{tool.key}: resolving dependencies (go get)")
        # `go get` of each command pulls exactly the dependency graph the commands need.
        _run(["go", "get", *[f"{p}@{tool.version}" for p in tool.packages]], work, env)
        _say(f"{tool.key}: compiling {', '.join(tool.binaries)} (first build is slow on 2 cores)")
        out = work / "out"
        out.mkdir()
        flags = f"-s -w {tool.ldflags}".strip()
        _run(["go", "build", "-trimpath", "-ldflags", flags, "-o", str(out) + "/", *tool.packages], work, env)
        produced = {p.name: p for p in out.iterdir()}
        for pkg, name in zip(tool.packages, tool.binaries, strict=True):
            src = produced.get(name) or produced.get(_default_binary_name(pkg))
            if src is None:
                raise SystemExit(f"{tool.key}: build produced {sorted(produced)}, not {name}")
            shutil.move(str(src), dest / name)
            (dest / name).chmod(0o755)
        _say(f"{tool.key}: done")


def ensure(only: list[str] | None = None) -> Path:
    dest = bin_dir()
    dest.mkdir(parents=True, exist_ok=True)
    need = set(missing())
    if not need:
        return dest
    if shutil.which("go") is None:
        raise SystemExit("Go is needed to build the testbed binaries; install Go 1.24 or newer")
    started = time.monotonic()
    _say(f"cache {dest} lacks {', '.join(sorted(need))}; building from the Go module proxy")
    for tool in TOOLS:
        if only and tool.key not in only:
            continue
        if need.intersection(tool.binaries):
            build_tool(tool, dest)
    _say(f"all built in {time.monotonic() - started:.0f}s; cached for every later run")
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a binary is missing")
    parser.add_argument("--only", nargs="*", help="build only these tools (kubernetes, etcd, ...)")
    args = parser.parse_args()
    if args.check:
        gone = missing()
        if gone:
            print("missing: " + " ".join(gone))
            return 1
        print(bin_dir())
        return 0
    print(ensure(args.only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
