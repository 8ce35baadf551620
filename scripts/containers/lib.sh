# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables below are used by the sourcing scripts
# Shared helpers for scripts/containers/{setup,build-images,teardown}.
# Sourced, never executed. Defines the state layout; prints nothing on stdout.

SMTPC_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
SMTPC_PODMAN_DIR=${SMTPC_PODMAN_DIR:-$SMTPC_REPO/.cache/podman}
mkdir -p "$SMTPC_PODMAN_DIR"
SMTPC_PODMAN_DIR=$(cd "$SMTPC_PODMAN_DIR" && pwd -P)
DIR=$SMTPC_PODMAN_DIR

# Volatile state (storage runroot, libpod tmp_dir) belongs under /run, one
# directory per state dir so that two state dirs never share lock files.
SMTPC_HASH=$(printf %s "$DIR" | sha256sum | cut -c1-12)
RUNDIR=/run/smtpc-podman/$SMTPC_HASH

# A unix socket path must fit in sun_path (108 bytes): fall back to RUNDIR.
SOCK=$DIR/podman.sock
if [ "${#SOCK}" -gt 100 ]; then
    SOCK=$RUNDIR/podman.sock
fi
CONTAINERS_CONF_FILE=$DIR/containers.conf
STORAGE_CONF_FILE=$DIR/storage.conf
PIDFILE=$DIR/service.pid
SERVICE_LOG=$DIR/service.log

log() { printf '%s: %s\n' "${SMTPC_PROG:-containers}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# as_root CMD...: run CMD as root (directly, or through sudo when available).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root for: $*"; fi
}

# service_answers: true when the API socket answers GET /_ping with OK.
service_answers() {
    [ -S "$SOCK" ] || return 1
    if command -v curl >/dev/null 2>&1; then
        [ "$(curl -s --max-time 3 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = OK ]
    else
        python3 - "$SOCK" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
sys.exit(0 if data.split(b"\r\n\r\n", 1)[-1].strip() == b"OK" else 1)
EOF
    fi
}

# service_pid: print the pid from PIDFILE if that process is our podman service.
service_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    # Only a podman "system service" on our socket counts (pids get reused).
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "system service .*unix://$SOCK" || return 1
    echo "$pid"
}

# Export the podman configuration for the podman CLI used by these scripts.
export CONTAINERS_CONF=$CONTAINERS_CONF_FILE
export CONTAINERS_STORAGE_CONF=$STORAGE_CONF_FILE
