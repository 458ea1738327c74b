#!/usr/bin/env bash
# Builds the release archives of the `wasmkafka` binary, one per target:
#   DIR/wasmkafka-<version>-<target>.tar.gz   the binary, README.md, LICENSE (when the repository
#                                             has one), completions/ (bash, zsh, fish) and man/
#                                             (one page per command), in wasmkafka-<version>-<target>/
#   DIR/SHA256SUMS                            `sha256sum -c SHA256SUMS` checks every archive
# Targets: x86_64-unknown-linux-gnu (this machine's glibc) and x86_64-unknown-linux-musl (static,
# with mimalloc), the latter when its rustup target and musl-gcc are installed (scripts/setup.sh
# adds them); without them the script says so and builds glibc only, unless musl was asked for
# with --target. Completions and man pages come from each archive's own binary (`wasmkafka
# completions`, `wasmkafka man`). Archives are reproducible: sorted entries, owner 0, every
# mtime SOURCE_DATE_EPOCH (default: the last commit's time), gzip without a name or time.
#   scripts/release.sh [--out DIR] [--profile PROFILE] [--target TRIPLE]...
#   (default: --out target/dist --profile release, both targets)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

GNU=x86_64-unknown-linux-gnu
MUSL=x86_64-unknown-linux-musl
out=
profile=release
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    *) echo "release: unknown argument $1; usage: scripts/release.sh [--out DIR] [--profile PROFILE] [--target TRIPLE]..." >&2; exit 2 ;;
  esac
done

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
out=${out:-$target_dir/dist}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

# Why the musl build cannot be made here, or nothing when it can.
musl_missing() {
  if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$MUSL" ]; then
    echo "the rustup target $MUSL is not installed (rustup target add $MUSL)"
  elif ! command -v musl-gcc >/dev/null; then
    echo "musl-gcc is not installed (Debian: apt install musl-tools); the C parts (zstd, lz4, ring, mimalloc) need it"
  fi
}

if [ ${#targets[@]} -eq 0 ]; then
  targets=("$GNU")
  reason=$(musl_missing)
  if [ -z "$reason" ]; then
    targets+=("$MUSL")
  else
    echo "release: NO MUSL BUILD: $reason" >&2
  fi
fi

# The directory cargo puts a profile's binaries in.
profile_dir() {
  case "$1" in
    dev | test) echo debug ;;
    bench) echo release ;;
    *) echo "$1" ;;
  esac
}

mkdir -p "$out"
archives=()
for target in "${targets[@]}"; do
  case "$target" in
    "$GNU")
      # The host's own target without --target: the same build directory as `cargo build`
      # and scripts/bench.sh, so nothing is compiled twice.
      cargo build --locked --profile "$profile" -p wasmkafka --bin wasmkafka
      binary=$target_dir/$(profile_dir "$profile")/wasmkafka ;;
    "$MUSL")
      reason=$(musl_missing)
      [ -z "$reason" ] || { echo "release: cannot build $MUSL: $reason" >&2; exit 1; }
      cargo build --locked --profile "$profile" -p wasmkafka --bin wasmkafka --target "$MUSL"
      binary=$target_dir/$MUSL/$(profile_dir "$profile")/wasmkafka ;;
    *) echo "release: unsupported target $target (supported: $GNU, $MUSL)" >&2; exit 2 ;;
  esac

  version=$("$binary" --version | awk '{ print $2 }')
  name=wasmkafka-$version-$target
  staging=$(mktemp -d)
  trap 'rm -rf "$staging"' EXIT
  mkdir -p "$staging/$name/completions" "$staging/$name/man"
  cp "$binary" "$staging/$name/wasmkafka"
  cp README.md "$staging/$name/"
  [ ! -f LICENSE ] || cp LICENSE "$staging/$name/"
  "$binary" completions bash >"$staging/$name/completions/wasmkafka.bash"
  "$binary" completions zsh >"$staging/$name/completions/_wasmkafka"
  "$binary" completions fish >"$staging/$name/completions/wasmkafka.fish"
  "$binary" man --out-dir "$staging/$name/man"

  tar --create --directory "$staging" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@$SOURCE_DATE_EPOCH" --format=gnu "$name" | gzip -9 -n >"$out/$name.tar.gz"
  rm -rf "$staging"
  trap - EXIT
  archives+=("$name.tar.gz")
  echo "release: $out/$name.tar.gz"
done

(cd "$out" && sha256sum "${archives[@]}" >SHA256SUMS)
echo "release: $out/SHA256SUMS"
