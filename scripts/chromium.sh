#!/usr/bin/env bash
# Headless Chromium and the driver the topology-site test uses (playwright-core, no browser of its own).
#
#   scripts/chromium.sh path     install if missing, print the path of the chromium binary
#   scripts/chromium.sh driver   install if missing, print the node_modules directory holding
#                                playwright-core (for NODE_PATH)
#
# Chromium is Debian's package `chromium` (/usr/bin/chromium), installed with apt-get when missing.
# playwright-core is installed from npm with `npm install --prefix` into target/chromium (inside the
# build directory, so `cargo clean` drops it and it is never committed), once: a complete install
# is reused, a partial one is redone. playwright-core never downloads a browser: the test launches
# /usr/bin/chromium through `executablePath`. Version 1.49.1 is pinned (runs on Node 20) so the
# test's behaviour does not change under it.
#
# Environment:
#   PROM_CHROMIUM_HOME   where to install playwright-core (default: target/chromium in the repository)
#   PROM_CHROMIUM        the chromium binary (default: chromium on PATH, else /usr/bin/chromium)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
home=${PROM_CHROMIUM_HOME:-$root/target/chromium}
package="playwright-core@1.49.1"
stamp=$home/.installed-1.49.1
marker='{"name":"prom-chromium-driver","private":true}'

die() {
  echo "chromium.sh: error: $*" >&2
  exit 1
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "$* missing and apt-get is not available: install them by hand"
  echo "chromium.sh: installing $* with apt-get" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 \
    || die "apt-get could not install $*"
}

chromium_bin() {
  if [[ -n ${PROM_CHROMIUM:-} ]]; then
    [[ -x $PROM_CHROMIUM ]] || die "PROM_CHROMIUM=$PROM_CHROMIUM is not an executable"
    echo "$PROM_CHROMIUM"
    return
  fi
  if ! command -v chromium >/dev/null 2>&1 && [[ ! -x /usr/bin/chromium ]]; then
    apt_install chromium fonts-dejavu-core
  fi
  command -v chromium 2>/dev/null || echo /usr/bin/chromium
}

driver() {
  if [[ ! -f $stamp || ! -f $home/node_modules/playwright-core/package.json ]]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    # Only a directory this script made is cleaned (PROM_CHROMIUM_HOME may name any path).
    if [[ -d $home && -n $(ls -A "$home") && $(cat "$home/package.json" 2>/dev/null) != "$marker" ]]; then
      die "$home is not empty and was not made by this script: point PROM_CHROMIUM_HOME at an empty directory"
    fi
    echo "chromium.sh: installing $package into $home (once)" >&2
    rm -rf "$home/node_modules" "$home/package-lock.json"
    mkdir -p "$home"
    # A package.json of its own, so npm does not walk up into the repository.
    echo "$marker" >"$home/package.json"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$home" --no-audit --no-fund --loglevel=error "$package" >&2 \
      || die "npm could not install $package (is the npm registry reachable?)"
    [[ -f $home/node_modules/playwright-core/package.json ]] || die "$package installed, but its package.json is missing"
    touch "$stamp"
  fi
  echo "$home/node_modules"
}

case "${1:-}" in
  path) chromium_bin ;;
  driver) chromium_bin >/dev/null; driver ;;
  *) die "usage: scripts/chromium.sh path | driver" ;;
esac
