/* interp: a small stack-machine bytecode interpreter (switch dispatch, a value stack, calls and
 * returns in the bytecode) running a fixed program: recursive fib, a counted loop with a
 * multiply-xor hash, and a call per iteration. argv[1] = outer iterations (default 700).
 * The workload is branchy and indirect-jump heavy, the opposite of long straight blocks. */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>

enum op {
    OP_HALT, OP_PUSH, OP_POP, OP_DUP, OP_ARG, OP_LOCAL, OP_SETLOCAL,
    OP_ADD, OP_SUB, OP_MUL, OP_XOR, OP_AND, OP_SHR, OP_LT,
    OP_JMP, OP_JZ, OP_CALL, OP_RET,
};

#define STACK_SIZE 4096
#define FRAMES 1024
#define CODE_SIZE 256

/* A frame remembers where to return, where its arguments start and how many to drop on return. */
struct frame { int ret_pc; int base; int nargs; };

static int64_t code[CODE_SIZE];
static int code_len;

static void emit(int64_t word)
{
    if (code_len >= CODE_SIZE) {
        fprintf(stderr, "interp: program too long\n");
        exit(2);
    }
    code[code_len++] = word;
}

/* Runs code from pc 0 until OP_HALT; returns the top of the stack. Stack and frame depth are
 * checked so a wrong program stops with a message instead of corrupting memory. */
static int64_t run(void)
{
    static int64_t stack[STACK_SIZE];
    static struct frame frames[FRAMES];
    int sp = 0, fp = 0, pc = 0;
    int base = 0;
    for (;;) {
        if (sp > STACK_SIZE - 4 || sp < 0) {
            fprintf(stderr, "interp: stack out of range at pc %d\n", pc);
            exit(1);
        }
        int64_t a, b;
        switch ((enum op)code[pc++]) {
        case OP_HALT: return stack[sp - 1];
        case OP_PUSH: stack[sp++] = code[pc++]; break;
        case OP_POP: sp--; break;
        case OP_DUP: stack[sp] = stack[sp - 1]; sp++; break;
        case OP_ARG: stack[sp++] = stack[base + code[pc++]]; break;
        case OP_LOCAL: stack[sp++] = stack[base + code[pc++]]; break;
        case OP_SETLOCAL: stack[base + code[pc++]] = stack[--sp]; break;
        case OP_ADD: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = a + b; break;
        case OP_SUB: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = a - b; break;
        case OP_MUL: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = (int64_t)((uint64_t)a * (uint64_t)b); break;
        case OP_XOR: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = a ^ b; break;
        case OP_AND: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = a & b; break;
        case OP_SHR: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = (int64_t)((uint64_t)a >> (b & 63)); break;
        case OP_LT: b = stack[--sp]; a = stack[sp - 1]; stack[sp - 1] = a < b; break;
        case OP_JMP: pc = (int)code[pc]; break;
        case OP_JZ: if (stack[--sp] == 0) pc = (int)code[pc]; else pc++; break;
        case OP_CALL:  /* CALL target nargs: the arguments are the top nargs values */
            if (fp >= FRAMES) {
                fprintf(stderr, "interp: call depth exceeded at pc %d\n", pc);
                exit(1);
            }
            frames[fp].ret_pc = pc + 2;
            frames[fp].base = base;
            frames[fp].nargs = (int)code[pc + 1];
            fp++;
            base = sp - (int)code[pc + 1];
            pc = (int)code[pc];
            break;
        case OP_RET:  /* the return value replaces the arguments (and any locals) */
            a = stack[sp - 1];
            fp--;
            sp = base;
            stack[sp++] = a;
            pc = frames[fp].ret_pc;
            base = frames[fp].base;
            break;
        default:
            fprintf(stderr, "interp: bad opcode %lld at pc %d\n", (long long)code[pc - 1], pc - 1);
            exit(1);
        }
    }
}

/* Assembles:
 *   main:  local0 = i = 0, local1 = acc = 0
 *          loop: if !(i < N) goto done
 *                acc = (acc * 31) ^ fib(18 + (i & 3)) ^ mix(acc, i)
 *                i = i + 1; goto loop
 *          done: push acc; halt
 *   fib(n): if n < 2 return n; return fib(n - 1) + fib(n - 2)
 *   mix(a, b): local t = 0; repeat 16 times: t = (t ^ a) * 0x100000001b3 + b; a = a >> 3 + t
 *              return t */
