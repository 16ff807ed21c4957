"""The aicash policy pack: `pulumi preview --policy-pack infra/policy` (rules in `rules.py`)."""
