"""Test dependencies: a missing one skips its tests on a developer's machine, and fails the run
when EXIT_VERL_STRICT_DEPS=1 (`make test`, hence CI), so no test is skipped silently there.
Tests ask through `need` / `need_package`, never `pytest.importorskip` (a test checks that).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import pytest

STRICT = os.environ.get("EXIT_VERL_STRICT_DEPS") == "1"


def need(module: str) -> ModuleType:
    """The imported module; skips (or, strict, raises ImportError) when it is missing."""
    if STRICT:
        return importlib.import_module(module)
    return pytest.importorskip(module)


def need_package(name: str, why: str) -> None:
    """A package that is found but not imported (e.g. one installed without its dependencies
    for the data it ships); skips the module (or, strict, raises) when it is missing."""
    if importlib.util.find_spec(name) is not None:
        return
    if STRICT:
        raise ModuleNotFoundError(f"{name} is required ({why}) and EXIT_VERL_STRICT_DEPS=1")
    pytest.skip(f"{name} is not installed ({why})", allow_module_level=True)


def need_sandbox() -> None:
    """The ML-engineering sandbox (bubblewrap that can create its namespaces here); skips the
    module (or, strict, raises) when it cannot run."""
    from exit_verl.domains import mle

    problem = mle.sandbox_problem()
    if problem is None:
        return
    if STRICT:
        raise RuntimeError(f"the sandbox is required (EXIT_VERL_STRICT_DEPS=1): {problem}")
    pytest.skip(f"no sandbox here: {problem}", allow_module_level=True)


# The one opt-in switch: EXIT_VERL_SLOW_TESTS=1 adds the real-model (SmolLM2) runs and
# lengthens the stress tests; `make test` and CI leave it off.
OPT_IN = os.environ.get("EXIT_VERL_SLOW_TESTS") == "1"
opt_in = pytest.mark.skipif(not OPT_IN, reason="opt-in: set EXIT_VERL_SLOW_TESTS=1")
