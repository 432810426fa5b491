# syntax=docker/dockerfile:1
# parity-operator: one image for the operator (`parity-operator`, the operator alone; the
# chart runs it) and every workload it runs (`parity kms`, `parity bootstrap`, `parity
# dashboard`).
#   docker build -t parity-operator:dev .        (BuildKit, the default since Docker 23)
# Not built in this repository's CI (no Docker engine there); `make kind-up` builds it.

# Build stage: the Rust toolchain. Cache mounts keep the registry and target directory
# between builds, so only changed crates recompile.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin parity --bin parity-operator \
 && install -m 0755 target/release/parity target/release/parity-operator /

# Final stage: distroless with glibc and CA certificates, no shell, no package manager,
# running as the nonroot user (65532) that the pod security contexts also name.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /parity /usr/local/bin/parity
COPY --from=build /parity-operator /usr/local/bin/parity-operator
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/parity"]
CMD ["operator"]
