/* A hostile virtio-blk driver. Drives the disk in virtio-mmio slot 0 by hand through a series of cases:
 * valid requests (read sector 0, write sector 2, out-of-range sectors) and malformed rings (tables and
 * buffers outside RAM or misaligned, looping chains, huge lengths, an available index far ahead, bad
 * indices, indirect-table abuse, DMA over the rings themselves). After each case it prints one line
 *     V <case> dev=<Status register> used=<used idx> blk=<request status byte> [more fields]
 * which the test checks: a malformed ring must mark the device DEVICE_NEEDS_RESET (0x40) and nothing
 * else may happen; valid requests must complete. Ends with "VIRTIO-HOSTILE: done" and a power-off. */
#include <stdint.h>
#include "uart.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define VIRTIO0 0x10001000UL
enum {
    R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_DRIVER_FEATURES = 0x020,
    R_DRIVER_FEATURES_SEL = 0x024, R_QUEUE_SEL = 0x030, R_QUEUE_NUM_MAX = 0x034, R_QUEUE_NUM = 0x038,
    R_QUEUE_READY = 0x044, R_QUEUE_NOTIFY = 0x050, R_INTERRUPT_STATUS = 0x060, R_INTERRUPT_ACK = 0x064,
    R_STATUS = 0x070, R_QUEUE_DESC = 0x080, R_QUEUE_DRIVER = 0x090, R_QUEUE_DEVICE = 0x0a0, R_CONFIG = 0x100,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 0x40 };
enum { F_NEXT = 1, F_WRITE = 2, F_INDIRECT = 4 };
enum { T_IN = 0, T_OUT = 1 };

/* Guest memory used by the cases (the program itself sits at 0x80000000, its stack below 0x80300000). */
#define DESC     0x80400000UL
#define AVAIL    0x80401000UL
#define USED     0x80402000UL
#define HEADER   0x80410000UL
#define DATA     0x80411000UL
#define STATUS   0x80412000UL
#define INDIRECT 0x80413000UL
#define SCRATCH  0x80800000UL
#define UNMAPPED 0x1000UL
#define NO_STATUS 0xee

struct desc { u64 addr; u32 len; u16 flags; u16 next; };

static volatile struct desc *const desc = (volatile struct desc *)DESC;
static volatile struct desc *const indirect = (volatile struct desc *)INDIRECT;
static volatile u16 *const avail = (volatile u16 *)AVAIL;   /* flags, idx, ring[] */
static volatile u16 *const used = (volatile u16 *)USED;     /* flags, idx, then 8-byte elements */
static volatile u8 *const status_byte = (volatile u8 *)STATUS;
static u64 ram_end, capacity;

static void w32(u32 reg, u32 v) { *(volatile u32 *)(VIRTIO0 + reg) = v; }
static u32 r32(u32 reg) { return *(volatile u32 *)(VIRTIO0 + reg); }

static void zero(u64 addr, u64 len)
{
    for (u64 i = 0; i < len; i += 8)
        *(volatile u64 *)(addr + i) = 0;
}

static void print_field(const char *name, u64 v)
{
    uart_puts(" ");
    uart_puts(name);
    uart_puts("=");
    uart_puthex(v);
}

/* Resets the device, clears the ring memory and negotiates VERSION_1 (+ INDIRECT_DESC); the queue is
 * made ready with the given geometry. The device may already refuse the queue here. */
