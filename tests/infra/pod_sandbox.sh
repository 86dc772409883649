#!/usr/bin/env bash
# Pod-like sandboxes for test_ray_head.py, without privilege: user, network, mount and PID namespaces (`unshare`).
#
#   pod_sandbox.sh head IP COMMAND...    first pod: creates a veth pair (v0 here, v1 for the second pod), every
#                                        mount read-only (readOnlyRootFilesystem), tmpfs on /tmp and /dev/shm
#   pod_sandbox.sh worker IP COMMAND...  second pod, in its own network and mount namespaces: waits until v1 is
#                                        moved in, then its own tmpfs on /tmp and /dev/shm (mounts stay read-only)
#
# Each pod gets IP on its veth end and a default route through it, so Ray picks that address as a pod picks its
# own; no interface leads out of the sandbox. The tmpfs mounts stand for the pod template's emptyDirs.
set -euo pipefail
# This checkout, which the tmpfs on /tmp below would hide where it lives under /tmp (CI's clone may).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
role=$1 ip=$2
shift 2
ip link set lo up
if [ "$role" = head ]; then
  ip link add v0 type veth peer name v1
  dev=v0
  mount -o remount,bind,ro /
  for d in $(findmnt -rn -o TARGET | grep -v -E '^/(proc|sys|dev)(/|$)' | sort -r); do
    mount -o remount,bind,ro "$d" 2>/dev/null || true
  done
else
  dev=v1
  for _ in $(seq 600); do ip link show v1 >/dev/null 2>&1 && break; sleep 0.1; done
fi
ip addr add "$ip/24" dev "$dev"
ip link set "$dev" up
ip route add default dev "$dev"
exec 3<"$repo"  # the checkout, still reachable through this descriptor once a tmpfs covers /tmp
mount -t tmpfs -o size=3g,mode=1777 tmpfs /tmp
case "$repo" in
  /tmp/*)
    mkdir -p "$repo"
    mount --no-canonicalize --bind /proc/self/fd/3 "$repo"  # not resolved to the path the tmpfs now covers
    mount -o remount,bind,ro "$repo"
    ;;
esac
exec 3<&-
mount -t tmpfs -o size=1g,mode=1777 tmpfs /dev/shm
exec "$@"
