# The signaling server as a container image: built in a Rust image, shipped in an empty one holding
# only the binary, the libraries it links and an unprivileged user (scripts/image-rootfs).
#
#   docker build -t signaling-server .
#   docker run --rm -p 8080:8080 signaling-server
#
# Every option is also an environment variable (SIGNALING_*; docs/deploy.md lists them).

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p signaling-server \
    && scripts/image-rootfs target/release/signaling-server /rootfs

FROM scratch
COPY --from=build /rootfs /
USER 65532:65532
ENV SIGNALING_LISTEN=0.0.0.0:8080
EXPOSE 8080
# SIGTERM: /readyz turns 503 for --drain-delay, clients are told to reconnect, then the server exits.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/signaling-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/signaling-server"]
