"""The Temporal worker keeps the workflow modules' bytecode, so the sandbox's per-run re-import
reads it instead of compiling the source again (issue 20)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import importlib, sys
from pathlib import Path
from autobidder.config import Settings
from worker.temporal_worker import keep_workflow_bytecode

keep_workflow_bytecode(Settings(data_dir=Path(sys.argv[1])))
# A fresh module from the source file, as the sandbox makes for every workflow run: the first
# writes the bytecode, and every later one reads it instead of compiling the source.
spec = importlib.util.find_spec("workflows.bidding_cycle")
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(importlib.util.cache_from_source(spec.origin))
"""


def test_workflow_bytecode_is_written_under_the_data_dir_without_pythondontwritebytecode(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONPYCACHEPREFIX", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    cached = Path(out.stdout.strip().splitlines()[-1])
    assert cached.is_relative_to(tmp_path / "run" / "pycache")
    assert cached.is_file() and cached.name.startswith("bidding_cycle.")
