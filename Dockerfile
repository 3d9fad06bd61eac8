# One image for every program of the stack; docker-compose.yml and the Kubernetes
# manifests pick the command. Build on Debian 12, run on debian:12-slim as a non-root user.
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev \
      libjansson-dev libsodium-dev libmicrohttpd-dev libjemalloc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQP_WITH_TESTS=OFF \
 && cmake --build /build -j"$(nproc)"

FROM debian:12-slim
# curl: the container health check asks the program's own /readyz.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libzmq5 libczmq4 libprotobuf-c1 \
      libhiredis0.14 libjansson4 libsodium23 libmicrohttpd12 libjemalloc2 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /opt/qp --shell /usr/sbin/nologin qp
COPY --from=build /build/services/qp-* /build/partners/qp-partner-* /build/tools/qp-* \
     /usr/local/bin/
COPY data /opt/qp/data
WORKDIR /opt/qp
# Probes and metrics on 9100 in every container (GET /healthz, /readyz, /metrics).
ENV QP_DATA_DIR=/opt/qp/data \
    QP_HTTP=0.0.0.0:9100
EXPOSE 9100
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9100/readyz >/dev/null || exit 1
CMD ["qp-bus", "--help"]
