"""The `exit.enable` switch, and verl's PPO driver with the ExIt trainer.

`run` hands `exit.enable=false` to verl's own `main_ppo.main` untouched. With ExIt,
`verl.trainer.main_ppo.run_ppo` takes the task runner class as an argument (verl's hook for
recipes); ours does what verl's v1 runner does — start TransferQueue, build the trainer, the
agent loop manager and fit — with the trainer class from `exit_trainer_class`.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict


def run(config: DictConfig) -> None:
    """`exit.enable=false`: verl's own main on verl's config; otherwise `run_exit_ppo`."""
    if not config.exit.enable:
        from verl.trainer.main_ppo import main as verl_main

        with open_dict(config):
            del config["exit"]
        verl_main(config)  # hydra passes an already composed config straight through
        return
    run_exit_ppo(config)


def _runner_class():
    import ray

    @ray.remote
    class ExItTaskRunner:
        def run(self, config: DictConfig) -> None:
            import transfer_queue as tq
            from verl.trainer.ppo.v1 import AgentLoopManagerTQ
            from verl.utils.import_utils import load_class_from_fqn
            from verl.utils.logging_utils import configure_verl_logging

            from exit_verl.verl.trainer import exit_trainer_class

            configure_verl_logging()
            trainer_cls = exit_trainer_class(config.trainer.v1.trainer_mode)
            config.transfer_queue.enable = True
            OmegaConf.resolve(config)
            tq.init(config.transfer_queue)
            trainer = None
            succeeded = False
            try:
                trainer = trainer_cls(config=config)
                trainer.init()
                fqn = config.actor_rollout_ref.rollout.get("agent", {}).get(
                    "agent_loop_manager_class"
                )
                manager_cls = (
                    load_class_from_fqn(fqn, "AgentLoopManager") if fqn else AgentLoopManagerTQ
                )
                manager = manager_cls.create(
                    config=config,
                    llm_client=trainer.get_llm_client(),
                    teacher_client=trainer.get_teacher_client(),
                    reward_loop_worker_handles=trainer.get_reward_handles(),
                )
                trainer.fit(manager)
                succeeded = True
            finally:
                try:
                    tracking = getattr(trainer, "logger", None)
                    if tracking is not None:
                        tracking.finish(exit_code=0 if succeeded else 1)
                finally:
                    tq.close()

    return ExItTaskRunner


def run_exit_ppo(config: DictConfig) -> None:
    """verl's main_ppo preamble (device, validation) then run_ppo with the ExIt runner."""
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    from exit_verl.verl.controller import exit_config_from

    exit_config_from(config.exit)  # fail fast on a bad exit.* value, before Ray starts
    if not config.trainer.get("use_v1", True):
        raise ValueError("ExIt plugs into verl's v1 trainer: set trainer.use_v1=true")
    auto_set_device(config)
    validate_config(
        config=config,
        use_reference_policy=need_reference_policy(config),
        use_critic=need_critic(config),
    )
    run_ppo(config, task_runner_class=_runner_class())
