# Shared helpers for guest/build.sh and its steps (sourced, not run).

log() { printf '[guest] %s\n' "$*" >&2; }
die() { printf '[guest] error: %s\n' "$*" >&2; GUEST_DIED=1; exit 1; }

# Any other failing command under set -e gets one clear line too.
GUEST_DIED=0
on_exit() {
    local rc=$?
    if [ "$rc" != 0 ] && [ "$GUEST_DIED" = 0 ]; then
        printf '[guest] error: build stopped (exit %s) near line %s of %s\n' "$rc" "${GUEST_LINE:-?}" "${GUEST_FILE:-build.sh}" >&2
    fi
}
trap on_exit EXIT
trap 'GUEST_LINE=$LINENO GUEST_FILE=${BASH_SOURCE[0]}' ERR

# run_logged LOGFILE CMD...: run a noisy command with its output in LOGFILE;
# on failure show the log's tail so the cause is visible without digging.
run_logged() {
    local logfile=$1; shift
    if ! "$@" >>"$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        die "command failed: $* (full log: $logfile)"
    fi
}

# Installed version of a Debian package, else the candidate apt would install,
# else "unknown" (empty apt lists).
pkg_version() {
    local v
    v=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null || true)
    case "$v" in
        installed\ *) printf '%s\n' "${v#installed }"; return ;;
    esac
    v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
    if [ -z "$v" ] || [ "$v" = "(none)" ]; then v=unknown; fi
    printf '%s\n' "$v"
}

sha_of() { sha256sum "$@" | awk '{print $1}'; }

# check_fragment FRAGMENT CONFIG: every CONFIG_X=v line must be in CONFIG verbatim,
# every "# CONFIG_X is not set" line must not be set there.
check_fragment() {
    local fragment=$1 config=$2 line name missing=0
    while IFS= read -r line; do
        case "$line" in
            CONFIG_*=*)
                if ! grep -qxF "$line" "$config"; then
                    name=${line%%=*}
                    printf '[guest]   wanted %s, got: %s\n' "$line" \
                        "$(grep -E "^(# )?$name[= ]" "$config" || echo 'absent')" >&2
                    missing=1
                fi ;;
            "# CONFIG_"*" is not set")
                name=${line#\# }; name=${name%% *}
                if grep -q "^$name=" "$config"; then
                    printf '[guest]   wanted %s off, got: %s\n' "$name" "$(grep "^$name=" "$config")" >&2
                    missing=1
                fi ;;
        esac
    done <"$fragment"
    [ "$missing" = 0 ] || die "options of $(basename "$fragment") did not survive in $config"
}
