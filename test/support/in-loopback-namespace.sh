#!/bin/sh
# Runs a command in a private network namespace whose only interface is loopback, so nothing a test
# does (WebRTC candidates, mDNS, stray connections) can leave the machine.
# Root (CI) uses `unshare -n`; elsewhere an unprivileged user namespace (`unshare -rn`) is tried.
set -eu
if [ "${HANDOFF_IN_NETNS:-}" = 1 ]; then exec "$@"; fi
export HANDOFF_IN_NETNS=1
if unshare -n true 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$@"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
echo "in-loopback-namespace: cannot create a network namespace (need root or unprivileged user namespaces)" >&2
exit 1
