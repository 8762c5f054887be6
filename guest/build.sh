#!/usr/bin/env bash
# Builds Rivet's default Linux guest (kernel Image + initramfs) from Debian packages.
# Output folder: ${RIVET_CACHE:-$HOME/.cache/rivet}/guest-<recipe hash>/ (path printed on stdout).
# A complete folder (recipe.sha present) is reused at once. Progress goes to stderr.
# Env: RIVET_CACHE (cache root), RIVET_GUEST_KEEP=1 (keep the kernel/busybox source trees).
set -Eeuo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$GUEST_DIR/steps/common.sh"
. "$GUEST_DIR/steps/kernel.sh"
. "$GUEST_DIR/steps/busybox.sh"

CACHE=${RIVET_CACHE:-$HOME/.cache/rivet}
mkdir -p "$CACHE" || die "cannot create cache dir $CACHE"
CACHE=$(cd "$CACHE" && pwd)
STEPS=6
step() { log "step $1/$STEPS: $2"; }

# Debian packages the recipe needs (tools -> package).
APT_DEPS=(bc flex bison libssl-dev libelf-dev cpio gzip xz-utils make gcc libc6-dev
          gcc-riscv64-linux-gnu libc6-dev-riscv64-cross linux-source-6.1 dpkg-dev)

# --- recipe hash: every file under guest/ except docs and tests, plus the package versions used.
recipe_text() {
    (cd "$GUEST_DIR" && find . -type f ! -name '*.md' ! -path './tests/*' ! -name '*.pyc' -print | LC_ALL=C sort | while IFS= read -r f; do
        printf '%s %s\n' "$(sha_of "$f")" "$f"
    done)
    printf 'linux-source-6.1 %s\n' "$(pkg_version linux-source-6.1)"
    printf 'busybox %s\n' "$(pkg_version busybox)"
    printf 'gcc-riscv64-linux-gnu %s\n' "$(pkg_version gcc-riscv64-linux-gnu)"
    printf 'libc6-dev-riscv64-cross %s\n' "$(pkg_version libc6-dev-riscv64-cross)"
}
RECIPE=$(recipe_text)
if grep -q ' unknown$' <<<"$RECIPE"; then
    # A fresh machine (e.g. a new container) has empty apt lists: fetch them once.
    [ "$(id -u)" = 0 ] || die "apt knows none of: $(grep ' unknown$' <<<"$RECIPE" | cut -d' ' -f1 | xargs); run apt-get update as root"
    log "apt lists are missing package versions: apt-get update"
    run_logged "$CACHE/apt-update.log" apt-get update
    RECIPE=$(recipe_text)
    ! grep -q ' unknown$' <<<"$RECIPE" ||
        die "apt knows none of: $(grep ' unknown$' <<<"$RECIPE" | cut -d' ' -f1 | xargs) (check /etc/apt/sources.list.d)"
fi
HASH=$(printf '%s\n' "$RECIPE" | sha256sum | cut -c1-16)
OUT=$CACHE/guest-$HASH

if [ -f "$OUT/recipe.sha" ]; then
    log "cached: $OUT"
    printf '%s\n' "$OUT"
    exit 0
fi

# One build at a time per cache dir (parallel CI jobs, two shells).
exec 9>"$CACHE/.guest.lock"
flock 9
if [ -f "$OUT/recipe.sha" ]; then   # another build finished it while we waited
    printf '%s\n' "$OUT"; exit 0
fi

WORK=$CACHE/build-$HASH
mkdir -p "$WORK"
LOGFILE=$WORK/build.log
: >"$LOGFILE"
log "recipe $HASH, work tree $WORK"

# --- 1: apt dependencies
step 1 "apt dependencies"
missing=()
for p in "${APT_DEPS[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}; run as root or apt-get install them"
    log "  installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    run_logged "$LOGFILE" apt-get install -y --no-install-recommends "${missing[@]}"
    # apt installs the candidate versions the hash was computed from; make sure.
    [ "$(recipe_text)" = "$RECIPE" ] || die "package versions changed during install; rerun build.sh"
fi

# --- 2: kernel (cached on its own: it is the slow part and depends on few inputs)
KERNEL_HASH=$( { sha_of "$GUEST_DIR/kernel.fragment" "$GUEST_DIR/steps/kernel.sh"
                 grep -E '^(linux-source|gcc-riscv64)' <<<"$RECIPE"; } | sha256sum | cut -c1-16)
KERNEL_PART=$CACHE/parts/kernel-$KERNEL_HASH
if [ -f "$KERNEL_PART/done" ]; then
    step 2 "kernel (cached: $KERNEL_PART)"
else
    step 2 "kernel (linux-source $(pkg_version linux-source-6.1))"
    rm -rf "$KERNEL_PART"
    build_kernel "$KERNEL_PART" "$WORK" "$WORK/kernel.log"
    touch "$KERNEL_PART/done"
    [ "${RIVET_GUEST_KEEP:-0}" = 1 ] || rm -rf "$WORK/linux"
fi

