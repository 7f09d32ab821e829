"""`python -m exit_verl.main_ppo <verl overrides>`: verl's `main_ppo` in trainer mode "exit".

A convenience over the stock command `python -m verl.trainer.main_ppo
trainer.v1.trainer_mode=exit ...`: it composes verl's own `ppo_trainer` config, sets the mode
to "exit" unless the command line names one (e.g. "exit_colocate_async"), checks the `exit.*`
keys (the same `exit_settings` the trainer applies) before verl's `main` starts Ray, then hands
the composed config to verl's `main`, which runs unchanged.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from exit_verl.verl.mode import TRAINER_MODE, TRAINER_MODES

MODE_KEY = "trainer.v1.trainer_mode"


def with_exit_mode(argv: list[str]) -> list[str]:
    """`argv` plus the exit mode override, unless it already sets the mode."""
    if any(a.lstrip("+~").split("=", 1)[0] == MODE_KEY for a in argv):
        return argv
    return [*argv, f"{MODE_KEY}={TRAINER_MODE}"]


@hydra.main(config_path="pkg://verl.trainer.config", config_name="ppo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    from verl.trainer.main_ppo import main as verl_main

    if config.trainer.v1.trainer_mode in TRAINER_MODES:
        from exit_verl.verl.contract import warn_if_untested
        from exit_verl.verl.settings import exit_settings

        warn_if_untested()
        exit_settings(config)  # ValueError naming the setting, before Ray starts
    verl_main(config)  # hydra hands an already composed config straight to verl's main


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *with_exit_mode(sys.argv[1:])]
    main()
