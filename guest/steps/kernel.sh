# Kernel step (sourced by build.sh): Debian's linux-source-6.1, tinyconfig + kernel.fragment.
# Produces in $1: Image, config, gen_init_cpio (the kernel's own initramfs packer, a host tool).

build_kernel() {
    local out=$1 work=$2 logfile=$3
    local tarball=/usr/src/linux-source-6.1.tar.xz
    local kmake=(make ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu-
                 KBUILD_BUILD_USER=rivet KBUILD_BUILD_HOST=rivet
                 KBUILD_BUILD_TIMESTAMP="2025-01-01 00:00:00 UTC")
    # A fixed, parseable date: it is also the mtime of the kernel's built-in
    # initramfs entries, so the Image comes out byte-identical on every build.
    [ -f "$tarball" ] || die "$tarball is missing (apt-get install linux-source-6.1)"

    rm -rf "$work/linux"
    mkdir -p "$work/linux"
    log "  unpacking $tarball"
    run_logged "$logfile" tar -xJf "$tarball" -C "$work/linux" --strip-components=1
    cd "$work/linux"

    log "  configuring: tinyconfig + kernel.fragment"
    run_logged "$logfile" "${kmake[@]}" tinyconfig
    run_logged "$logfile" env ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu- \
        scripts/kconfig/merge_config.sh -m .config "$GUEST_DIR/kernel.fragment"
    run_logged "$logfile" "${kmake[@]}" olddefconfig
    check_fragment "$GUEST_DIR/kernel.fragment" .config

    log "  compiling Image with -j2 (several minutes; log: $logfile)"
    run_logged "$logfile" "${kmake[@]}" -j2 Image
    [ -f arch/riscv/boot/Image ] || die "kernel build produced no arch/riscv/boot/Image"
    [ -x usr/gen_init_cpio ] || run_logged "$logfile" "${kmake[@]}" usr/gen_init_cpio

    mkdir -p "$out"
    cp arch/riscv/boot/Image "$out/Image"
    cp .config "$out/config"
    cp vmlinux "$out/vmlinux"   # symbols for debugging the guest kernel with gdb
    cp usr/gen_init_cpio "$out/gen_init_cpio"
    cd "$work"
}
