# A Docker engine node: Debian's docker.io in a container (Docker-in-Docker), run by labkit/node.py.
# SUITE=bookworm gives Engine 20.10 (this machine's), SUITE=trixie Engine 26 (BuildKit, containerd store).
ARG SUITE=bookworm
FROM debian:${SUITE}-slim
# trixie splits the CLI (docker-cli) from the engine; buildx and compose are packages there too.
ARG EXTRA_PACKAGES=""
# iptables: dockerd's bridge networking; the rest of docker.io's recommends (git, xz) are not needed.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       docker.io iptables ca-certificates procps $EXTRA_PACKAGES \
    && rm -rf /var/lib/apt/lists/*
# Without --privileged /proc/sys is read-only: Engine 26 cannot turn IPv6 off on a container's interface
# and says to set this (IPv4-only networks work the same).
ENV DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
COPY dind-entrypoint.sh /usr/local/bin/dind-entrypoint
ENTRYPOINT ["/usr/local/bin/dind-entrypoint"]
# The TCP socket listens on the node's own loopback: only containers sharing its network reach it.
# A private cgroup namespace per container: with the host's (cgroup v1) runc cannot mount the node's tree.
CMD ["dockerd", "--host=unix:///var/run/docker.sock", "--host=tcp://127.0.0.1:2375", "--default-cgroupns-mode=private"]
