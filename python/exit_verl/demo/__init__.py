"""The CPU main job: tasks, model, GRPO update, training loop, plots, comparison."""
