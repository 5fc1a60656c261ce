# Build and run crm-sync in a container. The image carries sql/, Mappings/ and scripts/ beside the
# binary, which finds them through CRM_SYNC_HOME.
FROM swift:6.1-bookworm AS build
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product crm-sync

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libcurl4 libxml2 tzdata curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/lib/swift/linux/*.so* /usr/lib/swift/linux/
COPY --from=build /src/.build/release/crm-sync /usr/local/bin/crm-sync
COPY sql /opt/crm-sync/sql
COPY Mappings /opt/crm-sync/Mappings
COPY scripts /opt/crm-sync/scripts
COPY examples /opt/crm-sync/examples
ENV CRM_SYNC_HOME=/opt/crm-sync LD_LIBRARY_PATH=/usr/lib/swift/linux
WORKDIR /opt/crm-sync
USER nobody
ENTRYPOINT ["crm-sync"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
