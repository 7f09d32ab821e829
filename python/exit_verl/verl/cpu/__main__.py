"""`python -m exit_verl.verl.cpu`: prints the CPU config overrides, one per line."""

from exit_verl.verl.cpu import main

main()
