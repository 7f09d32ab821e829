"""`python -m exit_verl.main_ppo <verl overrides> exit.enable=true`: verl's PPO/GRPO with ExIt.

The config is verl's own `ppo_trainer` plus our `exit` group (exit_verl/verl/config). With
`exit.enable=false` the `exit` node is dropped and verl's `main_ppo.main` runs unchanged;
with `exit.enable=true` verl's `run_ppo` runs with our task runner, whose trainer is verl's
own trainer class extended by `exit_verl.verl.trainer`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="verl/config", config_name="exit_ppo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    from exit_verl.verl.runner import run  # verl is imported only inside exit_verl.verl

    run(config)


if __name__ == "__main__":
    main()
