"""Missing test dependencies skip on a developer's machine and fail under `make test` (CI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
PROBE = """
from deps import need, need_package
need_package("exit_verl_no_such_package", "a probe")

def test_never_runs():
    pass
"""


def _pytest(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "EXIT_VERL_STRICT_DEPS": "1" if strict else "0"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_a_missing_dependency_skips_locally_and_fails_strictly(tmp_path) -> None:
    local = _pytest(tmp_path, strict=False)
    # 5: pytest's "no tests collected" (the module skipped itself)
    assert local.returncode in (0, 5) and "1 skipped" in local.stdout, local.stdout
    strict = _pytest(tmp_path, strict=True)
    assert strict.returncode != 0, strict.stdout
    assert "EXIT_VERL_STRICT_DEPS=1" in strict.stdout


def test_the_ci_runs_strictly_and_tests_skip_only_through_deps() -> None:
    makefile = (TESTS.parent / "Makefile").read_text()
    runs = [line for line in makefile.splitlines() if "-m pytest" in line]
    assert runs and all("EXIT_VERL_STRICT_DEPS=1" in line for line in runs)
    for path in TESTS.glob("*.py"):
        if path.name in ("deps.py", Path(__file__).name):
            continue
        text = path.read_text()
        assert "importorskip(" not in text, f"{path.name}: ask through deps.need"
        assert not re.search(r"find_spec\([^)]*\) is None:\s*\n\s*pytest\.skip", text), path.name
