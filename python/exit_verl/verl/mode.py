"""The names of the verl trainer modes that run ExIt (standard library only: the entry point
imports this)."""

TRAINER_MODE = "exit"
ASYNC_TRAINER_MODE = "exit_colocate_async"
# Each ExIt mode and the verl mode whose loop it runs (what verl's base class is told).
TRAINER_MODES = {TRAINER_MODE: "sync", ASYNC_TRAINER_MODE: "colocate_async"}
