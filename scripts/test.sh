#!/usr/bin/env bash
# The test command: starts a private PostgreSQL (installing it when absent), builds, runs every test
# against it, and stops it again. Usage: scripts/test.sh [extra `swift test` arguments, e.g. --filter X]
set -euo pipefail
cd "$(dirname "$0")/.."

PGDIR=${CRM_SYNC_TEST_PGDIR:-.crm-sync/test-postgres}
export CRM_SYNC_PG_FAST=1          # fsync off: a test cluster is disposable
scripts/pg.sh ensure
URL=$(scripts/pg.sh start "$PGDIR")
trap 'scripts/pg.sh stop "$PGDIR" || true' EXIT
export CRM_SYNC_TEST_DATABASE_URL="$URL"

# The CRMs' and Standard Webhooks' official Python clients, for the fidelity tests (pinned versions).
VENV=${CRM_SYNC_TEST_VENV:-.crm-sync/venv}
if ! "$VENV/bin/python" -c 'import hubspot, simple_salesforce, standardwebhooks' 2>/dev/null; then
    echo "test: installing the official client libraries into $VENV (scripts/fidelity/requirements.txt)" >&2
    python3 -m venv "$VENV" || { echo "test: python3 -m venv failed: install python3-venv" >&2; exit 1; }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/fidelity/requirements.txt \
        || { echo "test: pip could not install scripts/fidelity/requirements.txt (is PyPI reachable?)" >&2; exit 1; }
fi
export CRM_SYNC_PYTHON="$PWD/$VENV/bin/python"

echo "test: building (a cold build of this stack takes several minutes on 2 cores)" >&2
swift build --build-tests
swift test --skip-build "$@"
