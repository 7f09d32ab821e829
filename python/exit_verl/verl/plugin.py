"""The `verl.plugins` entry point: registers verl trainer mode "exit" when verl's v1 trainer loads.

verl loads every `verl.plugins` entry point on `import verl`, in the driver and in each Ray
process. Importing verl's v1 trainer package (`verl.trainer.ppo.v1`) roughly doubles the cost
of `import verl` (docs/verl.md has the measurement), and most processes verl starts (rollout,
reward and TransferQueue workers) never need it. So this module imports only the standard
library: it asks Python to call `_register` right after `verl.trainer.ppo.v1` finishes
importing, which registers `exit_verl.verl.trainer.ExItTrainer` under "exit" with verl's
`register_trainer`. Every other mode is verl's, untouched.

verl logs a plugin that fails to load at debug level only, so failures here are logged as
errors (with the traceback) before they propagate.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from types import ModuleType

TRAINER_MODE = "exit"
WATCHED_MODULE = "verl.trainer.ppo.v1"

logger = logging.getLogger("exit_verl")


def _register() -> None:
    """Registers the "exit" trainer; logs (and swallows) a failure so verl's modes still work."""
    try:
        import exit_verl.verl.trainer  # noqa: F401  (its class decorator registers the mode)
    except Exception:
        logger.exception(
            "exit-verl could not register verl trainer mode %r; "
            "trainer.v1.trainer_mode=%s will be unknown to verl",
            TRAINER_MODE,
            TRAINER_MODE,
        )


class _RegisterAfterImport(importlib.abc.Loader):
    """Runs the real loader of `WATCHED_MODULE`, then `_register`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _register()

    def __getattr__(self, name: str):  # is_package, get_code, ... of the real loader
        return getattr(self.loader, name)


class _WatchVerlV1(importlib.abc.MetaPathFinder):
    """Finds `WATCHED_MODULE` with the other finders and wraps its loader, once."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 (importlib protocol)
        if fullname != WATCHED_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisterAfterImport(spec.loader)
        return spec


def install() -> None:
    """Registers now if verl's v1 trainer is already imported, else right after it is."""
    if WATCHED_MODULE in sys.modules:
        _register()
    elif not any(isinstance(f, _WatchVerlV1) for f in sys.meta_path):
        sys.meta_path.insert(0, _WatchVerlV1())


try:
    install()
except Exception:
    logger.exception("exit-verl's verl plugin failed to load")
    raise

# In the driver of `python -m verl.trainer.main_ppo ... trainer.v1.trainer_mode=exit`, the only
# plugin code that runs before verl starts Ray: check the exit settings there (driver_check).
from exit_verl.verl.driver_check import check_this_process  # noqa: E402

check_this_process()
