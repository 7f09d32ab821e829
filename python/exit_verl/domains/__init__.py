"""The paper's task domains: data, environment and reward, with no verl import.

`exit_verl.domains.bfcl` is multi-turn tool use on BFCL's multi-turn entries. The verl wiring
of each domain (agent loop, dataset rows) lives in `exit_verl.verl`.
"""
