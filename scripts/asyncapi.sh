#!/usr/bin/env bash
# The official AsyncAPI validator (@asyncapi/cli), for checking `prom-codegen asyncapi` output.
#
#   scripts/asyncapi.sh path            install the CLI if missing, print the path of its binary
#   scripts/asyncapi.sh validate FILE   install if missing, then `asyncapi validate FILE`
#
# The CLI is installed from npm with `npm install --prefix` into target/asyncapi (inside the
# build directory, so `cargo clean` drops it and it is never committed), once: a complete
# install is reused, a partial one is redone. Version 4.1.1 is pinned: it is the newest release
# that runs on Node 20 (5.x and later require Node 24), and a pinned validator keeps the tests'
# verdicts stable. Needs node and npm (installed with apt-get when missing).
#
# Environment:
#   PROM_ASYNCAPI_HOME   where to install (default: target/asyncapi in the repository)
# Callers that run the binary themselves (the tests) set ASYNCAPI_METRICS_CONFIG_PATH to
# $PROM_ASYNCAPI_HOME/analytics.json, as `validate` does.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
home=${PROM_ASYNCAPI_HOME:-$root/target/asyncapi}
package="@asyncapi/cli@4.1.1"
bin=$home/node_modules/.bin/asyncapi
stamp=$home/.installed-4.1.1
# The CLI sends usage metrics unless its config file says no (CI=true alone is not read by every
# command): a config of our own turns them off, so validating never reaches the network.
metrics_config=$home/analytics.json

die() {
  echo "asyncapi.sh: error: $*" >&2
  exit 1
}

install() {
  [[ -x $bin && -f $stamp ]] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "npm is missing and apt-get is not available: install Node.js 20 and npm"
    echo "asyncapi.sh: installing nodejs and npm with apt-get" >&2
    apt-get update -qq >&2 && apt-get install -y -qq nodejs npm >&2 || die "apt-get could not install nodejs and npm"
  fi
  echo "asyncapi.sh: installing $package into $home (once)" >&2
  marker='{"name":"prom-asyncapi-validator","private":true}'
  # Only a directory this script made is cleaned (PROM_ASYNCAPI_HOME may name any path).
  if [[ -d $home && -n $(ls -A "$home") && $(cat "$home/package.json" 2>/dev/null) != "$marker" ]]; then
    die "$home is not empty and was not made by this script: point PROM_ASYNCAPI_HOME at an empty directory"
  fi
  rm -rf "$home/node_modules" "$home/package-lock.json"
  mkdir -p "$home"
  # A package.json of its own, so npm does not walk up into the repository.
  echo "$marker" >"$home/package.json"
  npm install --prefix "$home" --no-audit --no-fund --loglevel=error "$package" >&2 \
    || die "npm could not install $package (is the npm registry reachable?)"
  [[ -x $bin ]] || die "$package installed, but $bin is missing"
  touch "$stamp"
}

no_metrics() {
  [[ -f $metrics_config ]] && return 0
  echo '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"prom-tests"}' >"$metrics_config"
}

case "${1:-}" in
  path)
    install
    no_metrics
    echo "$bin"
    ;;
  validate)
    shift
    [[ $# -ge 1 ]] || die "usage: scripts/asyncapi.sh validate FILE..."
    install
    no_metrics
    status=0
    for file in "$@"; do
      ASYNCAPI_METRICS_CONFIG_PATH=$metrics_config "$bin" validate --fail-severity=warn "$file" || status=1
    done
    exit "$status"
    ;;
  *)
    die "usage: scripts/asyncapi.sh path | validate FILE..."
    ;;
esac
