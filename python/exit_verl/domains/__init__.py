"""The paper's task domains: data, environment and reward, each with no verl import.

`exit_verl.domains.math` is math with verifiable answers (the final `\\boxed{}` answer checked
by math-verify); `exit_verl.domains.bfcl` is multi-turn tool use on BFCL's multi-turn entries;
`exit_verl.domains.mle` is machine-learning engineering in MLE-bench's shape, with solutions run
in a sandbox. The verl wiring of each domain (reward function, agent loop, dataset rows) lives
in `exit_verl.verl`. Importing this package imports no domain.
"""
