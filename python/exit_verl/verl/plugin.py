"""The `verl.plugins` entry point: registers verl trainer modes "exit" and "exit_colocate_async"
when verl's v1 trainer loads.

verl loads every `verl.plugins` entry point on `import verl`, in the driver and in each Ray
process. Importing verl's v1 trainer package (`verl.trainer.ppo.v1`) roughly doubles the cost
of `import verl` (docs/verl.md has the measurement), and most processes verl starts (rollout,
reward and TransferQueue workers) never need it. So this module imports only the standard
library: it asks Python to call `_register` right after `verl.trainer.ppo.v1` finishes
importing (`import_hook.when_imported`), which registers the ExIt trainers
(`exit_verl.verl.trainer`) with verl's `register_trainer`: "exit" runs on verl's sync loop,
"exit_colocate_async" on its colocate_async loop (`mode.TRAINER_MODES`). Every other mode is
verl's, untouched.

The same way, right after `verl.experimental.agent_loop.agent_loop` (verl's agent-loop registry)
finishes importing — in the Ray workers that run agent loops — it registers the tool-use agent
loop "exit_bfcl" (`exit_verl.verl.tool_agent_loop`), which dataset rows select by `agent_name`
in any trainer mode.

verl logs a plugin that fails to load at debug level only, so failures here are logged as
errors (with the traceback) before they propagate.
"""

from __future__ import annotations

import logging
from types import ModuleType

from exit_verl.verl.import_hook import when_imported
from exit_verl.verl.mode import TRAINER_MODES

WATCHED_MODULE = "verl.trainer.ppo.v1"
AGENT_LOOP_MODULE = "verl.experimental.agent_loop.agent_loop"

logger = logging.getLogger("exit_verl")


def _register() -> None:
    """Registers the ExIt trainers; logs (and swallows) a failure so verl's modes still work."""
    try:
        import exit_verl.verl.trainer  # noqa: F401  (its class decorators register the modes)
    except Exception:
        logger.exception(
            "exit-verl could not register verl trainer modes %s; "
            "trainer.v1.trainer_mode=%s will be unknown to verl",
            ", ".join(repr(m) for m in TRAINER_MODES),
            "|".join(TRAINER_MODES),
        )


def _register_agent_loops(module: ModuleType) -> None:
    """Registers ExIt's agent loops with verl's registry; logs (and swallows) a failure."""
    try:
        import exit_verl.verl.tool_agent_loop  # noqa: F401  (its class decorator registers it)
    except Exception:
        logger.exception("exit-verl could not register its verl agent loops")


def install() -> None:
    """Registers now if verl's v1 trainer is already imported, else right after it is; the
    agent loops likewise with verl's agent-loop module."""
    when_imported(WATCHED_MODULE, lambda module: _register())
    when_imported(AGENT_LOOP_MODULE, _register_agent_loops)


try:
    install()
except Exception:
    logger.exception("exit-verl's verl plugin failed to load")
    raise

# In the driver of `python -m verl.trainer.main_ppo ... trainer.v1.trainer_mode=exit`, the only
# plugin code that runs before verl starts Ray: check the exit settings there (driver_check).
from exit_verl.verl.driver_check import check_this_process  # noqa: E402

check_this_process()
