# Beckon image: builds librdkafka 2.8.0 the same way scripts/setup.sh does, then Beckon.
ARG SWIFT_IMAGE=swift:6.1-bookworm
FROM ${SWIFT_IMAGE} AS build
WORKDIR /build
COPY scripts ./scripts
RUN BECKON_SETUP_BUILD_ONLY=1 bash scripts/setup.sh
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN PKG_CONFIG_PATH=/build/.deps/librdkafka/lib/pkgconfig \
    swift build -c release --product beckon --static-swift-stdlib

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libpq5 libssl3 libsasl2-2 libzstd1 liblz4-1 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/beckon
COPY --from=build /build/.deps/librdkafka/lib/librdkafka.so.1 /opt/beckon/lib/
COPY --from=build /build/.build/release/beckon /opt/beckon/bin/beckon
COPY Schemas ./Schemas
COPY Rules ./Rules
ENV LD_LIBRARY_PATH=/opt/beckon/lib \
    BECKON_PATHS_RULES=/opt/beckon/Rules \
    BECKON_PATHS_SCHEMAS=/opt/beckon/Schemas
ENTRYPOINT ["/opt/beckon/bin/beckon"]
CMD ["run"]
