# Shared by the scripts/ensure_*.sh scripts (sourced, not run): install Debian packages as root, quietly, and say
# in one line why not when that cannot be done. Nothing here fails the build.

# can_install WHO MISSING CONSEQUENCE: true when running as root with apt-get; otherwise says why nothing is installed.
can_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$1: $2 and no root apt-get to install them; $3"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
}

# quietly WHO WHAT CONSEQUENCE COMMAND...: runs the command with its output in a log; on failure, says so with the
# log's last lines.
quietly() {
    who=$1 what=$2 consequence=$3
    shift 3
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        echo "$who: apt-get could not install $what (last lines below); $consequence"
        tail -n 5 "$log"
    fi
    rm -f "$log"
}