# --- 3: busybox
BUSYBOX_VERSION=$(pkg_version busybox)
BUSYBOX_HASH=$( { sha_of "$GUEST_DIR/busybox.fragment" "$GUEST_DIR/steps/busybox.sh"
                  grep -E '^(busybox|gcc-riscv64|libc6-dev-riscv64)' <<<"$RECIPE"; } | sha256sum | cut -c1-16)
BUSYBOX_PART=$CACHE/parts/busybox-$BUSYBOX_HASH
if [ -f "$BUSYBOX_PART/done" ]; then
    step 3 "busybox (cached: $BUSYBOX_PART)"
else
    step 3 "busybox $BUSYBOX_VERSION"
    rm -rf "$BUSYBOX_PART"
    build_busybox "$BUSYBOX_PART" "$WORK" "$WORK/busybox.log"
    touch "$BUSYBOX_PART/done"
    [ "${RIVET_GUEST_KEEP:-0}" = 1 ] || rm -rf "$WORK/busybox" "$WORK/busybox-dl" "$WORK"/busybox_*.orig.tar.*
fi

# --- 4: bench programs (small, always rebuilt with the recipe)
step 4 "bench programs"
BENCH_NAMES=(intloop sha256 sort nbody memwalk smc abwalk seqdisk interp lists qsortcall smpstress)
rm -rf "$WORK/bench"; mkdir -p "$WORK/bench"
for b in "${BENCH_NAMES[@]}"; do
    run_logged "$WORK/bench.log" riscv64-linux-gnu-gcc -O2 -static -Wall -Wextra -Werror \
        -I"$GUEST_DIR/bench" -o "$WORK/bench/$b" "$GUEST_DIR/bench/$b.c" "$GUEST_DIR/bench/benchlib.c" -lm
done

# --- 5: initramfs, packed by the kernel's gen_init_cpio from a list (root-owned
# entries and /dev/console without needing mknod; fixed mtimes for reproducibility).
step 5 "initramfs"
STAGE=$WORK/stage
rm -rf "$STAGE"; mkdir -p "$STAGE"
cp "$BUSYBOX_PART/busybox" "$GUEST_DIR/rootfs/init" "$STAGE/"
cp -r "$GUEST_DIR/rootfs/etc" "$STAGE/etc"
cp -r "$WORK/bench" "$STAGE/bench"
find "$STAGE" -exec touch -h -d @0 {} +
LIST=$WORK/initramfs.list
{
    for d in /bin /sbin /usr /usr/bin /usr/sbin /dev /proc /sys /mnt /root /etc /bench /var; do
        printf 'dir %s 755 0 0\n' "$d"
    done
    printf 'dir /tmp 1777 0 0\n'
    printf 'nod /dev/console 600 0 0 c 5 1\n'
    printf 'nod /dev/null 666 0 0 c 1 3\n'
    printf 'file /init %s 755 0 0\n' "$STAGE/init"
    printf 'file /bin/busybox %s 755 0 0\n' "$STAGE/busybox"
    while IFS= read -r link; do
        [ "$link" = /bin/busybox ] || printf 'slink %s /bin/busybox 777 0 0\n' "$link"
    done <"$BUSYBOX_PART/busybox.links"
    (cd "$STAGE" && find etc bench -type f | LC_ALL=C sort | while IFS= read -r f; do
        mode=644; [ -x "$STAGE/$f" ] && mode=755
        printf 'file /%s %s %s 0 0\n' "$f" "$STAGE/$f" "$mode"
    done)
} >"$LIST"
"$KERNEL_PART/gen_init_cpio" -t 0 "$LIST" >"$WORK/initramfs.cpio" 2>>"$WORK/initramfs.log" ||
    die "gen_init_cpio failed (see $WORK/initramfs.log)"
gzip -n -9 -c "$WORK/initramfs.cpio" >"$WORK/initramfs.cpio.gz"

# --- 6: publish: files first, recipe.sha last (= complete), then the default link.
step 6 "publish $OUT"
[ "$(recipe_text)" = "$RECIPE" ] || die "guest/ changed while building; rerun build.sh"
rm -rf "$OUT"; mkdir -p "$OUT"
cp "$KERNEL_PART/Image" "$OUT/Image"
cp "$KERNEL_PART/config" "$OUT/config"
[ -f "$KERNEL_PART/vmlinux" ] && cp "$KERNEL_PART/vmlinux" "$OUT/vmlinux"
cp "$BUSYBOX_PART/config" "$OUT/busybox.config"
cp "$BUSYBOX_PART/busybox" "$OUT/busybox"   # static riscv64 busybox, for `rivet user` tests
cp "$WORK/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
cp -r "$WORK/bench" "$OUT/bench"   # the same binaries as in /bench, for user-mode runs
printf '%s\n' "$RECIPE" >"$OUT/recipe.txt"
sync
printf '%s\n' "$HASH" >"$OUT/recipe.sha.tmp"
mv "$OUT/recipe.sha.tmp" "$OUT/recipe.sha"
ln -sfn "guest-$HASH" "$CACHE/guest-default.tmp.$$"
mv -T "$CACHE/guest-default.tmp.$$" "$CACHE/guest-default"
log "done: Image $(stat -c %s "$OUT/Image") bytes, initramfs $(stat -c %s "$OUT/initramfs.cpio.gz") bytes"
printf '%s\n' "$OUT"
