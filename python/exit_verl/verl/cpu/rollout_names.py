"""Names under which the transformers rollout is registered with verl (no heavy imports)."""

ROLLOUT_NAME = "transformers"
ADAPTER = "exit_verl.verl.cpu.rollout.TransformersServerAdapter"
