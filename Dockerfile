# syntax=docker/dockerfile:1
# The operator image: the release binary, the C runtime it links, CA certificates and a non-root
# user on an empty base. No shell, no package manager.
#   docker build -t changeorder-operator:0.1.0 .
# Without Docker, tests/tools/image.sh builds the same image (it runs the same
# tests/tools/image-rootfs.sh and reads the final stage below for the configuration;
# tests/it/image.rs checks the two agree). Multi-arch: docker buildx build --platform
# linux/amd64,linux/arm64 (image-rootfs.sh copies whatever libraries that platform's binary needs).

# The toolchain CI tests with, on the Debian release the project's machines run (bookworm). Pin
# by digest for a byte-stable base: --build-arg RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm@sha256:...
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm

FROM ${RUST_IMAGE} AS build
# ca-certificates is copied into the image; the crate graph uses rustls and ring, so no OpenSSL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Build the dependencies first, against stub sources, so they stay cached while only the
# workspace's own code changes. Every member's manifest is needed to load the workspace; only the
# operator and the cloud crate it uses are built (the simulator and the plugin never enter the
# image).
COPY Cargo.toml Cargo.lock ./
COPY crates/cloud/Cargo.toml crates/cloud/
COPY crates/sim/Cargo.toml crates/sim/
COPY crates/plugin/Cargo.toml crates/plugin/
RUN for d in . crates/cloud crates/sim crates/plugin; do \
        mkdir -p "$d/src" && echo 'fn main() {}' > "$d/src/main.rs" && touch "$d/src/lib.rs"; \
    done \
    && cargo build --release --locked -p changeorder-operator --bin changeorder-operator \
    && rm -rf src crates
COPY src ./src
COPY crates ./crates
COPY tests/tools/image-rootfs.sh /usr/local/bin/image-rootfs.sh
# `touch` so cargo rebuilds the crates themselves, not the stubs' cached artefacts.
RUN touch src/main.rs src/lib.rs crates/cloud/src/lib.rs \
    && cargo build --release --locked -p changeorder-operator --bin changeorder-operator \
    && image-rootfs.sh /rootfs target/release/changeorder-operator

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="changeorder-operator" \
      org.opencontainers.image.description="Mirrors EDAS, SAE and Yunxiao AppStack change orders into Kubernetes custom resources" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# The chart's securityContext runs as the same uid (distroless's `nonroot`).
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/changeorder-operator"]
CMD ["run"]
