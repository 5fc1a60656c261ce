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

echo "test: building (a cold build of this stack takes several minutes on 2 cores)" >&2
swift build --build-tests
swift test --skip-build "$@"
