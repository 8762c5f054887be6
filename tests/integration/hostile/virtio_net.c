/* A hostile virtio-net driver, run with `--nic user` so that everything it sends reaches libslirp.
 * It finds the network card among the virtio-mmio slots, then works through cases; after each it prints
 *     N <case> dev=<Status register> rx=<rx used idx> tx=<tx used idx> [more fields]
 * Cases: garbage frames of every length, runts, giants and malformed IPv4/TCP/UDP/DHCP/DNS/ARP packets
 * (the device must stay healthy and complete every chain), descriptor chains outside RAM or looping on
 * either queue and receive buffers the device cannot write into (the device must mark itself
 * DEVICE_NEEDS_RESET), and between them a valid ARP request for the gateway 10.0.2.2, whose answer must
 * arrive: the host neither crashed nor stalled. Ends with "NET-HOSTILE: done" and a power-off. */
#include <stdint.h>
#include "uart.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

enum {
    R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_DRIVER_FEATURES = 0x020,
    R_DRIVER_FEATURES_SEL = 0x024, R_QUEUE_SEL = 0x030, R_QUEUE_NUM = 0x038,
    R_QUEUE_READY = 0x044, R_QUEUE_NOTIFY = 0x050, R_INTERRUPT_STATUS = 0x060, R_INTERRUPT_ACK = 0x064,
    R_STATUS = 0x070, R_QUEUE_DESC = 0x080, R_QUEUE_DRIVER = 0x090, R_QUEUE_DEVICE = 0x0a0, R_CONFIG = 0x100,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8 };
enum { F_NEXT = 1, F_WRITE = 2 };
enum { RX = 0, TX = 1, QSIZE = 8, HDR = 12 };
#define FEAT_MAC (1u << 5)
#define FEAT_MRG (1u << 15)
#define FEAT_STATUS (1u << 16)

/* Rings: queue q at RINGS + q * 0x4000 (descriptors, then avail at +0x1000, used at +0x2000). */
#define RINGS    0x80400000UL
#define RXBUF    0x80410000UL   /* QSIZE receive buffers of 2048 bytes */
#define FRAME    0x80420000UL   /* the frame being sent (up to 128 KiB) */
#define UNMAPPED 0x1000UL

struct desc { u64 addr; u32 len; u16 flags; u16 next; };

static u64 base;
static u16 avail_idx[2];
static u16 rx_seen;
static u64 rng = 0x9E3779B97F4A7C15ull;
static u8 mac[6];

static void w32(u32 reg, u32 v) { *(volatile u32 *)(base + reg) = v; }
static u32 r32(u32 reg) { return *(volatile u32 *)(base + reg); }
static volatile struct desc *desc(int q) { return (volatile struct desc *)(RINGS + (u64)q * 0x4000); }
static volatile u16 *avail(int q) { return (volatile u16 *)(RINGS + (u64)q * 0x4000 + 0x1000); }
static volatile u16 *used(int q) { return (volatile u16 *)(RINGS + (u64)q * 0x4000 + 0x2000); }
static volatile u8 *frame = (volatile u8 *)FRAME;

static u64 next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

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

static void report_start(const char *name)
{
    uart_puts("N ");
    uart_puts(name);
    print_field("dev", r32(R_STATUS));
    print_field("rx", used(RX)[1]);
    print_field("tx", used(TX)[1]);
}

static void report(const char *name)
{
    report_start(name);
    uart_puts("\n");
    w32(R_INTERRUPT_ACK, r32(R_INTERRUPT_STATUS));
}

