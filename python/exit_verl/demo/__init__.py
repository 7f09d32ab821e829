"""The CPU main job: `exit-verl demo`, `eval` and `compare`, through verl's trainer on CPU."""
