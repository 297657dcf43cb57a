#!/bin/sh
# Start dockerd in a container. With --privileged (Docker Desktop, a Linux laptop) it only needs a
# writable cgroup tree. Without it (this sandbox lacks CAP_SYS_RESOURCE, so --privileged fails) the node
# runs with every other capability and no seccomp/AppArmor, and this script remounts /sys read-write and
# mounts the cgroup v1 hierarchies dockerd expects: one per controller in /proc/cgroups, plus name=systemd.
set -eu

if [ -n "${LABKIT_DAEMON_JSON:-}" ]; then
  mkdir -p /etc/docker
  printf '%s\n' "$LABKIT_DAEMON_JSON" > /etc/docker/daemon.json
fi

mount -o remount,rw /sys 2>/dev/null || true
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  # cgroup v2 (a current host): move this process out of the root cgroup and hand every controller to
  # the children, as the official docker:dind image does.
  mkdir -p /sys/fs/cgroup/init
  echo $$ > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
else
  # cgroup v1: Docker gave the container a read-only view; a fresh writable tree replaces it. The old
  # one is unmounted, not only covered: runc (also BuildKit's) reads /proc/self/mountinfo and would take
  # a covered mount's root for the cgroup path ("bind mount source stat ... no such file").
  umount -R /sys/fs/cgroup 2>/dev/null || true
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  # /proc/cgroups: "name hierarchy num_cgroups enabled", after a header line.
  awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups | while read -r controller; do
    mkdir -p "/sys/fs/cgroup/$controller"
    mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller"
  done
  mkdir -p /sys/fs/cgroup/systemd
  mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
fi

exec "$@"
