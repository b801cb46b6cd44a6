#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what is missing, then runs every test.
# README's second command and .ci/run both call exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install Rust 1.95 with rustup first" >&2
  exit 2
fi

# The MongoDB backend is an opt-in feature of prom-runtime (its driver adds ~40 s of build and
# TLS/DNS dependencies library users without MongoDB should not pay for); CI builds, lints and
# tests it explicitly, with the README snippets that need it (tests/readme).
features=(--features prom-runtime/mongo,prom-readme-tests/mongo)

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked "${features[@]}" -- -D warnings
# Without the optional features too, so the non-MongoDB branches compile and lint clean.
echo "== cargo clippy (default features)"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The workspace unifies features (examples/monitor turns `mongo` on), so the runtime's own
# defaults (`cli`, `serve`, no `mongo`) are linted on their own.
echo "== cargo clippy (prom-runtime default features, no mongo)"
cargo clippy -p prom-runtime --all-targets --locked -- -D warnings
# The runtime as generated code uses it: no macros, no CLI, no YAML loader.
echo "== cargo clippy (prom-runtime without default features)"
cargo clippy -p prom-runtime --lib --locked --no-default-features -- -D warnings
# The OpenTelemetry feature is opt-in (off in the workspace runs above): linted on its own, with
# the README snippets marked `<!-- snippet: otel -->` (compiled by prom-readme-tests).
echo "== cargo clippy (prom-runtime with otel)"
cargo clippy -p prom-runtime --all-targets --locked --features otel -- -D warnings
cargo clippy -p prom-readme-tests --lib --locked --features otel -- -D warnings
echo "== mongod (scripts/mongo.sh)"
log=$(mktemp)
# A state directory of our own: other runs on this machine keep their own mongod.
export PROM_MONGO_STATE
PROM_MONGO_STATE=$(mktemp -d)
trap 'scripts/mongo.sh stop || true; rm -rf "$log" "$PROM_MONGO_STATE"' EXIT
PROM_MONGO_URL=$(scripts/mongo.sh start)
# The tests fail (never skip) when this server is missing or unreachable.
export PROM_MONGO_URL PROM_REQUIRE_MONGO=1
# The failover test starts a three-member replica set of its own (`scripts/mongo.sh start3`, in
# its own state directory) and SIGKILLs its primary three times (~2-3 min).
export PROM_MONGO_RS3=1
# The access-control test starts a mongod of its own with `--auth` (`scripts/mongo.sh
# start-auth`) and runs prom as an application account without dbAdmin (~10 s).
export PROM_MONGO_AUTH=1
# The disk-full test mounts a 2 MiB tmpfs in a user namespace of its own (`unshare -rm`); here
# it fails instead of skipping when the kernel does not allow that.
export PROM_REQUIRE_TMPFS=1
# The AsyncAPI test validates with the official @asyncapi/cli (installed into target/asyncapi
# once, from npm); here it fails instead of skipping when the validator cannot be installed.
echo "== asyncapi validator (scripts/asyncapi.sh)"
scripts/asyncapi.sh path >/dev/null || echo "warning: scripts/asyncapi.sh could not install the validator; the AsyncAPI test will fail"
export PROM_REQUIRE_ASYNCAPI=1
# The topology-site test loads every page in Debian's headless Chromium (apt-get) through
# playwright-core (npm, into target/chromium); here it fails instead of skipping without them.
echo "== headless Chromium (scripts/chromium.sh)"
{ scripts/chromium.sh path && scripts/chromium.sh driver; } >/dev/null || echo "warning: scripts/chromium.sh could not install Chromium; the site test will fail"
export PROM_REQUIRE_CHROMIUM=1
# The generated alert rules are checked with `promtool` (Debian's `prometheus` package).
echo "== promtool (scripts/promtool.sh)"
bash scripts/promtool.sh >/dev/null || echo "warning: scripts/promtool.sh could not install promtool; the alert-rules test will fail"
export PROM_REQUIRE_PROMTOOL=1
echo "== cargo test"
set +e
cargo test --workspace --locked --no-fail-fast "${features[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The `otel` feature's tests (the real SDK's in-memory exporter, `prom` exporting over OTLP),
# counted in the same closing line; either run failing fails the script.
echo "== cargo test (prom-runtime with otel)"
cargo test -p prom-runtime --locked --features otel --test otel 2>&1 | tee -a "$log"
otel_status=${PIPESTATUS[0]}
if [ "$status" -eq 0 ]; then status=$otel_status; fi
set -e
# One closing line for the whole run: cargo prints one `test result` line per test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
