"""Run code right after Python imports a given module (`when_imported`).

The package registers with verl's registries only in the processes that import the module
defining each registry, and only once that module has finished executing: registering eagerly
would make every `import verl` pay for verl's heavy modules. Standard library only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable
from types import ModuleType

Hook = Callable[[ModuleType], None]


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds hooked modules with the path finder and runs their hooks after their body."""

    def __init__(self) -> None:
        self.hooks: dict[str, list[Hook]] = {}

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 - importlib protocol
        if fullname not in self.hooks:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        hooks = self.hooks.pop(fullname)
        exec_module = spec.loader.exec_module

        def exec_then_hook(module: ModuleType) -> None:
            exec_module(module)
            for hook in hooks:
                hook(module)

        spec.loader.exec_module = exec_then_hook  # this loader instance serves only this module
        return spec


_finder = _AfterImport()


def when_imported(name: str, hook: Hook) -> None:
    """Calls `hook(module)` now if `name` is imported, else right after it is."""
    module = sys.modules.get(name)
    if module is not None:
        hook(module)
        return
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    _finder.hooks.setdefault(name, []).append(hook)
