#!/usr/bin/env bash
# Checks the Prometheus files with promtool (Debian: apt-get install prometheus): the scrape
# config and its rule files, and the alerting rules' unit tests (alerts.test.yml).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found (apt-get install prometheus)" >&2
  exit 1
fi
promtool check config prometheus.yml
promtool test rules alerts.test.yml
