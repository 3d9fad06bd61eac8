# One image for every program of the stack; docker-compose.yml picks the command.
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev \
      libjansson-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQP_WITH_TESTS=OFF \
 && cmake --build /build -j"$(nproc)"

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libzmq5 libczmq4 libprotobuf-c1 \
      libhiredis0.14 libjansson4 libsodium23 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /opt/qp --shell /usr/sbin/nologin qp
COPY --from=build /build/services/qp-* /build/partners/qp-partner-* /build/tools/qp-* \
     /usr/local/bin/
COPY data /opt/qp/data
WORKDIR /opt/qp
ENV QP_DATA_DIR=/opt/qp/data
USER qp
CMD ["qp-bus", "--help"]
