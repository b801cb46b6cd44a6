#!/usr/bin/env bash
# Installs `promtool` (Debian's `prometheus` package) when it is missing, for the alert-rule
# tests (`PROM_REQUIRE_PROMTOOL=1 cargo test -p prom-codegen --test alerts`).
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "promtool is missing; install Debian's prometheus package as root (apt-get install prometheus)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Only the tools are needed: do not start the Prometheus service the package ships.
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null
