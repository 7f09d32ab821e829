"""The version contract (`exit_verl.verl.contract`): every verl symbol the package touches is
listed, each exists in the installed verl with a compatible signature, and a drifted verl is
caught at start-up instead of silently training plain GRPO."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from deps import need

need("verl")

import exit_verl.verl as exit_verl_verl  # noqa: E402
from exit_verl.verl import contract  # noqa: E402

PACKAGE = Path(exit_verl_verl.__file__).parent
FOREIGN = ("verl", "transfer_queue")


def dotted(target: str) -> str:
    module, _, qual = target.partition(":")
    return f"{module}.{qual}" if qual else module


TARGETS = {dotted(t.target) for t in contract.CONTRACT}


def test_every_entry_holds_in_the_installed_verl() -> None:
    assert contract.broken() == []
    private = [t.target for t in contract.CONTRACT if t.private]
    # The private hooks the plugin depends on are named (the list among them).
    for name in (
        "PPOTrainer._fetch_one_gen_batch",
        "PPOTrainer._val_metrics_update",
        "ReplayBuffer._clear_groups",
        "ResourcePoolManager._check_resource_available",
        "_ROLLOUT_REGISTRY",
    ):
        assert any(target.endswith(name) for target in private), name
    swapped = {dotted(t.target) for t in contract.CONTRACT if t.use == "swap"}
    assert "verl.utils.distributed.initialize_global_process_group_ray" in swapped


def _imports(path: Path) -> set[str]:
    """Dotted names of verl / TransferQueue objects a source file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in FOREIGN:
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] in FOREIGN)
    return names


def test_every_verl_import_of_the_package_is_listed() -> None:
    unlisted = {}
    for path in PACKAGE.rglob("*.py"):
        for name in _imports(path):
            if not any(t == name or t.startswith(name + ".") for t in TARGETS):
                unlisted.setdefault(name, []).append(path.name)
    assert unlisted == {}


def _package_classes() -> list[type]:
    classes = []
    for info in pkgutil.walk_packages([str(PACKAGE)], "exit_verl.verl."):
        if info.name.endswith(("__main__", ".plugin")):
            continue
        module = importlib.import_module(info.name)
        classes += [
            c
            for c in vars(module).values()
            if inspect.isclass(c) and c.__module__ == module.__name__
        ]
    return classes


def _passes_through(function: object) -> bool:
    kinds = {p.kind for p in inspect.signature(function).parameters.values()}
    return {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD} <= kinds


def _accepts(ours: object, theirs: object) -> bool:
    """Whether a call verl makes with `theirs`'s parameters reaches `ours`."""
    try:
        mine = list(inspect.signature(ours).parameters.values())
        names = list(inspect.signature(theirs).parameters)
    except (TypeError, ValueError):
        return True  # properties, attributes
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in mine):
        return True
    return set(names) <= {p.name for p in mine}


def test_every_verl_method_the_package_overrides_is_listed_and_accepts_verls_call() -> None:
    members = {}  # verl class -> names listed as its attributes
    for t in contract.CONTRACT:
        if t.use == "attribute":
            members.setdefault(dotted(t.target), set()).update(t.params)
    unlisted, incompatible = set(), set()
    overridden = 0
    for cls in _package_classes():
        verl_bases = [b for b in cls.__mro__ if b.__module__.split(".")[0] in FOREIGN]
        listed = set().union(
            *(members.get(f"{b.__module__}.{b.__qualname__}", set()) for b in verl_bases)
        )
        for name, ours in vars(cls).items():
            if (name.startswith("__") and name != "__init__") or name == "_abc_impl":
                continue
            if name == "__init__" and _passes_through(ours):
                continue
            defined = [b for b in verl_bases if name in vars(b)]
            if not defined:
                overridden += bool(verl_bases and name in listed)  # e.g. trainer_mode
                continue
            overridden += 1
            owners = {f"{b.__module__}.{b.__qualname__}.{name}" for b in defined}
            if not owners & TARGETS and name not in listed:
                unlisted.add(f"{cls.__qualname__}.{name}")
            if name != "__init__" and not _accepts(ours, vars(defined[0])[name]):
                incompatible.add(f"{cls.__qualname__}.{name}")
    assert overridden > 25 and unlisted == set() and incompatible == set()


def test_a_drifted_verl_is_reported(monkeypatch) -> None:
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    monkeypatch.delattr(PPOTrainer, "_fetch_one_gen_batch")
    monkeypatch.setattr(ReplayBuffer, "_clear_groups", lambda self, partition, uids, why: None)
    problems = contract.broken("trainer")
    assert any("_fetch_one_gen_batch: missing" in p for p in problems)
    assert any("_clear_groups: parameters ['partition', 'uids', 'why']" in p for p in problems)
    with pytest.raises(RuntimeError, match="_fetch_one_gen_batch"):
        contract.require_trainer_contract()


def test_a_call_with_a_renamed_keyword_is_reported(monkeypatch) -> None:
    import transfer_queue

    monkeypatch.setattr(transfer_queue, "kv_batch_get", lambda keys, partition, fields=None: 0)
    (problem,) = [p for p in contract.broken() if "kv_batch_get" in p]
    assert (
        "unknown ['partition_id', 'select_fields']" in problem
        and "missing ['partition']" in problem
    )


def test_the_trainer_refuses_a_drifted_verl_before_building_anything(tmp_path, monkeypatch):
    import verl_fit_harness as harness
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    harness.make_model_dir(tmp_path / "model")
    train = harness.write_parquet(tmp_path / "train.parquet", harness.default_train_rows())
    val = harness.write_parquet(tmp_path / "val.parquet", harness.default_val_rows())
    config = harness.compose(tmp_path, tmp_path / "model", train, val)
    monkeypatch.delattr(PPOTrainer, "_fetch_one_gen_batch")
    with pytest.raises(RuntimeError, match=r"cannot run on this verl.*_fetch_one_gen_batch"):
        get_trainer_cls("exit")(config=config)


def test_a_verl_outside_the_tested_range_is_named() -> None:
    assert contract.installed_verl_version() in contract.TESTED_VERL
    assert contract.version_warning() is None
    for other in ("0.9.2", "0.10.0", "0.8.5"):
        message = contract.version_warning(other)
        assert message is not None and contract.TESTED_RANGE in message and other in message
