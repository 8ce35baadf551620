# shellcheck shell=bash
# Common code for scripts/servers/NAME (sourced, never executed).
#
# Every server script has the same interface:
#   NAME start PORT STATEDIR   start on 127.0.0.1:PORT, state under STATEDIR,
#                              return once a "220 " greeting was read
#   NAME stop STATEDIR         stop it and all its children (idempotent)
#   NAME check                 exit 0 if installed, 3 (with a hint) if not
#
# Process tracking: each server is started as the leader of its own session
# (setsid), or is a daemon that makes itself one (Postfix's master). We record
# the leader's pid and its start time (so a recycled pid is never killed) in
# STATEDIR/NAME.pid and STATEDIR/NAME.starttime; stop signals every process of
# that session: TERM, then KILL after STOP_GRACE seconds.

set -euo pipefail

SERVERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SERVERS_DIR/../.." && pwd)
# The cache (unpacked Exim/OpenSMTPD, node_modules) lives outside the checkout: servers that drop root
# re-execute or read from it, so it must be reachable by their users whatever the checkout's parents are.
# shellcheck source=scripts/servers/cache.sh
source "$SERVERS_DIR/cache.sh"
# shellcheck disable=SC2034 # used by the scripts that source this file
CACHE=$(srv_default_cache)
START_TIMEOUT=${SMTP_SERVERS_START_TIMEOUT:-30}
STOP_GRACE=${SMTP_SERVERS_STOP_GRACE:-4}

# Names shared by every configuration.
# shellcheck disable=SC2034
LOCAL_DOMAIN=example.test
# shellcheck disable=SC2034
SERVER_HOSTNAME=mx.example.test
# SMTP_SERVERS_ANY_LOCAL_PART=1: Postfix, Exim and OpenSMTPD accept every local part of example.test (not
# only user and postmaster), each stored in the one Maildir: the "any-local-part domain" setup where a
# store per recipient keeps one copy for each accepted recipient (issue 11, finding 14).
# shellcheck disable=SC2034
ANY_LOCAL_PART=${SMTP_SERVERS_ANY_LOCAL_PART:-}

srv_usage() {
    cat >&2 <<EOF
usage: ${SRV_NAME} start PORT STATEDIR
       ${SRV_NAME} stop STATEDIR
       ${SRV_NAME} check
EOF
    exit 2
}

