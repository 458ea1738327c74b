#!/usr/bin/env bash
# Builds the Python plugins (plugins/python/*/app.py, tests/python-plugins/*/app.py) as Wasm
# components with componentize-py: <target>/python-plugins/<folder>.wasm. Each app.py names
# its world on its first line (`# world: assignor-plugin` or `# world: reset-policy-plugin`).
# A component newer than its app.py and wit/plugin.wit is kept.
#   COMPONENTIZE_PY=path/to/componentize-py scripts/build-python-plugins.sh
# Without COMPONENTIZE_PY, the one scripts/setup.sh installs (~/.cache/wasmkafka/python/).
set -euo pipefail
cd "$(dirname "$0")/.."
tool="${COMPONENTIZE_PY:-}"
if [ -z "$tool" ]; then
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/wasmkafka/python"
    tool=$(ls -d "$cache"/componentize-py-*/bin/componentize-py 2>/dev/null | sort -V | tail -n 1 || true)
fi
[ -x "$tool" ] || { echo "no componentize-py: run scripts/setup.sh, or set COMPONENTIZE_PY" >&2; exit 1; }
out="${CARGO_TARGET_DIR:-target}/python-plugins"
mkdir -p "$out"
for app in plugins/python/*/app.py tests/python-plugins/*/app.py; do
    dir=$(dirname "$app")
    name=$(basename "$dir")
    world=$(sed -n '1s/^# world: //p' "$app")
    [ -n "$world" ] || { echo "$app: the first line must name the world (# world: ...)" >&2; exit 1; }
    wasm="$out/$name.wasm"
    if [ -f "$wasm" ] && [ "$wasm" -nt "$app" ] && [ "$wasm" -nt wit/plugin.wit ]; then
        continue
    fi
    "$tool" -d wit -w "$world" componentize -p "$dir" app -o "$wasm.part" >/dev/null
    mv "$wasm.part" "$wasm"
    echo "built $wasm"
done
