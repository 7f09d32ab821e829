"""The name of verl trainer mode that runs ExIt (`trainer.v1.trainer_mode=exit`)."""

TRAINER_MODE = "exit"
