"""`exit.*` settings checked in the driver of `python -m verl.trainer.main_ppo`, before Ray.

verl's driver (`main`: `auto_set_device`, `validate_config`, `run_ppo` → `ray.init`) calls no
plugin code with the composed config. The one plugin code that runs in the driver before it
is our `verl.plugins` entry point, loaded by `import verl` while Python imports
`verl.trainer.main_ppo`. When that process was started as verl's PPO entry point with
an ExIt mode on the command line (`trainer.v1.trainer_mode=exit` or
`trainer.v1.trainer_mode=exit_colocate_async`), the entry point composes verl's config from
the same command line (hydra's compose API over `verl.trainer.config`) and runs
`exit_settings`, the check `ExItTrainer.__init__` repeats inside the task runner. A bad
setting then ends the process with the message before Ray starts, and a verl outside the
tested range is named in a warning (`contract.version_warning`). Runs that choose their
primary config with `--config-name`/`--config-path`/`--config-dir`, or set the mode in a YAML
file, are checked by the trainer only.
"""

from __future__ import annotations

import os
import sys

from exit_verl.verl.mode import TRAINER_MODES

MODE_KEY = "trainer.v1.trainer_mode"
MODE_OVERRIDES = frozenset(f"{MODE_KEY}={mode}" for mode in TRAINER_MODES)
VERL_MODULE = "verl.trainer.main_ppo"
VERL_SCRIPT = os.path.join("verl", "trainer", "main_ppo.py")
# hydra flags after which nothing is trained (print the config, help, ...) or another primary
# config is composed (then the trainer's check is the only one).
_FLAGS_NO_CHECK = (
    "--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--version",
    "--shell-completion", "-sc", "--config-name", "-cn", "--config-path", "-cp",
    "--config-dir", "-cd",
)  # fmt: skip


def verl_main_arguments(orig_argv: list[str]) -> list[str] | None:
    """The arguments after `-m verl.trainer.main_ppo` (or its script path), else None.

    `sys.orig_argv` is read because `sys.argv[0]` is still "-m" while `python -m` imports the
    module's parent packages, which is when `import verl` loads this entry point."""
    skip = False
    for i, arg in enumerate(orig_argv[1:], start=1):
        if skip or arg in ("-X", "-W"):  # interpreter options that take a value
            skip = not skip
            continue
        if arg == "-m":
            return orig_argv[i + 2 :] if orig_argv[i + 1 : i + 2] == [VERL_MODULE] else None
        if arg == "-c" or not arg.startswith("-"):
            is_verl = os.path.normpath(arg).endswith(VERL_SCRIPT)
            return orig_argv[i + 1 :] if is_verl else None
    return None


def command_line_overrides(orig_argv: list[str]) -> list[str] | None:
    """The hydra overrides of an exit-mode `verl.trainer.main_ppo` command line, else None."""
    args = verl_main_arguments(orig_argv)
    if args is None:
        return None
    if not MODE_OVERRIDES & {a.lstrip("+") for a in args}:
        return None
    overrides: list[str] = []
    for arg in args:
        if arg.split("=", 1)[0] in _FLAGS_NO_CHECK:
            return None
        if not arg.startswith("-"):  # --resolve, --multirun, ... compose the same config
            overrides.append(arg)
    return overrides


def check_command_line(orig_argv: list[str]) -> None:
    """SystemExit with the message when the exit-mode command line has a bad setting."""
    overrides = command_line_overrides(orig_argv)
    if overrides is None:
        return
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module("verl.trainer.config", version_base=None):
            config = compose("ppo_trainer", overrides=overrides)
    except (HydraException, OmegaConfBaseException):
        return  # not ours to report: hydra names the bad override itself when main() composes
    from exit_verl.verl.contract import version_warning
    from exit_verl.verl.settings import exit_settings

    warning = version_warning()
    if warning is not None:
        print(f"exit-verl: warning: {warning}", file=sys.stderr)
    try:
        exit_settings(config)
    except (ValueError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise SystemExit(f"exit-verl: bad ExIt setting, nothing was started: {message}") from None


def check_this_process() -> None:
    check_command_line(list(sys.orig_argv))
