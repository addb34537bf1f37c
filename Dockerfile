# One image for every nvdra program (nvdra-controller, nvdra-agent kubelet-plugin and
# compute-domain-daemon), as NVIDIA ships one image for its driver. Its files are exactly what
# scripts/image-rootfs.sh puts together: the programs and the shared libraries they load, taken
# from Debian's packages. `make image` builds the same image without a container engine (a test
# checks that both use the script alone). Nothing else is downloaded.
#   docker build -t REGISTRY/nvdra:TAG .
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DNVDRA_BENCH=OFF \
 && ninja -C /build nvdra-agent nvdra-controller

# The root filesystem: the runtime packages are installed here so that ldd and dpkg find each
# library's package; the script copies exactly those libraries out of the packages.
FROM debian:bookworm AS rootfs
COPY scripts/install-deps.sh scripts/rootfs-lib.sh scripts/image-rootfs.sh /usr/local/share/nvdra/
RUN /usr/local/share/nvdra/install-deps.sh --image
COPY --from=build /build/bin/nvdra-agent /build/bin/nvdra-controller /nvdra-bin/
RUN /usr/local/share/nvdra/image-rootfs.sh /rootfs /var/cache/nvdra-debs /nvdra-bin

FROM scratch
COPY --from=rootfs /rootfs /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The controller runs as this user (manifests/deploy); the kubelet plugin runs privileged as root.
USER 65532:65532
CMD ["nvdra-controller", "--help"]
