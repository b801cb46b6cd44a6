#!/usr/bin/env bash
# What a build costs a user: cold (empty target directory) and warm (after touching src/main.rs)
# `cargo build` of examples/monitor and of the crate README.md's "Use Prom in your crate" section
# describes, the latter as the README writes it (`default-features = false`) and with prom's
# default features. Prints a Markdown table; run it on an otherwise idle machine for figures to
# compare (it says how many cores it had and how loaded the machine was).
#
# The README crate is written from the README's `<!-- file: PATH -->` blocks, with the
# prom-runtime/prom-codegen `version = "..."` replaced by `path = "<this checkout>/<crate>"` and
# this workspace's Cargo.lock copied in, as tests/readme/tests/fresh_crate.rs does. Builds are
# `--offline`: the dependencies must already be in cargo's cache (any earlier build of the
# workspace fetched them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/prom-build-cost.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Writes the README crate into $1; with $2 = default, prom's default features stay on.
readme_crate() {
  local dir=$1 features=$2
  mkdir -p "$dir"
  awk -v dir="$dir" '
    match($0, /^<!-- file: [^ ]+ -->$/) { path = substr($0, 12, length($0) - 15); next }
    /^```/ && path != "" && out == "" { out = dir "/" path; system("mkdir -p \"$(dirname \"" out "\")\""); printf "" > out; next }
    /^```$/ && out != "" { close(out); out = ""; path = ""; next }
    out != "" { print >> out; next }
    { path = "" }
  ' README.md
  for file in Cargo.toml build.rs src/main.rs specs/orders.yaml; do
    [[ -f "$dir/$file" ]] || { echo "error: README.md has no <!-- file: $file --> block" >&2; exit 2; }
  done
  sed -i -E "s#^(prom-(runtime|codegen)) = \\{ version = \"[^\"]*\"#\\1 = { path = \"$root/\\1\"#" "$dir/Cargo.toml"
  if [[ $features == default ]]; then
    sed -i -E 's/^(prom-(runtime|codegen) = .*), default-features = false/\1/' "$dir/Cargo.toml"
  fi
  cp Cargo.lock "$dir/Cargo.lock"
}

# Seconds a command took, to one decimal.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; echo "error: $* failed" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }'
}

# One table row: cold and warm build of the package in $2 (a directory with Cargo.toml).
measure() {
  local label=$1 dir=$2 package=$3 main=$4 target="$work/target-$RANDOM"
  local crates cold warm
  crates=$(cd "$dir" && cargo tree --offline -e normal --prefix none -p "$package" | sed 's/ (\*)$//' | sort -u | wc -l)
  cold=$(cd "$dir" && seconds env CARGO_TARGET_DIR="$target" cargo build --offline -p "$package")
  touch "$main"
  warm=$(cd "$dir" && seconds env CARGO_TARGET_DIR="$target" cargo build --offline -p "$package")
  rm -rf "$target"
  printf '| %s | %s | %s s | %s s |\n' "$label" "$crates" "$cold" "$warm"
}

readme_crate "$work/orders" no-default
readme_crate "$work/orders-default" default

echo "$(date -u +%Y-%m-%d) on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; $(rustc --version)"
echo
echo "| build (debug) | crates in \`cargo tree -e normal\` | cold | warm (touch main.rs) |"
echo "|---|---|---|---|"
measure "README crate, \`default-features = false\` (as written)" "$work/orders" orders "$work/orders/src/main.rs"
measure "README crate, prom's default features" "$work/orders-default" orders "$work/orders-default/src/main.rs"
measure "\`examples/monitor\` (\`mongo\` feature)" "$root" prom-example-monitor "$root/examples/monitor/src/main.rs"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
