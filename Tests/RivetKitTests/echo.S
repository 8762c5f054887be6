# Console echo firmware for RivetKit's tests: prints "ready\n", then echoes every input byte;
# '.' powers the machine off (syscon pass); '!' powers off with exit code 3 (syscon fail).
    .option norvc
    .globl _start
_start:
    li   s0, 0x10000000        # UART
    li   s1, 0x100000          # syscon
    la   a0, banner
1:  lbu  t0, 0(a0)
    beqz t0, 2f
    sb   t0, 0(s0)
    addi a0, a0, 1
    j    1b
2:  lbu  t0, 5(s0)             # LSR: data ready?
    andi t0, t0, 1
    beqz t0, 2b
    lbu  t1, 0(s0)             # RBR
    li   t2, '.'
    beq  t1, t2, 3f
    li   t2, '!'
    beq  t1, t2, 4f
    sb   t1, 0(s0)
    j    2b
3:  li   t0, 0x5555
    sw   t0, 0(s1)
    j    3b
4:  li   t0, 0x33333           # code 3 << 16 | 0x3333
    sw   t0, 0(s1)
    j    4b
banner:
    .asciz "ready\n"
