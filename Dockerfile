# syntax=docker/dockerfile:1
# The operator as a static musl binary on distroless/static: no shell, no libc, non-root.
#   docker build -t changeorder-operator .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 (each platform's build stage
# runs natively or under emulation and produces that platform's musl binary).

# The toolchain CI tests with; Cargo.lock may need newer than the crate's rust-version.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# musl-dev for the static C runtime; the crate graph uses rustls and ring, so no OpenSSL.
RUN apk add --no-cache musl-dev
WORKDIR /src
# Build the dependencies first, against stub sources, so they stay cached while only the
# operator's own code changes.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
# `touch` so cargo rebuilds the crate itself, not the stubs' cached artefacts.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/changeorder-operator /changeorder-operator \
    && ! ldd /changeorder-operator 2>/dev/null | grep -q '=>'

FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.title="changeorder-operator" \
      org.opencontainers.image.description="Mirrors EDAS, SAE and Yunxiao AppStack change orders into Kubernetes custom resources" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /changeorder-operator /changeorder-operator
# distroless's nonroot user; the chart's securityContext runs as the same uid.
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/changeorder-operator"]
CMD ["run"]
