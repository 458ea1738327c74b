#!/usr/bin/env bash
# Renders the policy lab's report for the README's `--report` example and screenshots it in
# headless Chromium (scripts/setup.sh installs it): docs/lab-report.png, or the path given.
# WASMKAFKA=path/to/wasmkafka uses that binary; otherwise a release build is made.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-docs/lab-report.png}")"
command -v chromium >/dev/null ||
  { echo "lab-screenshot: chromium not found; scripts/setup.sh installs it" >&2; exit 1; }
bin="${WASMKAFKA:-}"
if [ -z "$bin" ]; then
  cargo build --locked --release -p wasmkafka --bin wasmkafka
  bin="${CARGO_TARGET_DIR:-target}/release/wasmkafka"
fi
bin="$(realpath "$bin")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# The README's line, word for word (the report shows it as the command that reproduces it).
"$bin" assign-sim --members 10 --topics orders:64,audit:8 --racks 3 \
    --step "join 2" --step "crash m003" --step "grow orders:96" \
    --assignor range --assignor cooperative-sticky --report lab.html >/dev/null
mkdir -p "$(dirname "$out")"
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$work/profile" --window-size=1280,1700 \
  --screenshot="$out" "file://$work/lab.html" 2>/dev/null
test -s "$out"
echo "lab-screenshot: wrote $out"
