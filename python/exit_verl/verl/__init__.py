"""exit_verl.verl: ExIt as a trainer mode of stock verl — the only package that imports verl.

`pip install "exit-verl[verl]"` registers the `verl.plugins` entry point `exit_verl.verl.plugin`;
then `python -m verl.trainer.main_ppo trainer.v1.trainer_mode=exit +exit.preset=exit ...`
runs ExIt (`trainer.ExItTrainer`). Pieces: `settings` (the `exit.*` keys), `controller`
(curriculum ↔ verl batches and rows), `rows` (verl's TransferQueue rows), `prompt_budget`,
`replay_buffer`, `checkpoint_files`, `validation`. See docs/verl.md.

Importing this package imports nothing from verl (the entry point must keep `import verl`
cheap).
"""
