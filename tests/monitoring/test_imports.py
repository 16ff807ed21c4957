"""`aicash --help` must stay fast: Evidently (~2.5 s to import) is loaded only when a report runs."""

from __future__ import annotations

import subprocess
import sys


def test_cli_and_monitoring_modules_do_not_import_evidently() -> None:
    code = ("import sys, aicash.cli.main, aicash.cli.monitor, aicash.monitoring.drift, monitoring.drift_job, "
            "monitoring.drift_report, aicash.monitoring.alerts, aicash.monitoring.canary; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'evidently', 'plotly'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