static void assemble(int64_t iterations)
{
    code_len = 0;
    /* main: the two locals live at base 0 and 1 (base is 0 for main). */
    emit(OP_PUSH); emit(0);            /* i */
    emit(OP_PUSH); emit(0);            /* acc */
    int loop = code_len;
    emit(OP_LOCAL); emit(0); emit(OP_PUSH); emit(iterations); emit(OP_LT);
    emit(OP_JZ); int fix_done = code_len; emit(0);
    emit(OP_LOCAL); emit(1); emit(OP_PUSH); emit(31); emit(OP_MUL);
    emit(OP_PUSH); emit(18); emit(OP_LOCAL); emit(0); emit(OP_PUSH); emit(3); emit(OP_AND); emit(OP_ADD);
    emit(OP_CALL); int fix_fib1 = code_len; emit(0); emit(1);
    emit(OP_XOR);
    emit(OP_LOCAL); emit(1); emit(OP_LOCAL); emit(0);
    emit(OP_CALL); int fix_mix = code_len; emit(0); emit(2);
    emit(OP_XOR);
    emit(OP_SETLOCAL); emit(1);
    emit(OP_LOCAL); emit(0); emit(OP_PUSH); emit(1); emit(OP_ADD); emit(OP_SETLOCAL); emit(0);
    emit(OP_JMP); emit(loop);
    code[fix_done] = code_len;
    emit(OP_LOCAL); emit(1); emit(OP_HALT);

    /* fib(n) */
    int fib = code_len;
    emit(OP_ARG); emit(0); emit(OP_PUSH); emit(2); emit(OP_LT);
    emit(OP_JZ); int fix_rec = code_len; emit(0);
    emit(OP_ARG); emit(0); emit(OP_RET);
    code[fix_rec] = code_len;
    emit(OP_ARG); emit(0); emit(OP_PUSH); emit(1); emit(OP_SUB); emit(OP_CALL); emit(fib); emit(1);
    emit(OP_ARG); emit(0); emit(OP_PUSH); emit(2); emit(OP_SUB); emit(OP_CALL); emit(fib); emit(1);
    emit(OP_ADD); emit(OP_RET);

    /* mix(a, b): args at base+0, base+1; locals t at base+2, k (counter) at base+3 */
    int mix = code_len;
    emit(OP_PUSH); emit(0);            /* t */
    emit(OP_PUSH); emit(16);           /* k */
    int mloop = code_len;
    emit(OP_LOCAL); emit(3); emit(OP_JZ); int fix_mdone = code_len; emit(0);
    emit(OP_LOCAL); emit(2); emit(OP_ARG); emit(0); emit(OP_XOR);
    emit(OP_PUSH); emit(0x100000001b3LL); emit(OP_MUL); emit(OP_ARG); emit(1); emit(OP_ADD);
    emit(OP_SETLOCAL); emit(2);
    emit(OP_ARG); emit(0); emit(OP_PUSH); emit(3); emit(OP_SHR); emit(OP_LOCAL); emit(2); emit(OP_ADD);
    emit(OP_SETLOCAL); emit(0);
    emit(OP_LOCAL); emit(3); emit(OP_PUSH); emit(1); emit(OP_SUB); emit(OP_SETLOCAL); emit(3);
    emit(OP_JMP); emit(mloop);
    code[fix_mdone] = code_len;
    emit(OP_LOCAL); emit(2); emit(OP_RET);

    code[fix_fib1] = fib;
    code[fix_mix] = mix;
}

/* The same computation in C, to check the interpreter's answer. */
static int64_t fib_c(int64_t n) { return n < 2 ? n : fib_c(n - 1) + fib_c(n - 2); }

static int64_t mix_c(int64_t a, int64_t b)
{
    int64_t t = 0;
    for (int k = 16; k != 0; k--) {
        t = (int64_t)((uint64_t)(t ^ a) * 0x100000001b3ULL + (uint64_t)b);
        a = (int64_t)(((uint64_t)a >> 3) + (uint64_t)t);
    }
    return t;
}

static int64_t expected(int64_t iterations)
{
    int64_t acc = 0;
    for (int64_t i = 0; i < iterations; i++)
        acc = (int64_t)((uint64_t)acc * 31) ^ fib_c(18 + (i & 3)) ^ mix_c(acc, i);
    return acc;
}

int main(int argc, char **argv)
{
    uint64_t iterations = bench_arg(argc, argv, 700, 1000000, "iterations");
    assemble((int64_t)iterations);

    double t0 = bench_now();
    int64_t got = run();
    double t1 = bench_now();

    int64_t want = expected((int64_t)iterations);
    if (got != want) {
        printf("BENCH interp FAIL got %016llx want %016llx\n", (unsigned long long)got, (unsigned long long)want);
        return 1;
    }
    char result[40];
    snprintf(result, sizeof result, "acc:%016llx", (unsigned long long)got);
    bench_report("interp", t0, t1, result);
    return 0;
}
