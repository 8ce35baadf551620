# shellcheck shell=bash
# Where scripts/servers keeps what it downloads (sourced by lib.sh and install, never executed).
# $SMTP_SERVERS_CACHE if set; else, as root, /var/cache/smtp-conformance/servers; else
# ${XDG_CACHE_HOME:-$HOME/.cache}/smtp-conformance/servers. Never inside the checkout: Exim re-executes
# itself as Debian-exim and OpenSMTPD's helpers run as its own users, so a cache under a 0700 parent
# (a checkout in /root or in a `mktemp -d` folder) would not be reachable by them.
srv_default_cache() {
    if [[ -n ${SMTP_SERVERS_CACHE:-} ]]; then
        echo "$SMTP_SERVERS_CACHE"
    elif [[ $(id -u) == 0 ]]; then
        echo /var/cache/smtp-conformance/servers
    else
        echo "${XDG_CACHE_HOME:-$HOME/.cache}/smtp-conformance/servers"
    fi
}
