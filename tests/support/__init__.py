"""Helpers shared by the tests, one module per concern; fixtures stay in the conftest.py files, which import from
here. No test imports from a conftest.py.

- `net`: free loopback ports, whether something listens on one
- `service`: a home prepared for the inference service, its process environment, `aicash serve` as a subprocess
- `smtp`: a mailbox for a real SMTP server (aiosmtpd)
- `kfp_api`: a real HTTP server answering the KFP REST calls `kfp.Client` makes
- `monitoring`, `training`, `signals`, `features`, `registry`, `infra`: test data and helpers of those areas
- `docs`: the commands, Kubernetes objects and files quoted in README.md and the site's pages, docs/**/*.md
- `postgres`: which tests use a PostgreSQL server (the `postgres` marker)
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
