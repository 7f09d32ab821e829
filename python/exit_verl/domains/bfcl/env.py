"""`Env`: one episode's instances of BFCL's API classes, driven by call strings parsed with `ast`.

A call is ONE expression `name(arg, key=value, ...)` where `name` is a public method of one of
the task's classes (BFCL's rule: a bare method name; when two classes share a name the later
class in `involved_classes` wins) and every argument is a Python literal (`ast.literal_eval`).
Anything else — imports, attribute chains, dunder or private names, lambdas, nested calls,
comprehensions, names, starred arguments, texts over `MAX_CALL_CHARS`, numbers beyond
`MAX_NUMBER` — is refused with an error text before anything runs, so the instances are left
exactly as they were. A call that is run returns BFCL's execution text (the result as a string,
a dict as JSON, an exception as "Error during execution: ...").

Each `Env` builds its own instances from the task's `initial_config` (deep-copied), so
episodes never share state and nothing is kept in module globals.
"""

from __future__ import annotations

import ast
import copy
import datetime
import importlib
import inspect
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

MAX_CALL_CHARS = 4096
MAX_NUMBER = 10**9
# Arguments whose size sets the cost of the work itself (MathAPI's precision and power).
MAX_BY_PARAMETER = {"precision": 1000, "exponent": 1000}
REFUSED = "Error: call refused, nothing was run: "


class CallRefused(ValueError):
    """A call text that is not one literal-argument call of an available method."""


def parse_call(text: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """(method name, positional args, keyword args) of one call text; CallRefused otherwise."""
    if not isinstance(text, str):
        raise CallRefused("a call must be a string")
    if len(text) > MAX_CALL_CHARS:
        raise CallRefused(f"the call is longer than {MAX_CALL_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise CallRefused(f"not a Python call expression ({type(e).__name__})") from None
    node = tree.body
    if not isinstance(node, ast.Call):
        raise CallRefused("expected one call such as name(key=value)")
    if not isinstance(node.func, ast.Name):
        raise CallRefused("call a function by its bare name (no attributes or expressions)")
    name = node.func.id
    if name.startswith("_"):
        raise CallRefused(f"{name!r} is not a public function")
    args = tuple(_literal(a) for a in node.args)
    kwargs: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise CallRefused("**-arguments are not allowed")
        if keyword.arg in kwargs:
            raise CallRefused(f"argument {keyword.arg!r} is given twice")
        kwargs[keyword.arg] = _literal(keyword.value)
    return name, args, kwargs


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Starred):
        raise CallRefused("*-arguments are not allowed")
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise CallRefused(f"argument {ast.unparse(node)[:80]!r} is not a literal") from None
    _check_numbers(value)
    return value


def _check_numbers(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise CallRefused("arguments are nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return
        if abs(value) > MAX_NUMBER:
            raise CallRefused(f"numbers are limited to +-{MAX_NUMBER}")
        return
    if isinstance(value, complex):
        raise CallRefused("complex numbers are not allowed")
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for key, item in items:
        if key is not None:
            _check_numbers(key, depth + 1)
        _check_numbers(item, depth + 1)


def call_text(name: str, arguments: Mapping[str, Any]) -> str:
    """The call string of a structured tool call (keyword arguments, literal reprs).

    ValueError when `name` or a key is not an identifier or a value is not a JSON value:
    such a call has no call string and is never run."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"tool name {name!r} is not an identifier")
    if not isinstance(arguments, Mapping):
        raise ValueError("tool arguments must be a JSON object")
    parts = []
    for key, value in arguments.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"argument name {key!r} is not an identifier")
        _check_json(value)
        parts.append(f"{key}={value!r}")
    return f"{name}({', '.join(parts)})"


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise ValueError("arguments are nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("arguments must be finite numbers")
        return
    if isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for item in value.values():
            _check_json(item, depth + 1)
        return
    raise ValueError(f"argument value of type {type(value).__name__} is not a JSON value")


def execution_text(result: Any) -> str:
    """A method's result as BFCL's executor reports it."""
    if type(result) is str:
        return result
    if type(result) is dict:
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


class Env:
    """Fresh instances of a task's classes for one episode (see the module docstring)."""

    def __init__(self, task: Mapping[str, Any]) -> None:
        from bfcl_eval.constants.executable_backend_config import (
            CLASS_FILE_PATH_MAPPING,
            STATELESS_CLASSES,
        )

        classes = task.get("involved_classes")
        if not isinstance(classes, Sequence) or isinstance(classes, str) or not classes:
            raise ValueError("task needs a non-empty list 'involved_classes'")
        config = task.get("initial_config") or {}
        self._instances: dict[str, Any] = {}
        self._methods: dict[str, Callable[..., Any]] = {}
        for class_name in classes:
            if class_name not in CLASS_FILE_PATH_MAPPING:
                raise ValueError(f"unknown BFCL class {class_name!r}")
            module = importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name])
            instance = getattr(module, class_name)()
            if class_name not in STATELESS_CLASSES:
                scenario = copy.deepcopy(config.get(class_name, {}))
                instance._load_scenario(scenario, long_context=bool(task.get("long_context")))
            self._instances[class_name] = instance
            for method_name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not method_name.startswith("_"):
                    self._methods[method_name] = method

    @property
    def functions(self) -> list[str]:
        """The callable method names, sorted."""
        return sorted(self._methods)

    def call(self, text: str) -> str:
        """Runs one call text; returns its output, or an error text and runs nothing."""
        try:
            name, args, kwargs = parse_call(text)
            method = self._methods.get(name)
            if method is None:
                raise CallRefused(f"no function named {name!r}")
            _check_costly_arguments(method, args, kwargs)
        except CallRefused as e:
            return REFUSED + str(e)
        try:
            return execution_text(method(*args, **kwargs))
        except Exception as e:  # the method's own failure, reported as BFCL reports it
            return f"Error during execution: {e}"

    def state(self) -> dict[str, Any]:
        """Per class, a plain snapshot of every attribute (private ones too, RNG states
        included, wall-clock timestamps left out): equal for two envs that ran the same calls."""
        return {name: _snapshot(instance, set()) for name, instance in self._instances.items()}


def _check_costly_arguments(method: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    try:
        bound = inspect.signature(method).bind(*args, **kwargs)
    except TypeError:
        return  # the call itself reports the mismatch, as BFCL's executor would
    for name, limit in MAX_BY_PARAMETER.items():
        value = bound.arguments.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > limit:
            raise CallRefused(f"{name} is limited to +-{limit}")


def _snapshot(value: Any, path: set[int]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, random.Random):
        return {"__random__": value.getstate()}
    if isinstance(value, (datetime.datetime, datetime.date)):
        return None  # wall-clock stamps (file modification times) differ between runs
    if id(value) in path:
        return {"__cycle__": type(value).__name__}
    path = path | {id(value)}
    if isinstance(value, dict):
        return {k: _snapshot(v, path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_snapshot(v, path) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted(repr(v) for v in value)}
    if hasattr(value, "__dict__"):
        fields = {k: _snapshot(v, path) for k, v in vars(value).items()}
        return {"__class__": type(value).__name__, **fields}
    return repr(value)