/* Resets the card and sets up both queues; `rx_buffers` writable 2048-byte buffers are posted. */
static void setup(u32 features, int rx_buffers, u32 rx_len, u16 rx_flags)
{
    zero(RINGS, 0x8000);
    w32(R_STATUS, 0);
    w32(R_STATUS, S_ACK);
    w32(R_STATUS, S_ACK | S_DRIVER);
    w32(R_DRIVER_FEATURES_SEL, 0);
    w32(R_DRIVER_FEATURES, features);
    w32(R_DRIVER_FEATURES_SEL, 1);
    w32(R_DRIVER_FEATURES, 1);  /* VERSION_1 */
    w32(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    for (int q = 0; q < 2; q++) {
        u64 d = RINGS + (u64)q * 0x4000;
        w32(R_QUEUE_SEL, q);
        w32(R_QUEUE_NUM, QSIZE);
        w32(R_QUEUE_DESC, (u32)d);
        w32(R_QUEUE_DESC + 4, (u32)(d >> 32));
        w32(R_QUEUE_DRIVER, (u32)(d + 0x1000));
        w32(R_QUEUE_DRIVER + 4, (u32)((d + 0x1000) >> 32));
        w32(R_QUEUE_DEVICE, (u32)(d + 0x2000));
        w32(R_QUEUE_DEVICE + 4, (u32)((d + 0x2000) >> 32));
        w32(R_QUEUE_READY, 1);
        avail_idx[q] = 0;
    }
    rx_seen = 0;
    w32(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    for (int i = 0; i < rx_buffers; i++) {
        desc(RX)[i].addr = RXBUF + (u64)i * 2048;
        desc(RX)[i].len = rx_len;
        desc(RX)[i].flags = rx_flags;
        desc(RX)[i].next = 0;
        avail(RX)[2 + i] = (u16)i;
    }
    avail(RX)[1] = (u16)rx_buffers;
    avail_idx[RX] = (u16)rx_buffers;
    w32(R_QUEUE_NOTIFY, RX);
}

static void setup_default(void) { setup(FEAT_MAC | FEAT_MRG | FEAT_STATUS, QSIZE, 2048, F_WRITE); }

/* Sends `len` bytes at FRAME (header included) as a one-descriptor chain from descriptor 0. */
static void send_raw(u64 addr, u32 len)
{
    u16 slot = avail_idx[TX] % QSIZE;
    desc(TX)[slot].addr = addr;
    desc(TX)[slot].len = len;
    desc(TX)[slot].flags = 0;
    desc(TX)[slot].next = 0;
    avail(TX)[2 + slot] = slot;
    avail_idx[TX]++;
    avail(TX)[1] = avail_idx[TX];
    w32(R_QUEUE_NOTIFY, TX);
}

/* Sends the frame of `len` bytes that starts after the 12-byte header at FRAME. */
static void send_frame(u32 len)
{
    for (int i = 0; i < HDR; i++)
        frame[i] = 0;
    send_raw(FRAME, HDR + len);
}

static void put16(int at, u16 v) { frame[at] = (u8)(v >> 8); frame[at + 1] = (u8)v; }
static void put32(int at, u32 v) { put16(at, (u16)(v >> 16)); put16(at + 2, (u16)v); }

/* Ethernet header from our MAC to `dst` (broadcast when null) with `type`; returns the payload offset. */
static int ether(const u8 *dst, u16 type)
{
    for (int i = 0; i < 6; i++) {
        frame[HDR + i] = dst ? dst[i] : 0xff;
        frame[HDR + 6 + i] = mac[i];
    }
    put16(HDR + 12, type);
    return HDR + 14;
}

static u16 checksum(int at, int len)
{
    u32 sum = 0;
    for (int i = 0; i + 1 < len; i += 2)
        sum += (u32)frame[at + i] << 8 | frame[at + i + 1];
    if (len & 1)
        sum += (u32)frame[at + len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (u16)~sum;
}

static const u8 gateway_mac[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};

/* An IPv4 header at `at` from 10.0.2.15 to `dst`; returns the payload offset. */
static int ipv4(int at, u8 ihl, u16 total, u16 frag, u8 proto, u32 dst)
{
    frame[at] = (u8)(0x40 | ihl);
    frame[at + 1] = 0;
    put16(at + 2, total);
    put16(at + 4, 0x1234);
    put16(at + 6, frag);
    frame[at + 8] = 64;
    frame[at + 9] = proto;
    put16(at + 10, 0);
    put32(at + 12, 0x0a00020f);
    put32(at + 16, dst);
    put16(at + 10, checksum(at, 20));
    return at + 20;
}

/* Sends an ARP request "who has 10.0.2.2, tell 10.0.2.15". */
static void send_arp_request(void)
{
    int p = ether(0, 0x0806);
    put16(p, 1); put16(p + 2, 0x0800); frame[p + 4] = 6; frame[p + 5] = 4; put16(p + 6, 1);
    for (int i = 0; i < 6; i++) { frame[p + 8 + i] = mac[i]; frame[p + 18 + i] = 0; }
    put32(p + 14, 0x0a00020f);
    put32(p + 24, 0x0a000202);
    send_frame(14 + 28);
}

/* Waits (at most `limit` polls) for a received ARP reply from 10.0.2.2; returns 1 if one arrived. */
#define LONG_WAIT 200000000ull   /* for answers that must come: seconds, ended early by the answer */
#define SHORT_WAIT 3000000ull    /* for answers that must not come: many times what delivery takes */
static int wait_arp_reply(u64 limit)
{
    for (u64 spin = 0; spin < limit; spin++) {
        u16 idx = used(RX)[1];
        while (rx_seen != idx) {
            volatile u32 *elem = (volatile u32 *)((u64)used(RX) + 4 + 8 * (rx_seen % QSIZE));
            u32 id = elem[0], len = elem[1];
            rx_seen++;
            if (id >= QSIZE || len < HDR + 42)
                continue;
            volatile u8 *b = (volatile u8 *)(RXBUF + (u64)id * 2048) + HDR;
            if (b[12] == 0x08 && b[13] == 0x06 && b[20] == 0 && b[21] == 2 &&
                b[28] == 10 && b[29] == 0 && b[30] == 2 && b[31] == 2)
                return 1;
        }
    }
    return 0;
}

static void arp_case(const char *name)
{
    setup_default();
    send_arp_request();
    int ok = wait_arp_reply(LONG_WAIT);
    report_start(name);
    print_field("reply", (u64)ok);
    uart_puts("\n");
}

/* Frames the device must pass on or drop, never choke on. */
static void frame_cases(void)
{
    setup_default();
    for (int n = 0; n < 300; n++) {
        u32 len = 14 + (u32)(next_random() % 1501);
        for (u32 i = 0; i < len; i++)
            frame[HDR + i] = (u8)next_random();
        if (n & 1)  /* half of them addressed to the gateway so slirp parses them */
            for (int i = 0; i < 6; i++) frame[HDR + i] = gateway_mac[i];
        if ((n & 3) == 1 && len >= 34) {  /* a quarter look like IPv4 to it */
            put16(HDR + 12, 0x0800);
            frame[HDR + 14] = (u8)(0x40 | (frame[HDR + 14] & 15));
        }
        send_frame(len);
    }
    report("random_frames");

    setup_default();
    send_raw(FRAME, 0);          /* no header at all */
    send_raw(FRAME, 5);          /* a partial header */
    send_frame(0);               /* a header and no frame */
    send_frame(13);              /* shorter than an Ethernet header */
    report("runts");

    setup_default();
    for (u32 i = 0; i < 100000; i++)
        frame[HDR + i] = (u8)i;
    send_frame(100000);          /* larger than any frame */
    send_frame(65536 + 18 + 1);  /* one byte over the limit */
    report("giants");

    /* Malformed IPv4 for slirp to parse. */
    setup_default();
    int p = ether(gateway_mac, 0x0800);
    ipv4(p, 15, 60, 0, 6, 0x0a000202);          /* header length 60 in a 60-byte packet */
    send_frame(14 + 60);
    ipv4(p, 5, 65535, 0, 17, 0x0a000203);       /* total length far past the frame */
    send_frame(14 + 28);
    ipv4(p, 2, 20, 0, 6, 0x0a000202);           /* header length below the minimum */
    send_frame(14 + 20);
    ipv4(p, 5, 1000, 0x2000 | 0x1fff, 17, 0x0a000203);  /* fragment at the last offset, more to come */
    send_frame(14 + 1000);
    ipv4(p, 5, 28, 0x1fff, 1, 0x0a000202);      /* last fragment of a reassembly that overflows */
    send_frame(14 + 28);
    int t = ipv4(p, 5, 40, 0, 6, 0x0a000202);   /* TCP with data offset 15 in a 20-byte segment */
    put16(t, 1234); put16(t + 2, 1); put32(t + 4, 1); put32(t + 8, 0); frame[t + 12] = 0xf0; frame[t + 13] = 0x02;
    send_frame(14 + 40);
    int u = ipv4(p, 5, 28 + 40, 0, 17, 0x0a000203);  /* UDP to the DNS server with a garbage query */
    put16(u, 5353); put16(u + 2, 53); put16(u + 4, 0xffff); put16(u + 6, 0);
    for (int i = 0; i < 40; i++) frame[u + 8 + i] = (u8)(0xc0 | i);  /* compression pointers everywhere */
    send_frame(14 + 28 + 40);
    u = ipv4(p, 5, 28 + 300, 0, 17, 0xffffffff);     /* DHCP with options that run off the end */
    put16(u, 68); put16(u + 2, 67); put16(u + 4, 8 + 300); put16(u + 6, 0);
    for (int i = 0; i < 300; i++) frame[u + 8 + i] = 0;
    frame[u + 8] = 1; frame[u + 9] = 1; frame[u + 10] = 6;
    put32(u + 8 + 236, 0x63825363);
    for (int i = 240; i < 300; i += 2) { frame[u + 8 + i] = 53; frame[u + 8 + i + 1] = 0xff; }
    send_frame(14 + 28 + 300);
    int a = ether(0, 0x0806);                        /* ARP with absurd address lengths */
    put16(a, 1); put16(a + 2, 0x0800); frame[a + 4] = 255; frame[a + 5] = 255; put16(a + 6, 1);
    send_frame(14 + 28);
    report("malformed_packets");
}

/* Waits (bounded) until the device has marked itself broken, e.g. when a reply lands in a bad buffer. */
static void wait_broken(void)
{
    for (u64 spin = 0; spin < LONG_WAIT / 8 && !(r32(R_STATUS) & 0x40); spin++)
        ;
}

/* Rings the device must refuse (DEVICE_NEEDS_RESET), on both queues. */
static void ring_cases(void)
{
    setup_default();
    send_raw(UNMAPPED, 100);
    report("tx_buffer_outside_ram");

    setup_default();
    send_raw(0xfffffffffffff000ull, 100);
    report("tx_buffer_address_wraps");

    setup_default();
    send_raw(FRAME, 0x7fffffffu);  /* runs past the end of RAM */
    report("tx_buffer_past_ram_end");

    setup_default();
    desc(TX)[0].addr = FRAME; desc(TX)[0].len = 60; desc(TX)[0].flags = F_NEXT; desc(TX)[0].next = 0;
    avail(TX)[2] = 0; avail(TX)[1] = 1;
    w32(R_QUEUE_NOTIFY, TX);
    report("tx_chain_loop");

    setup_default();
    avail(TX)[2] = 100; avail(TX)[1] = 1;
    w32(R_QUEUE_NOTIFY, TX);
    report("tx_head_out_of_range");

    setup_default();
    avail(TX)[1] = 0x4000;
    w32(R_QUEUE_NOTIFY, TX);
    report("tx_avail_far_ahead");

    /* Receive side: the reply to an ARP request lands in a bad buffer. */
    setup(FEAT_MAC | FEAT_MRG | FEAT_STATUS, QSIZE, 2048, 0);
    send_arp_request();
    wait_broken();
    report("rx_buffer_read_only");

    setup(FEAT_MAC | FEAT_MRG | FEAT_STATUS, 0, 0, 0);
    desc(RX)[0].addr = UNMAPPED; desc(RX)[0].len = 2048; desc(RX)[0].flags = F_WRITE;
    avail(RX)[2] = 0; avail(RX)[1] = 1;
    w32(R_QUEUE_NOTIFY, RX);
    send_arp_request();
    wait_broken();
    report("rx_buffer_outside_ram");

    setup(FEAT_MAC | FEAT_MRG | FEAT_STATUS, QSIZE, 4, F_WRITE);
    send_arp_request();
    wait_broken();
    report("rx_buffer_smaller_than_header");
}

/* Receive buffers too small for a frame: dropped frames, a healthy device. */
static void small_buffer_cases(void)
{
    setup(FEAT_MAC | FEAT_STATUS, QSIZE, 20, F_WRITE);  /* no MRG_RXBUF: one 20-byte buffer per frame */
    send_arp_request();
    int got = wait_arp_reply(SHORT_WAIT);
    report_start("rx_small_buffers_no_mrg");
    print_field("reply", (u64)got);
    uart_puts("\n");

    setup(FEAT_MAC | FEAT_MRG | FEAT_STATUS, QSIZE, 20, F_WRITE);  /* MRG_RXBUF: 20-byte pieces */
    send_arp_request();
    u16 before = used(RX)[1];
    for (u64 spin = 0; spin < LONG_WAIT && used(RX)[1] == before; spin++)
        ;
    report_start("rx_small_buffers_mrg");
    print_field("pieces", (u64)(u16)(used(RX)[1] - before));
    print_field("num_buffers", *(volatile u16 *)(RXBUF + 10));
    uart_puts("\n");
}

static int find_card(void)
{
    for (int slot = 0; slot < 8; slot++) {
        base = 0x10001000UL + (u64)slot * 0x1000;
        if (r32(R_MAGIC) == 0x74726976 && r32(R_VERSION) == 2 && r32(R_DEVICE_ID) == 1)
            return slot;
    }
    return -1;
}

int main(u64 dtb)
{
    (void)dtb;
    int slot = find_card();
    if (slot < 0) {
        uart_puts("NET-HOSTILE: no virtio-net card\n");
        power_off(4);
    }
    for (int i = 0; i < 6; i++)
        mac[i] = *(volatile u8 *)(base + R_CONFIG + i);
    uart_puts("NET-HOSTILE: card");
    print_field("slot", (u64)slot);
    print_field("link", *(volatile u16 *)(base + R_CONFIG + 6));
    uart_puts("\n");
    arp_case("arp_first");
    frame_cases();
    arp_case("arp_after_frames");
    ring_cases();
    arp_case("arp_after_rings");
    small_buffer_cases();
    arp_case("arp_last");
    w32(R_STATUS, 0);
    uart_puts("NET-HOSTILE: done\n");
    power_off(0);
    return 0;
}

void trap(u64 cause, u64 epc, u64 tval)
{
    uart_puts("NET-HOSTILE: unexpected trap");
    print_field("mcause", cause);
    print_field("mepc", epc);
    print_field("mtval", tval);
    uart_puts("\n");
    power_off(3);
}
