/* Console output and power-off for the hostile programs: the virt board's 16550 at 0x10000000 and the
 * sifive,test finisher at 0x100000. Output polls LSR with a bound, so a UART left in a strange state by a
 * fuzzer can lose characters but never hang the program. */
#define UART_BASE    0x10000000
#define SYSCON_BASE  0x100000
#define POWER_OFF    0x5555
#define POWER_FAIL   0x3333   /* exit code in bits 16..31 */
#define LSR_THRE     0x20

#ifdef __ASSEMBLER__

/* Puts the UART back into a known state: 8N1, divisor latch off, no interrupts, no loopback. */
.macro UART_RESET
    li t0, UART_BASE
    li t1, 0x03
    sb t1, 3(t0)
    sb zero, 1(t0)
    sb zero, 4(t0)
    li t1, 0x07
    sb t1, 2(t0)
.endm

/* One state step of xorshift64 in \reg (never zero if seeded non-zero); clobbers \tmp. */
.macro XORSHIFT reg, tmp
    slli \tmp, \reg, 13
    xor  \reg, \reg, \tmp
    srli \tmp, \reg, 7
    xor  \reg, \reg, \tmp
    slli \tmp, \reg, 17
    xor  \reg, \reg, \tmp
.endm

/* Emits uart_puts: a0 = NUL-terminated string; clobbers a0-a4. */
.macro UART_PUTS_FUNCTION
uart_puts:
    li a1, UART_BASE
1:  lbu a2, 0(a0)
    beqz a2, 4f
    li a3, 100000
2:  lbu a4, 5(a1)
    andi a4, a4, LSR_THRE
    bnez a4, 3f
    addi a3, a3, -1
    bnez a3, 2b
3:  sb a2, 0(a1)
    addi a0, a0, 1
    j 1b
4:  ret
.endm

#else

#include <stdint.h>

static inline void mmio_w8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline uint8_t mmio_r8(uintptr_t a) { return *(volatile uint8_t *)a; }

static void uart_putc(char c)
{
    for (int spin = 0; spin < 100000 && !(mmio_r8(UART_BASE + 5) & LSR_THRE); spin++)
        ;
    mmio_w8(UART_BASE, (uint8_t)c);
}

static void uart_puts(const char *s)
{
    while (*s)
        uart_putc(*s++);
}

static void uart_puthex(uint64_t v)
{
    uart_puts("0x");
    int started = 0;
    for (int shift = 60; shift >= 0; shift -= 4) {
        unsigned d = (v >> shift) & 15;
        if (d || started || shift == 0) {
            uart_putc((char)(d < 10 ? '0' + d : 'a' + d - 10));
            started = 1;
        }
    }
}

static void power_off(uint32_t code)
{
    *(volatile uint32_t *)SYSCON_BASE = code == 0 ? POWER_OFF : (POWER_FAIL | code << 16);
    for (;;)
        __asm__ volatile("wfi");
}

#endif
