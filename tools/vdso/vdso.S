/* The vDSO `rivet user` maps into every guest (AT_SYSINFO_EHDR), so glibc reads CLOCK_MONOTONIC without a
 * system call: the `time` CSR (rdtime: 10 MHz, counting from the process's start) plus the host's monotonic
 * clock at that start, which rivet stores in `rivet_vdso_data` when it maps the image (rivet's own
 * clock_gettime system call uses the same formula, so the two never disagree). CLOCK_REALTIME and
 * gettimeofday make the system call, so they follow the host clock when it is set or slewed; so do the
 * other clocks and entry points, as the kernel's vDSO does for clocks it cannot read.
 * Build: tools/vdso/build.sh (writes Sources/RivetUser/VDSOImage.swift). */
    .text
    .balign 8
    .globl rivet_vdso_data
rivet_vdso_data:
.Ldata:
    .quad 0                     /* host CLOCK_MONOTONIC, ns, when time was 0 */

    .balign 4
    .globl __vdso_clock_gettime
    .type __vdso_clock_gettime, @function
__vdso_clock_gettime:
    li      t0, 1
    bne     a0, t0, 1f          /* not CLOCK_MONOTONIC: the system call */
    lla     t1, .Ldata
    ld      t2, 0(t1)
    rdtime  t3
    li      t4, 100
    mul     t3, t3, t4
    add     t2, t2, t3          /* ns = base + time * 100 */
    li      t4, 1000000000
    divu    t5, t2, t4
    remu    t6, t2, t4
    sd      t5, 0(a1)
    sd      t6, 8(a1)
    li      a0, 0
    ret
1:  li      a7, 113
    ecall
    ret
    .size __vdso_clock_gettime, . - __vdso_clock_gettime

.macro SYSCALL name, nr
    .globl \name
    .type \name, @function
\name:
    li      a7, \nr
    ecall
    ret
    .size \name, . - \name
.endm

    SYSCALL __vdso_gettimeofday, 169
    SYSCALL __vdso_clock_getres, 114
    SYSCALL __vdso_getcpu, 168
    SYSCALL __vdso_flush_icache, 259
    SYSCALL __vdso_rt_sigreturn, 139
