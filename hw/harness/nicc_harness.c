/*
 * The test harness for nicc's native objects: a C dataplane stand-in that links one object
 * written by `nicc compile` and runs its programs on requests from a host process, while the
 * host's runtime (nicc's `sim::runtime`, the one every engine shares) decides every helper
 * and map result.
 *
 * Why it exists: an object for another architecture (aarch64 under qemu-user) must be checked
 * against the golden interpreter bit for bit. Reimplementing maps and helpers in C would test
 * a second runtime, not the object; instead every callback of the ABI (see
 * backends/src/native/abi.rs) is forwarded over stdin/stdout to the host, which answers it
 * exactly as the in-process JIT engine answers it.
 *
 * Memory that native code reaches inline lives here: the XDP frame buffer, the eight stack
 * frames and the global data of array maps. The host holds its own copy of each. Both sides
 * keep a shadow of every such block as it was last exchanged, and every message carries the
 * byte range of each block that changed since (one range per block), so a callback costs a
 * few bytes unless memory really changed.
 *
 * Compile with the object and its header, e.g.
 *   cc -O2 -static -include prog.h nicc_harness.c prog.o -o harness
 *
 * Protocol: a byte stream of little-endian 64-bit words (and raw bytes inside block
 * changes). Host to harness: SETUP once, then per run RUN, answered by CALL messages (each
 * answered by REPLY) and finally DONE; QUIT ends the process. The host side is
 * tests/support/native_remote.rs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    OP_QUIT = 0,
    OP_SETUP = 1,
    OP_RUN = 2,
    OP_CALL = 3,
    OP_DONE = 4,
    OP_REPLY = 5,
};

enum {
    CB_LOAD = 0,
    CB_STORE = 1,
    CB_ATOMIC = 2,
    CB_ENTER_CALL = 3,
    CB_TAIL_CALL = 4,
    CB_MAP_VALUE_ADDR = 5,
    CB_HELPER = 6,
};

/* ---- buffered I/O on fds 0 and 1 ---- */

static uint8_t in_buf[1 << 16];
static size_t in_pos, in_len;
static uint8_t out_buf[1 << 16];
static size_t out_len;

static void flush_out(void) {
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(1, out_buf + done, out_len - done);
        if (n <= 0)
            _exit(3);
        done += (size_t)n;
    }
    out_len = 0;
}

static void put_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        if (out_len == sizeof out_buf)
            flush_out();
        size_t k = sizeof out_buf - out_len;
        if (k > n)
            k = n;
        memcpy(out_buf + out_len, b, k);
        out_len += k;
        b += k;
        n -= k;
    }
}

static void put(uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put_bytes(b, 8);
}

static void get_bytes(void *p, size_t n) {
    uint8_t *b = p;
    while (n > 0) {
        if (in_pos == in_len) {
            ssize_t r = read(0, in_buf, sizeof in_buf);
            if (r <= 0)
                _exit(r == 0 ? 0 : 4); /* the host went away */
            in_pos = 0;
            in_len = (size_t)r;
        }
        size_t k = in_len - in_pos;
        if (k > n)
            k = n;
        memcpy(b, in_buf + in_pos, k);
        in_pos += k;
        b += k;
        n -= k;
    }
}

static uint64_t get(void) {
    uint8_t b[8];
    get_bytes(b, 8);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* ---- memory blocks shared with the host ---- */

/* Block 0 is the XDP frame buffer, blocks 1..NICC_MAX_FRAMES the stack frames, then one
 * block per map (empty unless the map holds global data). */
#define FIRST_GLOBAL_BLOCK (1 + NICC_MAX_FRAMES)
#define NUM_BLOCKS (FIRST_GLOBAL_BLOCK + NICC_NUM_MAPS)

struct block {
    uint8_t *data;
    uint8_t *shadow;
    uint64_t size;
};

static struct block blocks[NUM_BLOCKS];

static void *zalloc(uint64_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p)
        _exit(5);
    return p;
}

static void alloc_block(int i, uint64_t size) {
    blocks[i].size = size;
    /* 8-byte alignment at least, so aligned atomics in native code stay aligned. */
    blocks[i].data = zalloc(size + 8);
    blocks[i].shadow = zalloc(size + 8);
}

