#!/usr/bin/env bash
# Renders the HTML report of the demo data in headless Chromium and saves a screenshot, to look at
# the charts the way a manager's browser shows them. Usage: scripts/report-screenshot.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.crm-sync/report.png}
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk >/dev/null
    else
        echo "report-screenshot: chromium is not installed (apt-get install chromium)" >&2
        exit 1
    fi
fi
swift build --product crm-sync >&2
.build/debug/crm-sync demo >/dev/null
.build/debug/crm-sync report html --out .crm-sync/report.html
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,2000 \
    --screenshot="$OUT" "file://$PWD/.crm-sync/report.html" 2>/dev/null
echo "report-screenshot: $OUT"
