#!/usr/bin/env bash
# A pod-like sandbox, run as the first process of new user, network, mount and PID namespaces (see
# test_ray_head.py): one "pod IP" on the loopback device and a default route to it (so nothing leaves the network
# namespace and Ray picks that address as a pod would pick its own), every mount read-only (readOnlyRootFilesystem),
# size-limited tmpfs on /tmp and /dev/shm (the pod template's emptyDirs). Then it runs the given command.
set -euo pipefail
ip link set lo up
ip addr add 10.244.0.10/32 dev lo
ip route add default dev lo src 10.244.0.10
mount -o remount,bind,ro /
for d in $(findmnt -rn -o TARGET | grep -v -E '^/(proc|sys|dev)(/|$)' | sort -r); do mount -o remount,bind,ro "$d" 2>/dev/null || true; done
mount -t tmpfs -o size=3g,mode=1777 tmpfs /tmp
mount -t tmpfs -o size=1g,mode=1777 tmpfs /dev/shm
exec "$@"