# srv_main NAME "$@": parse the command line, then call the script's
# srv_installed / srv_start / srv_stop_extra functions.
srv_main() {
    SRV_NAME=$1
    shift
    local action=${1:-}
    case $action in
    start)
        [[ $# -eq 3 ]] || srv_usage
        PORT=$2
        if ! [[ $PORT =~ ^[0-9]{1,5}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
            echo "$SRV_NAME: bad port: $PORT" >&2
            exit 2
        fi
        PORT=$((10#$PORT))
        STATEDIR=$(realpath -m -- "$3")
        # It ends up unquoted in several servers' config files.
        if ! [[ $STATEDIR =~ ^[A-Za-z0-9._/+@%,=-]+$ ]]; then
            echo "$SRV_NAME: STATEDIR may only contain letters, digits and ._/+@%,=-: $STATEDIR" >&2
            exit 2
        fi
        srv_require_installed
        srv_do_start
        ;;
    stop)
        [[ $# -eq 2 ]] || srv_usage
        STATEDIR=$(realpath -m -- "$2")
        srv_do_stop
        ;;
    check)
        [[ $# -eq 1 ]] || srv_usage
        srv_require_installed
        ;;
    *) srv_usage ;;
    esac
}

srv_require_installed() {
    local why
    if ! why=$(srv_installed 2>&1); then
        echo "$SRV_NAME: not installed (${why:-missing files}); run: scripts/servers/install $SRV_NAME" >&2
        exit 3
    fi
}

# --- process bookkeeping ---------------------------------------------------

srv_pidfile() { echo "$STATEDIR/$SRV_NAME.pid"; }

# Start time of a process in clock ticks since boot (field 22 of stat).
proc_starttime() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    [[ $1 != Z ]] || return 1 # a zombie is as good as gone
    echo "${20}"
}

srv_record_leader() { # PID
    local st
    st=$(proc_starttime "$1") || return 1
    echo "$1" >"$(srv_pidfile)"
    echo "$st" >"$STATEDIR/$SRV_NAME.starttime"
}

# Print the recorded leader pid if that very process is still alive.
srv_leader_alive() {
    local pf pid st now
    pf=$(srv_pidfile)
    [[ -s $pf ]] || return 1
    pid=$(<"$pf")
    st=$(cat "$STATEDIR/$SRV_NAME.starttime" 2>/dev/null) || return 1
    now=$(proc_starttime "$pid") || return 1
    [[ $now == "$st" ]] || return 1
    echo "$pid"
}

# Live (non-zombie) processes of session SID started no earlier than TICKS.
srv_session_members() { # SID TICKS
    local pid sid stat st
    while read -r pid sid stat; do
        [[ $sid == "$1" && $stat != Z* ]] || continue
        st=$(proc_starttime "$pid") || continue
        ((st >= $2)) && echo "$pid"
    done < <(ps -eo pid=,sid=,stat=)
    return 0
}

srv_do_stop() {
    local pf sid st members deadline
    pf=$(srv_pidfile)
    if [[ -s $pf ]]; then
        sid=$(<"$pf")
        st=$(cat "$STATEDIR/$SRV_NAME.starttime" 2>/dev/null || echo 0)
        members=$(srv_session_members "$sid" "$st")
        if [[ -n $members ]]; then
            # shellcheck disable=SC2086
            kill -TERM $members 2>/dev/null || true
            deadline=$((SECONDS + STOP_GRACE))
            while members=$(srv_session_members "$sid" "$st") && [[ -n $members ]] && ((SECONDS < deadline)); do
                sleep 0.1
            done
            if [[ -n $members ]]; then
                # shellcheck disable=SC2086
                kill -KILL $members 2>/dev/null || true
                deadline=$((SECONDS + 3))
                while members=$(srv_session_members "$sid" "$st") && [[ -n $members ]] && ((SECONDS < deadline)); do
                    sleep 0.1
                done
            fi
        fi
        rm -f "$pf" "$STATEDIR/$SRV_NAME.starttime"
    fi
    if declare -F srv_stop_extra >/dev/null; then srv_stop_extra; fi
    return 0
}

# srv_spawn LOGFILE CMD...: run CMD in the background as leader of a new
# session, stdin from /dev/null, stdout+stderr to LOGFILE (so callers that
# capture our output never wait for the daemon), and record it.
srv_spawn() {
    local log=$1 tmp
    shift
    tmp="$STATEDIR/.$SRV_NAME.spawn"
    rm -f "$tmp"
    # bash -c writes its own pid (the one setsid gave a new session, whether
    # or not setsid had to fork) and then becomes CMD.
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0.new" && mv "$0.new" "$0" && exec "$@"' "$tmp" "$@" \
        </dev/null >>"$log" 2>&1 &
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s $tmp ]] && break
        sleep 0.05
    done
    [[ -s $tmp ]] || srv_fail "could not spawn $1" "$log"
    srv_record_leader "$(<"$tmp")" || srv_fail "$1 exited at once" "$log"
    rm -f "$tmp"
}

# --- start helpers -----------------------------------------------------------

srv_do_start() {
    local pid
    if pid=$(srv_leader_alive); then
        echo "$SRV_NAME: already running from $STATEDIR (pid $pid); stop it first" >&2
        exit 1
    fi
    rm -f "$(srv_pidfile)" "$STATEDIR/$SRV_NAME.starttime"
    srv_require_port_free "$PORT"
    mkdir -p -- "$STATEDIR"
    # Daemons that drop root must be able to enter it (mktemp -d makes 0700):
    # add search permission only, nothing else changes.
    chmod a+x "$STATEDIR"
    mkdir -p "$STATEDIR/log"
    srv_start
}

srv_port_in_use() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

srv_require_port_free() {
    if srv_port_in_use "$1"; then
        echo "$SRV_NAME: port $1 is already in use:" >&2
        ss -Hltnp "sport = :$1" >&2 || true
        exit 1
    fi
}

# Read the greeting once; print its last line ("220 ..." when all is well).
srv_banner_once() { # PORT
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        while IFS= read -r -t 10 line <&3; do
            line=${line%$'\r'}
            case $line in
            220-*) continue ;;
            *)
                printf '%s\n' "$line"
                printf 'QUIT\r\n' >&3 || true
                exit 0
                ;;
            esac
        done
        exit 1
    ) 2>/dev/null
}

