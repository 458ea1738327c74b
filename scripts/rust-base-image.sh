#!/usr/bin/env bash
# Makes a stand-in for the Dockerfile's build-stage base image, docker.io/library/rust:1-slim-bookworm,
# on a machine that reaches no container registry, and prints its name on stdout (nothing else):
#   buildah --storage-driver vfs bud --isolation chroot \
#     --build-arg RUST_IMAGE="$(scripts/rust-base-image.sh)" -t wasmkafka .
# It is made as the official one is (rust-lang/docker-rust, bookworm/slim): a Debian bookworm
# root (debootstrap --variant=minbase from deb.debian.org, with the bookworm, -updates and
# -security suites debian:bookworm-slim lists), then ca-certificates, gcc, libc6-dev and, for a
# moment, wget; rustup-init (checksum pinned) installs the minimal profile of the toolchain in
# /usr/local/rustup and /usr/local/cargo. The toolchain is this machine's (`rustc --version`), so
# Cargo.lock and --locked behave in the container as here; --rust VERSION picks another.
# Behind a TLS-inspecting proxy: when SSL_CERT_FILE names a bundle, the image's downloads (wget,
# rustup, cargo) trust it too (SSL_CERT_FILE and CARGO_HTTP_CAINFO point at a copy in
# /usr/local/share/wasmkafka-rust-base/); the system bundle, which the Dockerfile copies into the
# image, stays Debian's. `SSL_CERT_FILE= scripts/rust-base-image.sh` trusts Debian's alone.
# Tag: localhost/wasmkafka-rust-base:<version>-bookworm, in buildah's vfs storage (STORAGE_DRIVER
# picks another). An image already there is kept (it is a cache): `buildah rmi TAG` to make it anew.
# Needs root (debootstrap), buildah, and debootstrap (installed with apt-get when missing).
#   scripts/rust-base-image.sh [--rust VERSION]
set -euo pipefail
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# rustup-init as rust-lang/docker-rust pins it (its bookworm/slim Dockerfile).
RUSTUP_VERSION=1.28.2
RUSTUP_SHA256=20a06e644b0d9bd2fbdbfd52d42540bdde820ea7df86e92e533c073da0cdd43c

say() { echo "rust-base-image: $*" >&2; }
die() { say "$*"; exit 1; }

rust=
while [ $# -gt 0 ]; do
  case "$1" in
    --rust) rust=$2; shift 2 ;;
    *) die "unknown argument $1; usage: scripts/rust-base-image.sh [--rust VERSION]" ;;
  esac
done
if [ -z "$rust" ]; then
  command -v rustc >/dev/null || die "no rustc here to take the version from: pass --rust VERSION"
  rust=$(rustc --version | awk '{ print $2 }')
fi
case "$rust" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) die "Rust version '$rust' is not x.y.z" ;;
esac
tag=localhost/wasmkafka-rust-base:$rust-bookworm

command -v buildah >/dev/null || die "buildah is not installed (Debian: apt-get install buildah)"
bah() { buildah --storage-driver "${STORAGE_DRIVER:-vfs}" "$@"; }

if bah inspect --type image "$tag" >/dev/null 2>&1; then
  say "$tag is already there (buildah rmi it to make it anew)"
  echo "$tag"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "making $tag needs root (debootstrap makes a Debian root)"
if ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || die "debootstrap is not installed, and there is no apt-get to install it"
  say "installing debootstrap (apt-get)"
  apt-get install -y --no-install-recommends debootstrap >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends debootstrap >&2; }
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/rust-base-image.XXXXXX")
cleanup() {
  # debootstrap mounts /proc and /sys in the root while it works: never delete through them.
  grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

say "making $tag: Debian bookworm (minbase) from $MIRROR into $work/rootfs"
debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >&2
root=$work/rootfs
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Nothing of this machine's in the image: the container gets its own names and resolver.
: >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root/debootstrap"
trust=
if [ -n "${SSL_CERT_FILE:-}" ]; then
  [ -f "$SSL_CERT_FILE" ] || die "SSL_CERT_FILE=$SSL_CERT_FILE is not a file"
  say "the image's downloads also trust $SSL_CERT_FILE (SSL_CERT_FILE)"
  trust=/usr/local/share/wasmkafka-rust-base/ca-certificates.crt
  install -D -m 644 "$SSL_CERT_FILE" "$root$trust"
fi
tar --numeric-owner --xattrs -C "$root" -cf "$work/rootfs.tar" .
rm -rf --one-file-system "$root"

# The official Dockerfile's steps, on that root instead of debian:bookworm-slim (whose PATH
# comes first); wget is told of the extra bundle, since Debian's (GnuTLS) reads no SSL_CERT_FILE.
{
  echo "FROM scratch"
  echo "ADD rootfs.tar /"
  echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  [ -z "$trust" ] || echo "ENV SSL_CERT_FILE=$trust CARGO_HTTP_CAINFO=$trust"
} >"$work/Containerfile"
cat >>"$work/Containerfile" <<'EOF'
ARG RUST_VERSION
ARG RUSTUP_VERSION
ARG RUSTUP_SHA256
LABEL org.opencontainers.image.description="a stand-in for docker.io/library/rust:1-slim-bookworm made by wasmkafka's scripts/rust-base-image.sh"
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH \
    RUST_VERSION=${RUST_VERSION}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev wget; \
    rustArch=x86_64-unknown-linux-gnu; \
    wget ${SSL_CERT_FILE:+--ca-certificate="$SSL_CERT_FILE"} "https://static.rust-lang.org/rustup/archive/${RUSTUP_VERSION}/${rustArch}/rustup-init"; \
    echo "${RUSTUP_SHA256} *rustup-init" | sha256sum -c -; \
    chmod +x rustup-init; \
    ./rustup-init -y --no-modify-path --profile minimal --default-toolchain $RUST_VERSION --default-host ${rustArch}; \
    rm rustup-init; \
    chmod -R a+w $RUSTUP_HOME $CARGO_HOME; \
    rustup --version; \
    cargo --version; \
    rustc --version; \
    apt-get remove -y --auto-remove wget; \
    rm -rf /var/lib/apt/lists/*
CMD ["bash"]
EOF
say "installing Rust $rust in it (rustup-init $RUSTUP_VERSION from static.rust-lang.org)"
bah bud --isolation "${BUILDAH_ISOLATION:-chroot}" \
  --build-arg RUST_VERSION="$rust" \
  --build-arg RUSTUP_VERSION="$RUSTUP_VERSION" \
  --build-arg RUSTUP_SHA256="$RUSTUP_SHA256" \
  -t "$tag" -f "$work/Containerfile" "$work" >&2
say "made $tag"
echo "$tag"