/* Sends the range of every block that changed since the last exchange. */
static void put_changes(void) {
    uint64_t changed = 0;
    for (int i = 0; i < NUM_BLOCKS; i++)
        if (blocks[i].size && memcmp(blocks[i].data, blocks[i].shadow, blocks[i].size) != 0)
            changed++;
    put(changed);
    for (int i = 0; i < NUM_BLOCKS; i++) {
        struct block *b = &blocks[i];
        if (!b->size || memcmp(b->data, b->shadow, b->size) == 0)
            continue;
        uint64_t lo = 0, hi = b->size;
        while (b->data[lo] == b->shadow[lo])
            lo++;
        while (b->data[hi - 1] == b->shadow[hi - 1])
            hi--;
        put((uint64_t)i);
        put(lo);
        put(hi - lo);
        put_bytes(b->data + lo, hi - lo);
        memcpy(b->shadow + lo, b->data + lo, hi - lo);
    }
}

/* Applies the host's changes to a block and its shadow. */
static void get_changes(void) {
    uint64_t changed = get();
    for (uint64_t k = 0; k < changed; k++) {
        uint64_t i = get(), lo = get(), len = get();
        if (i >= NUM_BLOCKS || lo > blocks[i].size || len > blocks[i].size - lo)
            _exit(6);
        get_bytes(blocks[i].data + lo, len);
        memcpy(blocks[i].shadow + lo, blocks[i].data + lo, len);
    }
}

/* ---- program entries ---- */

struct entry {
    void *fn;
    int nparams;
};

#define NICC_HARNESS_ENTRY(index, symbol, nparams) {(void *)symbol, nparams},
static const struct entry entries[NICC_NUM_PROGRAMS + 1] = {
    NICC_FOR_EACH_PROGRAM(NICC_HARNESS_ENTRY){0, 0}};

typedef uint64_t (*entry0)(struct nicc_ctx *);
typedef uint64_t (*entry1)(struct nicc_ctx *, uint64_t);
typedef uint64_t (*entry2)(struct nicc_ctx *, uint64_t, uint64_t);
typedef uint64_t (*entry3)(struct nicc_ctx *, uint64_t, uint64_t, uint64_t);
typedef uint64_t (*entry4)(struct nicc_ctx *, uint64_t, uint64_t, uint64_t, uint64_t);
typedef uint64_t (*entry5)(struct nicc_ctx *, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

static uint64_t call_entry(uint64_t program, struct nicc_ctx *ctx, const uint64_t *a) {
    const struct entry *e = &entries[program];
    switch (e->nparams) {
    case 0:
        return ((entry0)e->fn)(ctx);
    case 1:
        return ((entry1)e->fn)(ctx, a[0]);
    case 2:
        return ((entry2)e->fn)(ctx, a[0], a[1]);
    case 3:
        return ((entry3)e->fn)(ctx, a[0], a[1], a[2]);
    case 4:
        return ((entry4)e->fn)(ctx, a[0], a[1], a[2], a[3]);
    default:
        return ((entry5)e->fn)(ctx, a[0], a[1], a[2], a[3], a[4]);
    }
}

/* ---- callbacks: forwarded to the host ---- */

static uint64_t remote(struct nicc_ctx *ctx, uint64_t kind, uint64_t a0, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5) {
    put(OP_CALL);
    put(kind);
    put(a0);
    put(a1);
    put(a2);
    put(a3);
    put(a4);
    put(a5);
    put(ctx->depth);
    put(ctx->insn);
    put_changes();
    flush_out();
    if (get() != OP_REPLY)
        _exit(7);
    uint64_t result = get();
    uint64_t fault = get();
    ctx->depth = get();
    ctx->pkt_data = get();
    ctx->pkt_end = get();
    ctx->pkt_meta = get();
    get_changes();
    if (fault)
        ctx->fault = NICC_FAULT_CALLBACK;
    return result;
}

uint64_t nicc_load(struct nicc_ctx *ctx, uint64_t addr, uint64_t size) {
    return remote(ctx, CB_LOAD, addr, size, 0, 0, 0, 0);
}

uint64_t nicc_store(struct nicc_ctx *ctx, uint64_t addr, uint64_t size, uint64_t value) {
    return remote(ctx, CB_STORE, addr, size, value, 0, 0, 0);
}

uint64_t nicc_atomic(struct nicc_ctx *ctx, uint64_t addr, uint64_t size, uint64_t op,
                     uint64_t value, uint64_t expected) {
    return remote(ctx, CB_ATOMIC, addr, size, op, value, expected, 0);
}

uint64_t nicc_enter_call(struct nicc_ctx *ctx) {
    return remote(ctx, CB_ENTER_CALL, 0, 0, 0, 0, 0, 0);
}

uint64_t nicc_map_value_addr(struct nicc_ctx *ctx, uint64_t map, uint64_t offset) {
    return remote(ctx, CB_MAP_VALUE_ADDR, map, offset, 0, 0, 0, 0);
}

/* The host decides whether the tail call happens (0: it failed, continue; p + 1: run
 * program p); the target runs here, in the caller's frame, as the kernel reuses it. */
uint64_t nicc_tail_call(struct nicc_ctx *ctx, uint64_t ctx_arg, uint64_t map, uint64_t index) {
    uint64_t target = remote(ctx, CB_TAIL_CALL, ctx_arg, map, index, 0, 0, 0);
    if (ctx->fault || target == 0 || target > NICC_NUM_PROGRAMS)
        return 0;
    uint64_t args[5] = {ctx_arg, 0, 0, 0, 0};
    uint64_t r = call_entry(target - 1, ctx, args);
    if (!ctx->fault)
        ctx->tail_result = r;
    return 1;
}

#define NICC_HARNESS_HELPER(name, id)                                                         \
    uint64_t nicc_helper_##name(struct nicc_ctx *ctx, uint64_t r1, uint64_t r2, uint64_t r3,  \
                                uint64_t r4, uint64_t r5) {                                   \
        return remote(ctx, CB_HELPER, id, r1, r2, r3, r4, r5);                                \
    }