# srv_wait_banner PORT LOGFILE...: wait until a "220 " line is read from
# 127.0.0.1:PORT, or fail (stop what was started, show the logs, exit 1).
srv_wait_banner() {
    local port=$1 line deadline
    shift
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! srv_leader_alive >/dev/null; then
            srv_fail "server exited before greeting on port $port" "$@"
        fi
        if line=$(srv_banner_once "$port"); then
            case $line in
            "220 "*) return 0 ;;
            *) srv_fail "unexpected greeting on port $port: $line" "$@" ;;
            esac
        fi
        sleep 0.2
    done
    srv_fail "no 220 greeting on 127.0.0.1:$port after ${START_TIMEOUT}s" "$@"
}

# srv_wait_port PORT LOGFILE...: wait until something accepts on the port.
srv_wait_port() {
    local port=$1 deadline
    shift
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        srv_leader_alive >/dev/null || srv_fail "server exited before listening on port $port" "$@"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    srv_fail "nothing listening on 127.0.0.1:$port after ${START_TIMEOUT}s" "$@"
}

# srv_fail MESSAGE LOGFILE...: report, show log tails, clean up, exit 1.
srv_fail() {
    local msg=$1 f
    shift
    echo "$SRV_NAME: $msg" >&2
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f ---" >&2
        tail -n 30 "$f" >&2
    done
    srv_do_stop >/dev/null 2>&1 || true
    exit 1
}

# srv_require_reachable USER DIR: daemons that drop root must be able to
# search every directory down to DIR (not true under pytest's tmp_path,
# /tmp/pytest-of-root being mode 0700, or under /root).
srv_require_reachable() {
    local user=$1 dir=$2 d path=""
    if setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups test -x "$dir" 2>/dev/null; then
        return 0
    fi
    IFS=/ read -ra parts <<<"${dir#/}"
    for d in "${parts[@]}"; do
        path="$path/$d"
        if ! setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups test -x "$path" 2>/dev/null; then
            break
        fi
    done
    if [[ $dir == "$STATEDIR" ]]; then
        cat >&2 <<EOF
$SRV_NAME: STATEDIR $dir is not reachable by user '$user', which this server
runs or delivers as ($path: $(stat -c '%U:%G %A' "$path" 2>/dev/null)).
Use a STATEDIR whose parent directories are world-searchable, e.g. one made
by: mktemp -d /tmp/smtp-XXXXXX   (pytest's tmp_path is not: /tmp/pytest-of-root is 0700)
EOF
    else
        echo "$SRV_NAME: $dir is not reachable by user '$user' ($path: $(stat -c '%U:%G %A' "$path" 2>/dev/null))" >&2
    fi
    exit 1
}

# srv_make_maildir DIR [OWNER]: Maildir with cur/new/tmp, owned by OWNER.
srv_make_maildir() {
    mkdir -p "$1/cur" "$1/new" "$1/tmp"
    if [[ -n ${2:-} ]]; then
        chown "$2:$(id -gn "$2")" "$1" "$1/cur" "$1/new" "$1/tmp"
    fi
}
