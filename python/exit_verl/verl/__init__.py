"""exit_verl.verl: ExIt inside verl's PPO/GRPO trainer — the only package that imports verl.

Entry point: `python -m exit_verl.main_ppo <verl overrides> exit.enable=true`. Pieces:
`controller.ExItController` (curriculum ↔ verl batches and rewards, checkpoint state),
`trainer.exit_trainer_class` (verl's trainer with ExIt mixed in), `runner` (verl's `run_ppo`
with our task runner) and `validation` (multi-step self-improvement during validation).
See docs/verl.md.
"""