NICC_FOR_EACH_HELPER(NICC_HARNESS_HELPER)

/* ---- the request loop ---- */

static uint64_t map_handles[NICC_NUM_MAPS + 1];
static struct nicc_global globals[NICC_NUM_MAPS + 1];
static uint64_t *func_values;
#ifdef NICC_CTX_HAS_value_regions
static const uint64_t no_value_region[4];
#endif

int main(void) {
    if (get() != OP_SETUP)
        return 2;
    uint64_t packet_size = get();
    uint64_t packet_base = get(); /* the value of byte 0 of the frame buffer */
    uint64_t nmaps = get();
    if (nmaps != NICC_NUM_MAPS)
        return 8;
    alloc_block(0, packet_size);
    for (int d = 0; d < NICC_MAX_FRAMES; d++)
        alloc_block(1 + d, NICC_FRAME_SIZE);
    for (uint64_t m = 0; m < nmaps; m++)
        alloc_block(FIRST_GLOBAL_BLOCK + (int)m, get());
    uint64_t nfuncs = get();
    func_values = zalloc(8 * (nfuncs + 1));
    for (uint64_t f = 0; f < nfuncs; f++)
        func_values[f] = get();

    for (;;) {
        uint64_t op = get();
        if (op == OP_QUIT)
            return 0;
        if (op != OP_RUN)
            return 9;
        struct nicc_ctx ctx;
        memset(&ctx, 0, sizeof ctx);
        uint64_t program = get();
        if (program >= NICC_NUM_PROGRAMS)
            return 10;
        uint64_t args[5];
        for (int i = 0; i < 5; i++)
            args[i] = get();
        ctx.ctx_value = get();
        ctx.pkt_data = get();
        ctx.pkt_end = get();
        ctx.pkt_meta = get();
        ctx.ingress_ifindex = get();
        ctx.rx_queue_index = get();
        ctx.budget = get();
        for (uint64_t m = 0; m < nmaps; m++) {
            map_handles[m] = get();
            globals[m].value = get();
            globals[m].writable = get();
            /* A map without inline global data keeps an all-zero entry, as in the JIT. */
            globals[m].bias = globals[m].value == 0
                                  ? 0
                                  : (uint64_t)(uintptr_t)blocks[FIRST_GLOBAL_BLOCK + m].data -
                                        globals[m].value;
        }
        for (int d = 0; d < NICC_MAX_FRAMES; d++) {
            ctx.frames[d].value = get();
            ctx.frames[d].bias = (uint64_t)(uintptr_t)blocks[1 + d].data - ctx.frames[d].value;
        }
        ctx.pkt_bias = (uint64_t)(uintptr_t)blocks[0].data - packet_base;
        ctx.depth = 1;
        ctx.map_handles = map_handles;
        ctx.globals = globals;
        ctx.func_values = func_values;
#ifdef NICC_CTX_HAS_value_regions
        /* No map value is reached inline: every access to one goes through nicc_load and
         * nicc_store to the host, which holds the maps. The table still needs one entry. */
        ctx.value_regions = no_value_region;
        ctx.value_region_count = 0;
#endif
#ifdef NICC_CTX_HAS_lookup_cache
        /* No lookup cache: every array lookup calls the helper, which the host answers. */
        ctx.lookup_cache = 0;
#endif
        get_changes();
        uint64_t r0 = call_entry(program, &ctx, args);
        put(OP_DONE);
        put(r0);
        put(ctx.fault);
        put(ctx.insn);
        put(ctx.depth);
        put_changes();
        flush_out();
    }
}
