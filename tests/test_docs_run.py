"""The docs run as written (issue 17): every shell example in README.md and docs/*.md is executed
through the real `autobidder` entry point, in a fresh data dir, on the shipped sample. Skipped,
each with its reason: what needs a running stack (the e2e tests cover it), a long-running server or
benchmark, data outside the shipped sample (../shared/data), or a trained model version.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STACK_COMMANDS = {"up", "status", "demo", "schedule"}


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    text: str

    @property
    def argv(self) -> list[str]:
        tokens = shlex.split(self.text, comments=True)
        # `[--json]`, `[--set members=2]`: optional parts of a synopsis, run without them.
        out, depth = [], 0
        for token in tokens:
            depth += token.count("[") if token.startswith("[") else 0
            if depth == 0:
                out.append(token)
            depth -= token.count("]") if depth and token.endswith("]") else 0
        return out


def examples(path: Path) -> list[Example]:
    found: list[Example] = []
    lines = path.read_text().splitlines()
    in_shell, pending, start = False, "", 0
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_shell = not in_shell and line[3:].strip() in ("sh", "bash", "shell")
            continue
        if not in_shell or (not pending and (not line.strip() or line.lstrip().startswith("#"))):
            continue
        start = start if pending else number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        found.append(Example(path.name, start, pending + line))
        pending = ""
    return found


def skip_reason(argv: list[str]) -> str | None:
    text = " ".join(argv)
    if argv[0] == "make":
        return "a make target (builds the venv, starts the stack or runs the suite)"
    if "…" in text:
        return "a placeholder (…) to fill in"
    if "worker.fleet" in text or argv[-1].startswith("bench/") or any(a.startswith("bench/") for a in argv):
        return "a long-running server or a benchmark"
    if argv[0].endswith("autobidder") and len(argv) > 1 and argv[1] in STACK_COMMANDS:
        return "needs the running stack (tests/test_e2e_*.py run it)"
    if any("../shared/" in a or a.startswith(("nem:", "epf:")) for a in argv):
        return "data outside the shipped sample (../shared/data)"
    if re.search(r"quantile_mlp@\d", text):
        return "needs a trained quantile_mlp version (trained on ../shared/data)"
    return None


ALL = [example for doc in DOCS for example in examples(doc)]


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "worker.cli", *argv[1:]]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280, check=False
    )


def test_the_docs_have_examples_to_run() -> None:
    runnable = [e for e in ALL if skip_reason(e.argv) is None]
    assert len(ALL) >= 20 and len(runnable) >= 8, [e.text for e in runnable]


@pytest.mark.parametrize("doc", sorted({e.doc for e in ALL}))
def test_every_shell_example_runs_as_written(doc: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOBIDDER_DATA_DIR": str(tmp_path / "var")}
    env.pop("AUTOBIDDER_DATABASE_URL", None)
    failures, ran, skipped = [], 0, []
    for example in (e for e in ALL if e.doc == doc):
        argv = example.argv
        reason = skip_reason(argv)
        if reason is not None:
            skipped.append(f"{doc}:{example.line} {reason}")
            continue
        if any(re.fullmatch(r"sa1-vpp@v2", a) for a in argv):
            # The example reads a second stored version: apply two, as a user would have.
            for file in ("strategies/sa1-vpp.toml", "strategies/sa1-vpp-cautious.toml"):
                run(["autobidder", "strategy", "apply", file], env)
        result = run(argv, env)
        ran += 1
        # `strategy diff` exits 1 when the two differ, as its --help says.
        allowed = {0, 1} if argv[1:3] == ["strategy", "diff"] else {0}
        if result.returncode not in allowed or "Traceback" in result.stderr:
            failures.append(
                f"{doc}:{example.line} `{example.text}` exit {result.returncode}: {result.stderr[-500:]}"
            )
    print("\n".join(skipped))
    assert not failures, "\n".join(failures)
    if ran == 0:
        pytest.skip(f"nothing in {doc} runs without a stack or ../shared/data: " + "; ".join(skipped))
