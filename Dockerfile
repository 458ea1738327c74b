# A small image of the static musl build, on `scratch`: the binary, the CA certificates (TLS to
# brokers whose certificate a public CA signed) and an empty /tmp, nothing else.
#   docker build -t wasmkafka .    (or `buildah bud -t wasmkafka .`: the base image's name is
#   written in full, since buildah and podman refuse short names unless registries.conf lists
#   search registries)
#   docker run --rm --network host wasmkafka run --brokers 127.0.0.1:9092 --topic events
# The build stage makes the release archive with scripts/release.sh, as a release does, and the
# image takes the binary out of that archive (host/tests/packaging.rs runs these commands).
# A machine that reaches no container registry passes `--build-arg RUST_IMAGE=...`: a stand-in
# for the rust image that scripts/rust-base-image.sh makes from Debian's and Rust's own servers.

ARG RUST_IMAGE=docker.io/library/rust:1-slim-bookworm
FROM ${RUST_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN scripts/release.sh --target x86_64-unknown-linux-musl --out /dist
RUN mkdir -p /image/tmp /image/etc/ssl/certs \
    && chmod 1777 /image/tmp \
    && tar -xzf /dist/wasmkafka-*-x86_64-unknown-linux-musl.tar.gz -C /image \
        --strip-components=1 --wildcards '*/wasmkafka' \
    && cp /etc/ssl/certs/ca-certificates.crt /image/etc/ssl/certs/

FROM scratch
COPY --from=build /image /
# Nobody's ids: the consumer needs no privileges. The plugin compile cache goes to /tmp.
USER 65534:65534
ENV HOME=/tmp
ENTRYPOINT ["/wasmkafka"]
CMD ["--help"]
