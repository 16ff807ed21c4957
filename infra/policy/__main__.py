"""Entry point the Pulumi CLI runs for `--policy-pack infra/policy`; it serves the rules until stopped.

Pulumi runs this folder as a script, so `rules` imports as a top-level module here.
"""

from pulumi_policy import PolicyPack
from rules import POLICIES

PolicyPack(name="aicash-production-hygiene", policies=POLICIES)
