# Busybox step (sourced by build.sh): Debian's busybox source package, defconfig +
# busybox.fragment, static, cross compiled. Produces in $1: busybox, busybox.links, config.

# apt-get source needs deb-src entries; add them next to the deb ones if missing.
ensure_deb_src() {
    if apt-cache showsrc busybox 2>/dev/null | grep -q '^Package: busybox'; then return; fi
    [ "$(id -u)" = 0 ] || die "apt has no deb-src entries for busybox; run as root once (or add them)"
    local main=/etc/apt/sources.list.d/debian.sources
    if [ -f "$main" ]; then
        log "  adding deb-src entries (/etc/apt/sources.list.d/debian-src.sources)"
        sed 's/^Types:.*/Types: deb-src/' "$main" >/etc/apt/sources.list.d/debian-src.sources
    elif [ -f /etc/apt/sources.list ]; then
        log "  adding deb-src entries (/etc/apt/sources.list.d/debian-src.list)"
        sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >/etc/apt/sources.list.d/debian-src.list
    else
        die "no apt sources found to derive deb-src entries from"
    fi
    run_logged "$LOGFILE" apt-get update
    apt-cache showsrc busybox 2>/dev/null | grep -q '^Package: busybox' ||
        die "busybox source package still unknown to apt after adding deb-src entries"
}

build_busybox() {
    local out=$1 work=$2 logfile=$3
    local bmake=(make CROSS_COMPILE=riscv64-linux-gnu- KCONFIG_NOTIMESTAMP=1)
    ensure_deb_src

    rm -rf "$work/busybox-dl" "$work/busybox"
    mkdir -p "$work/busybox-dl"
    cd "$work/busybox-dl"
    log "  fetching the busybox source package ($BUSYBOX_VERSION)"
    run_logged "$logfile" apt-get source --download-only busybox
    local dsc
    dsc=$(ls busybox_*.dsc 2>/dev/null | head -n 1)
    [ -n "$dsc" ] || die "apt-get source left no busybox .dsc in $work/busybox-dl"
    run_logged "$logfile" dpkg-source -x "$dsc" "$work/busybox"
    cd "$work/busybox"

    log "  configuring: defconfig + busybox.fragment"
    run_logged "$logfile" "${bmake[@]}" defconfig
    local line name
    while IFS= read -r line; do
        case "$line" in
            CONFIG_*=*) name=${line%%=*} ;;
            "# CONFIG_"*" is not set") name=${line#\# }; name=${name%% *} ;;
            *) continue ;;
        esac
        sed -i -e "/^$name=/d" -e "/^# $name is not set/d" .config
        printf '%s\n' "$line" >>.config
    done <"$GUEST_DIR/busybox.fragment"
    # oldconfig asks about nothing new here; feed it newlines in case it does
    # (inside sh: with pipefail, yes's SIGPIPE would count as a failure).
    run_logged "$logfile" sh -c 'yes "" | "$@" oldconfig' sh "${bmake[@]}"
    check_fragment "$GUEST_DIR/busybox.fragment" .config

    log "  compiling busybox with -j2"
    run_logged "$logfile" "${bmake[@]}" -j2 busybox
    run_logged "$logfile" "${bmake[@]}" busybox.links
    if riscv64-linux-gnu-readelf -l busybox | grep -q INTERP; then
        die "busybox came out dynamically linked (CONFIG_STATIC ignored?)"
    fi

    mkdir -p "$out"
    cp busybox busybox.links "$out/"
    cp .config "$out/config"
    cd "$work"
}