static void setup(u32 size, u64 desc_addr, u64 avail_addr, u64 used_addr)
{
    zero(DESC, 0x3000);
    zero(HEADER, 0x4000);
    *status_byte = NO_STATUS;
    w32(R_STATUS, 0);
    w32(R_STATUS, S_ACK);
    w32(R_STATUS, S_ACK | S_DRIVER);
    w32(R_DRIVER_FEATURES_SEL, 0);
    w32(R_DRIVER_FEATURES, 1u << 28);
    w32(R_DRIVER_FEATURES_SEL, 1);
    w32(R_DRIVER_FEATURES, 1);
    w32(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    w32(R_QUEUE_SEL, 0);
    w32(R_QUEUE_NUM, size);
    w32(R_QUEUE_DESC, (u32)desc_addr);
    w32(R_QUEUE_DESC + 4, (u32)(desc_addr >> 32));
    w32(R_QUEUE_DRIVER, (u32)avail_addr);
    w32(R_QUEUE_DRIVER + 4, (u32)(avail_addr >> 32));
    w32(R_QUEUE_DEVICE, (u32)used_addr);
    w32(R_QUEUE_DEVICE + 4, (u32)(used_addr >> 32));
    w32(R_QUEUE_READY, 1);
    w32(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static void setup_default(void) { setup(8, DESC, AVAIL, USED); }

static void set_desc(int i, u64 addr, u32 len, u16 flags, u16 next)
{
    desc[i].addr = addr;
    desc[i].len = len;
    desc[i].flags = flags;
    desc[i].next = next;
}

/* A three-descriptor request: header (0) -> data (1) -> status byte (2). */
static void request(u32 type, u64 sector, u64 data_addr, u32 data_len)
{
    volatile u32 *h = (volatile u32 *)HEADER;
    h[0] = type;
    h[1] = 0;
    *(volatile u64 *)(HEADER + 8) = sector;
    set_desc(0, HEADER, 16, F_NEXT, 1);
    set_desc(1, data_addr, data_len, F_NEXT | (type == T_IN ? F_WRITE : 0), 2);
    set_desc(2, STATUS, 1, F_WRITE, 0);
}

static void publish(u16 head, u16 idx)
{
    avail[2] = head;
    avail[1] = idx;
}

static void notify(void) { w32(R_QUEUE_NOTIFY, 0); }

static u32 fnv1a(u64 addr, u32 len)
{
    u32 h = 2166136261u;
    for (u32 i = 0; i < len; i++) {
        h ^= *(volatile u8 *)(addr + i);
        h *= 16777619u;
    }
    return h;
}

static void report_start(const char *name)
{
    uart_puts("V ");
    uart_puts(name);
    print_field("dev", r32(R_STATUS));
    print_field("used", used[1]);
    print_field("blk", *status_byte);
}

static void report(const char *name)
{
    report_start(name);
    uart_puts("\n");
    w32(R_INTERRUPT_ACK, r32(R_INTERRUPT_STATUS));
}

/* A valid read of sector 0 into DATA, ready to be published. */
static void valid_read(void) { request(T_IN, 0, DATA, 512); }

static void valid_cases(void)
{
    setup_default();
    valid_read();
    publish(0, 1);
    notify();
    report_start("read0");
    print_field("sum", fnv1a(DATA, 512));
    uart_puts("\n");

    setup_default();
    for (u32 i = 0; i < 512; i++)
        *(volatile u8 *)(DATA + i) = (u8)(i * 7 + 3);
    request(T_OUT, 2, DATA, 512);
    publish(0, 1);
    notify();
    report("write2");

    setup_default();
    request(T_IN, capacity, DATA, 512);
    publish(0, 1);
    notify();
    report("read_past_end");

    setup_default();
    request(T_IN, capacity - 1, DATA, 1024);
    publish(0, 1);
    notify();
    report("read_straddling_end");

    setup_default();
    request(T_IN, ~0ULL, DATA, 512);
    publish(0, 1);
    notify();
    report("read_huge_sector");

    setup_default();
    request(T_IN, 0, DATA, 100);
    publish(0, 1);
    notify();
    report("read_partial_sector");

    /* The same chain published 8 times (queue size 8): legal enough, all complete. */
    setup_default();
    valid_read();
    for (int i = 0; i < 8; i++)
        avail[2 + i] = 0;
    avail[1] = 8;
    notify();
    report("same_head_8_times");

    setup_default();
    valid_read();
    publish(0, 1);
    w32(R_QUEUE_NOTIFY, 7);
    w32(R_QUEUE_NOTIFY, 0xffffffffu);
    report("notify_bad_queue");
}

static void ring_cases(void)
{
    setup(8, UNMAPPED, AVAIL, USED);
    report("desc_table_outside_ram");

    setup(8, DESC + 8, AVAIL, USED);
    report("desc_table_misaligned");

    setup(8, DESC, AVAIL, VIRTIO0);
    report("used_ring_in_mmio");

    setup(8, DESC, AVAIL, ram_end - 16);
    report("used_ring_past_ram_end");

    setup(7, DESC, AVAIL, USED);
    report("queue_size_7");

    setup(0, DESC, AVAIL, USED);
    report("queue_size_0");

    setup(512, DESC, AVAIL, USED);
    report("queue_size_512");

    setup(0xffffffffu, DESC, AVAIL, USED);
    report("queue_size_huge");
}

static void chain_cases(void)
{
    setup_default();
    request(T_IN, 0, UNMAPPED, 512);
    publish(0, 1);
    notify();
    report("buffer_outside_ram");

    setup_default();
    request(T_IN, 0, DATA, 0xffffffffu);
    publish(0, 1);
    notify();
    report("buffer_huge_length");

    setup_default();
    request(T_IN, 0, ram_end - 256, 512);
    publish(0, 1);
    notify();
    report("buffer_past_ram_end");

    setup_default();
    request(T_IN, 0, 0xfffffffffffffe00ULL, 512);
    publish(0, 1);
    notify();
    report("buffer_address_wraps");

    setup_default();
    valid_read();
    desc[2].flags = F_WRITE | F_NEXT;
    desc[2].next = 0;
    publish(0, 1);
    notify();
    report("chain_loop");

    setup_default();
    valid_read();
    desc[0].next = 0;
    publish(0, 1);
    notify();
    report("chain_self_loop");

    setup_default();
    valid_read();
    publish(0, 0x8000);
    notify();
    report("avail_far_ahead");

    setup_default();
    valid_read();
    publish(0, 9);
    notify();
    report("avail_one_past_size");

    setup_default();
    valid_read();
    publish(200, 1);
    notify();
    report("head_out_of_range");

    setup_default();
    valid_read();
    desc[1].next = 100;
    publish(0, 1);
    notify();
    report("next_out_of_range");

    setup_default();
    valid_read();
    desc[1].flags = F_NEXT;
    desc[2].flags = 0;
    publish(0, 1);
    notify();
    report("no_status_byte");

    setup_default();
    request(T_OUT, 0, DATA, 512);
    desc[0].flags = F_NEXT | F_WRITE;
    publish(0, 1);
    notify();
    report("readable_after_writable");

    /* 20 writable 240 MiB buffers: more than 4 GiB in one chain. */
    setup(32, DESC, AVAIL, USED);
    set_desc(0, HEADER, 16, F_NEXT, 1);
    for (int i = 1; i <= 20; i++)
        set_desc(i, SCRATCH, 0x0f000000, F_NEXT | F_WRITE, (u16)(i + 1));
    set_desc(21, STATUS, 1, F_WRITE, 0);
    publish(0, 1);
    notify();
    report("chain_over_4gib");

    /* A broken device must not process anything until it is reset. */
    valid_read();
    zero(USED, 0x1000);
    publish(0, 2);
    notify();
    report("notify_while_broken");
}

static void indirect_cases(void)
{
    /* Valid: one indirect table holding header, data, status. */
    setup_default();
    request(T_IN, 0, DATA, 512);
    for (int i = 0; i < 3; i++) {
        indirect[i].addr = desc[i].addr;
        indirect[i].len = desc[i].len;
        indirect[i].flags = desc[i].flags;
        indirect[i].next = desc[i].next;
    }
    set_desc(0, INDIRECT, 3 * 16, F_INDIRECT, 0);
    publish(0, 1);
    notify();
    report_start("indirect_valid");
    print_field("sum", fnv1a(DATA, 512));
    uart_puts("\n");

    setup_default();
    indirect[0].addr = INDIRECT;
    indirect[0].len = 16;
    indirect[0].flags = F_INDIRECT;
    set_desc(0, INDIRECT, 16, F_INDIRECT, 0);
    publish(0, 1);
    notify();
    report("indirect_nested");

    setup_default();
    set_desc(0, INDIRECT, 48, F_INDIRECT | F_NEXT, 1);
    publish(0, 1);
    notify();
    report("indirect_with_next");

    setup_default();
    set_desc(0, INDIRECT, 17, F_INDIRECT, 0);
    publish(0, 1);
    notify();
    report("indirect_length_17");

    setup_default();
    set_desc(0, INDIRECT, 0, F_INDIRECT, 0);
    publish(0, 1);
    notify();
    report("indirect_length_0");

    setup_default();
    set_desc(0, UNMAPPED, 48, F_INDIRECT, 0);
    publish(0, 1);
    notify();
    report("indirect_outside_ram");

    setup_default();
    set_desc(0, INDIRECT, 0xfffffff0u, F_INDIRECT, 0);
    publish(0, 1);
    notify();
    report("indirect_huge");

    /* Indirect entries that loop among themselves. */
    setup_default();
    for (int i = 0; i < 4; i++) {
        indirect[i].addr = DATA;
        indirect[i].len = 16;
        indirect[i].flags = F_NEXT;
        indirect[i].next = (u16)((i + 1) % 4);
    }
    set_desc(0, INDIRECT, 4 * 16, F_INDIRECT, 0);
    publish(0, 1);
    notify();
    report("indirect_loop");
}

/* The device writes disk data over the rings it is reading. Only survival is checked. */
static void dma_cases(void)
{
    setup_default();
    request(T_IN, 0, DESC, 4096);
    publish(0, 1);
    notify();
    report("dma_over_descriptors");

    setup_default();
    request(T_IN, 0, AVAIL, 8192);
    publish(0, 1);
    notify();
    report("dma_over_avail_and_used");

    setup(8, DESC, AVAIL, AVAIL + 0x800);
    request(T_IN, 0, AVAIL, 4096);
    publish(0, 1);
    notify();
    report("dma_with_overlapping_rings");
}

static void register_cases(void)
{
    setup_default();
    w32(R_QUEUE_SEL, 5);
    u32 max = r32(R_QUEUE_NUM_MAX);
    w32(R_QUEUE_NUM, 8);
    w32(R_QUEUE_DESC, (u32)DESC);
    w32(R_QUEUE_READY, 1);
    u32 ready = r32(R_QUEUE_READY);
    w32(R_QUEUE_SEL, 0xffffffffu);
    ready |= r32(R_QUEUE_READY);
    w32(R_QUEUE_NOTIFY, 5);
    w32(R_QUEUE_SEL, 0);
    report_start("queue_sel_out_of_range");
    print_field("max", max);
    print_field("ready", ready);
    uart_puts("\n");

    /* Config space: reads past its end return 0, writes there are ignored; capacity reads back. */
    u64 past = *(volatile u32 *)(VIRTIO0 + R_CONFIG + 0xefc) | *(volatile u64 *)(VIRTIO0 + R_CONFIG + 0x3c);
    *(volatile u64 *)(VIRTIO0 + R_CONFIG) = 0x1234;
    *(volatile u32 *)(VIRTIO0 + R_CONFIG + 0xefc) = 0x1234;
    u64 cap = *(volatile u32 *)(VIRTIO0 + R_CONFIG) | (u64)*(volatile u32 *)(VIRTIO0 + R_CONFIG + 4) << 32;
    report_start("config_space");
    print_field("past", past);
    print_field("capacity", cap);
    uart_puts("\n");

    /* A driver without VERSION_1 must not get FEATURES_OK. */
    w32(R_STATUS, 0);
    w32(R_STATUS, S_ACK | S_DRIVER);
    w32(R_DRIVER_FEATURES_SEL, 1);
    w32(R_DRIVER_FEATURES, 0);
    w32(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    report("legacy_driver_features");

    /* Features the device never offered. */
    w32(R_STATUS, 0);
    w32(R_STATUS, S_ACK | S_DRIVER);
    w32(R_DRIVER_FEATURES_SEL, 0);
    w32(R_DRIVER_FEATURES, 0xffffffffu);
    w32(R_DRIVER_FEATURES_SEL, 1);
    w32(R_DRIVER_FEATURES, 0xffffffffu);
    w32(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    report("unoffered_features");
}

int main(u64 dtb)
{
    /* The device tree is placed 2 MiB below the end of RAM. */
    ram_end = dtb + 0x200000;
    if (r32(R_MAGIC) != 0x74726976 || r32(R_VERSION) != 2 || r32(R_DEVICE_ID) != 2) {
        uart_puts("VIRTIO-HOSTILE: no virtio-blk in slot 0\n");
        power_off(4);
    }
    capacity = r32(R_CONFIG) | (u64)r32(R_CONFIG + 4) << 32;
    uart_puts("VIRTIO-HOSTILE: capacity");
    print_field("sectors", capacity);
    uart_puts("\n");
    valid_cases();
    ring_cases();
    chain_cases();
    indirect_cases();
    dma_cases();
    register_cases();
    w32(R_STATUS, 0);
    uart_puts("VIRTIO-HOSTILE: done\n");
    power_off(0);
    return 0;
}

void trap(u64 cause, u64 epc, u64 tval)
{
    uart_puts("VIRTIO-HOSTILE: unexpected trap");
    print_field("mcause", cause);
    print_field("mepc", epc);
    print_field("mtval", tval);
    uart_puts("\n");
    power_off(3);
}
