"""The Dockerfile without a Docker engine: read it, and run its build stage's RUN lines on this machine.

No Docker engine runs here, so the image is kept correct two ways: the file is read and held to the rules
(multi-stage, numeric non-root USER, no compilers or uv in the final stage, the same lock file as the
tests), and the build stage's own RUN lines are executed on the host against the build context that
`.dockerignore` lets through, with `/opt/agency` moved to a temporary folder. The venv they produce must
then start both entrypoints from a folder outside the repository, as the image's command does.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
VENV = "/opt/agency"
COMPILERS = ("gcc", "g++", "cc", "clang", "build-essential", "make", "rustc", "cargo")


@dataclass
class Stage:
    """One `FROM` of the Dockerfile and its instructions, as (INSTRUCTION, arguments)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.instructions if ins == instruction]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                out[key] = value
        return out


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages (continuation lines joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), words[0])
            stages.append(Stage(base=base, name=words[2] if len(words) > 2 else None))
        elif not stages and instruction == "ARG":
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
        elif stages:
            stages[-1].instructions.append((instruction, rest.strip()))
    return args, stages


def stage(stages: list[Stage], name: str | None) -> Stage:
    return next(s for s in stages if s.name == name)


def _pattern(glob: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*/|\*\*|\*|\?)", glob.strip("/")):
        parts.append({"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(piece, re.escape(piece)))
    return re.compile("".join(parts))


def build_context(repo: Path) -> list[Path]:
    """The files `docker build` would send, by .dockerignore's rules (last matching pattern wins; a
    pattern matching a parent folder matches everything in it)."""
    rules = []
    for line in (repo / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), _pattern(line.lstrip("!"))))
    kept = []
    for path in sorted(p for p in repo.rglob("*") if p.is_file()):
        rel = path.relative_to(repo).as_posix()
        prefixes = ["/".join(rel.split("/")[: i + 1]) for i in range(rel.count("/") + 1)]
        excluded = False
        for negated, pattern in rules:
            if any(pattern.fullmatch(prefix) for prefix in prefixes):
                excluded = not negated
        if not excluded:
            kept.append(path.relative_to(repo))
    return kept


DOCKER_ARGS, STAGES = parse(DOCKERFILE.read_text(encoding="utf-8"))


# ----- read --------------------------------------------------------------------------------------


def test_image_is_built_in_stages_on_one_python_base() -> None:
    build, final = stage(STAGES, "build"), STAGES[-1]
    assert final.name is None or final.name != "build"
    assert build.base == final.base, "the venv links to the base image's interpreter: use one base"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", final.base), final.base


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = STAGES[-1].all("USER")
    assert users, "the final stage sets no USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit()
    assert int(user) != 0
    assert group.isdigit()
    assert int(group) != 0


def test_final_stage_copies_only_the_venv_and_installs_nothing() -> None:
    final = STAGES[-1]
    assert final.all("COPY") == [f"--from=build {VENV} {VENV}"]
    assert not final.all("RUN"), "the final stage must not run installers (and so has no compilers)"
    assert not final.all("ADD")


def test_no_stage_installs_compilers() -> None:
    for st in STAGES:
        for run in st.all("RUN"):
            words = set(re.split(r"[\s;&|]+", run))
            assert not words & set(COMPILERS), run


def test_image_environment_keeps_python_off_the_read_only_root_filesystem() -> None:
    env = STAGES[-1].env()
    assert env["HOME"] == "/tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert env["PATH"].startswith(f"{VENV}/bin:")


def test_default_command_is_the_operator_and_no_entrypoint_hides_the_runtime_command() -> None:
    final = STAGES[-1]
    assert final.all("CMD") == ['["python", "-m", "agency_operator"]']
    assert not final.all("ENTRYPOINT"), "run Pods set their command to python -m agency_runtime"


def _pins(lock: str) -> dict[str, str]:
    text = (REPO / lock).read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", text, re.M))


def test_image_dependencies_are_the_tested_ones_without_the_dev_tools() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    dev_lock = re.search(r"uv pip sync .*?(\S+\.lock)", makefile)
    assert dev_lock, "the Makefile no longer syncs a lock file"
    runs = stage(STAGES, "build").all("RUN")
    assert f"uv pip sync --python {VENV}/bin/python requirements.lock" in runs
    image, tested = _pins("requirements.lock"), _pins(dev_lock[1])
    assert {name: version for name, version in image.items() if tested.get(name) != version} == {}
    assert not {"pytest", "ruff", "mypy"} & set(image)
    assert f"uv pip install --python {VENV}/bin/python --no-deps ." in runs


def test_build_context_holds_what_the_image_copies_and_nothing_private() -> None:
    context = {p.as_posix() for p in build_context(REPO)}
    for st in STAGES:
        for copy in st.all("COPY"):
            if copy.startswith("--from"):
                continue
            for source in copy.split()[:-1]:
                assert any(c == source or c.startswith(source.rstrip("/") + "/") for c in context), source
    assert not [c for c in context if c.startswith((".venv/", ".git/", "tests/", ".testbed/"))]
    assert not [c for c in context if "__pycache__" in c or c.endswith(".pyc")]


# ----- run ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/opt/agency as the build stage makes it, made here by the build stage's own RUN lines."""
    root = tmp_path_factory.mktemp("image")
    src, venv = root / "src", root / "opt-agency"
    for rel in build_context(REPO):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    build = stage(STAGES, "build")
    tools = Path(sys.executable).parent  # uv and a python 3.11, as the build stage has them
    # Same settings as the build stage, except that here uv may use its cache (it changes no result).
    settings = {k: v for k, v in build.env().items() if k != "UV_NO_CACHE"}
    env = dict(os.environ, **settings, PATH=f"{tools}{os.pathsep}{os.environ['PATH']}")
    for run in build.all("RUN"):
        command = run.replace(VENV, str(venv))
        proc = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"RUN {run}\n{proc.stdout}\n{proc.stderr}"
    return venv


def _image_env(venv: Path, home: Path) -> dict[str, str]:
    env = STAGES[-1].env()
    env["PATH"] = env["PATH"].replace(VENV, str(venv)).replace("$PATH", "/usr/bin:/bin")
    env["VIRTUAL_ENV"] = str(venv)
    env["HOME"] = str(home)
    return env


def test_installed_venv_starts_the_operator_entrypoint_outside_the_source_tree(
    image_venv: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        ["python", "-m", "agency_operator", "--help"],
        cwd=tmp_path,
        env=_image_env(image_venv, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "python -m agency_operator" in proc.stdout


def test_installed_venv_starts_the_runtime_entrypoint_which_asks_for_its_run(
    image_venv: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        ["python", "-m", "agency_runtime"],
        cwd=tmp_path,
        env=_image_env(image_venv, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "AGENCY_RUN_NAME is not set" in proc.stdout + proc.stderr


def test_project_is_installed_as_a_package_not_as_a_link_to_the_sources(
    image_venv: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [
            "python",
            "-c",
            "import agency_operator, agency_runtime; print(agency_operator.__file__); "
            "print(agency_runtime.__file__)",
        ],
        cwd=tmp_path,
        env=_image_env(image_venv, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.split():
        assert Path(line).is_relative_to(image_venv), line
    site = next(image_venv.glob("lib/python3*/site-packages"))
    assert not list(site.glob("__editable__*")), "the project was installed editable"
    assert (site / "agency_operator" / "py.typed").exists()
    assert (site / "agency_runtime" / "py.typed").exists()
