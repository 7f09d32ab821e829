"""`python -m exit_verl.main_ppo <verl overrides> exit.enable=true`: verl's PPO/GRPO with ExIt.

The config is verl's own `ppo_trainer` plus our `exit` group (exit_verl/verl/config). With
`exit.enable=false` the `exit` node is dropped and verl's `main_ppo.main` runs unchanged;
with `exit.enable=true` verl's `run_ppo` runs with our task runner, whose trainer is verl's
own trainer class extended by `exit_verl.verl.trainer`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, open_dict


@hydra.main(config_path="verl/config", config_name="exit_ppo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    if not config.exit.enable:
        from verl.trainer.main_ppo import main as verl_main

        with open_dict(config):
            del config["exit"]
        verl_main(config)  # hydra passes an already composed config straight through
        return
    from exit_verl.verl.runner import run_exit_ppo

    run_exit_ppo(config)


if __name__ == "__main__":
    main()
