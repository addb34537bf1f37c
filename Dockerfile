# One image for every nvdra program (nvdra-controller, nvdra-agent kubelet-plugin and
# compute-domain-daemon), as NVIDIA ships one image for its driver. Both stages install their
# Debian packages with the project's own script; nothing else is downloaded.
#   docker build -t REGISTRY/nvdra:TAG .
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DNVDRA_BENCH=OFF \
 && ninja -C /build nvdra-agent nvdra-controller \
 && strip /build/bin/nvdra-agent /build/bin/nvdra-controller

FROM debian:bookworm-slim
COPY scripts/install-deps.sh /usr/local/share/nvdra/
RUN /usr/local/share/nvdra/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/bin/nvdra-agent /build/bin/nvdra-controller /usr/local/bin/
# The controller runs as this user (manifests/deploy); the kubelet plugin runs privileged as root.
USER 65532:65532
ENTRYPOINT []
CMD ["nvdra-controller", "--help"]
