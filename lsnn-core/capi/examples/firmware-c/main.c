/*
 * lsnn-core from C on a Cortex-M4F (QEMU mps2-an386), through the C API (lsnn.h,
 * liblsnn_capi.a): runs the embedded model on the embedded input sequences and prints, per
 * sequence, the number of spikes and the predicted class of every readout window, in the format
 * of `lsnn-host infer --inputs` (and of the Rust firmware, lsnn-core/firmware).
 *
 * No heap: the network and the per-window sums live in the RAM after .bss (the linker
 * script's arena), sized at run time by lsnn_model_check. bench_mark(t) runs at the start of
 * every step and once after the last step of a sequence, sequence_mark(s) before each sequence
 * (the instruction-counting QEMU plugin logs the count at each).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lsnn.h"
#include "semihosting.h"

extern const uint8_t lsnn_model[], lsnn_model_end[];
extern const uint8_t lsnn_inputs[], lsnn_inputs_end[];
extern uint8_t __lsnn_arena_start[], __lsnn_arena_end[];

static volatile uint32_t last_step, last_sequence;

__attribute__((noinline)) void bench_mark(uint32_t t) { last_step = t; }
__attribute__((noinline)) void sequence_mark(uint32_t s) { last_sequence = s; }

static int fail(const char *what, const char *why) {
    sh_puts("error: ");
    sh_puts(what);
    sh_puts(": ");
    sh_puts(why);
    sh_puts("\n");
    return 1;
}

/* ---- the input sequences (format of lsnn_core::sequence, version 1) ---- */

struct sequences {
    const uint8_t *bytes;
    uint32_t len, n_in, count, steps, windows;
};

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Checks the header and the sequence table; the steps are checked as they are read. */
static const char *open_sequences(struct sequences *s, const uint8_t *b, uint32_t len) {
    if (len < 32 || memcmp(b, "LSNNSEQ", 8) != 0) return "not an LSNN sequence file";
    if ((b[8] | b[9] << 8) != 1) return "unsupported version (this reads version 1)";
    s->bytes = b;
    s->len = u32_at(b + 24);
    s->n_in = (uint32_t)(b[10] | b[11] << 8);
    s->count = u32_at(b + 12);
    s->steps = u32_at(b + 16);
    s->windows = u32_at(b + 20);
    if (s->len != len) return "the declared length differs from the embedded bytes";
    if (s->steps == 0 || s->windows == 0 || s->steps % s->windows != 0)
        return "steps must be a multiple of the windows";
    if (s->count > (len - 32) / 4 - 1) return "the sequence table does not fit";
    return NULL;
}

/* The bytes of sequence `k`: [*start, *end). */
static const char *sequence_range(const struct sequences *s, uint32_t k, uint32_t *start,
                                  uint32_t *end) {
    *start = u32_at(s->bytes + 28 + 4 * k);
    *end = u32_at(s->bytes + 32 + 4 * k);
    if (*start > *end || *end > s->len - 4) return "a sequence lies outside the file";
    return NULL;
}

/* ---- output ---- */

static void put_u64(uint64_t x) {
    char digits[21];
    int at = 20;
    digits[at] = 0;
    do {
        digits[--at] = (char)('0' + x % 10);
        x /= 10;
    } while (x != 0);
    sh_puts(digits + at);
}

/* ---- the run ---- */

/* Memory from the arena, aligned to `align` (a power of two); NULL when it is used up. */
static uint8_t *arena_at;
static void *arena_take(size_t bytes, size_t align) {
    uintptr_t at = ((uintptr_t)arena_at + align - 1) & ~(uintptr_t)(align - 1);
    if (at > (uintptr_t)__lsnn_arena_end || bytes > (uintptr_t)__lsnn_arena_end - at) return NULL;
    arena_at = (uint8_t *)(at + bytes);
    return (void *)at;
}

/* The first largest mean, as lsnn_core::sequence::window_class. */
static uint32_t window_class(const float *means, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t o = 1; o < n; o++)
        if (means[o] > means[best]) best = o;
    return best;
}

int main(void) {
    size_t model_len = (size_t)(lsnn_model_end - lsnn_model);
    lsnn_model_info info;
    lsnn_status status = lsnn_model_check(lsnn_model, model_len, &info);
    if (status != LSNN_OK) {
        char why[160];
        lsnn_model_error(lsnn_model, model_len, why, sizeof why);
        return fail("the embedded model", why);
    }
    struct sequences seqs;
    const char *bad = open_sequences(&seqs, lsnn_inputs, (uint32_t)(lsnn_inputs_end - lsnn_inputs));
    if (bad) return fail("the embedded inputs", bad);
    if (seqs.n_in != info.n_in) return fail("the embedded inputs", "n_in differs from the model's");

    arena_at = __lsnn_arena_start;
    void *memory = arena_take(info.net_bytes, LSNN_NET_ALIGN);
    float *y = arena_take(info.n_out * sizeof(float), sizeof(float));
    float *sums = arena_take(info.n_out * sizeof(float), sizeof(float));
    uint16_t *classes = arena_take(seqs.windows * sizeof(uint16_t), sizeof(uint16_t));
    if (!memory || !y || !sums || !classes) return fail("memory", "the arena is too small");
    lsnn_net *net;
    status = lsnn_net_init(lsnn_model, model_len, memory, info.net_bytes, &net);
    if (status != LSNN_OK) return fail("lsnn_net_init", lsnn_status_message(status));

    static const char *const kinds[] = {"f32", "i16", "i8"};
    char line[160];
    snprintf(line, sizeof line,
             "lsnn-c weights %s n_in %lu n_rec %lu n_out %lu sequences %lu steps %lu "
             "net_bytes %lu arena_bytes %lu\n",
             info.weight_kind < 3 ? kinds[info.weight_kind] : "?", (unsigned long)info.n_in,
             (unsigned long)info.n_rec, (unsigned long)info.n_out, (unsigned long)seqs.count,
             (unsigned long)seqs.steps, (unsigned long)info.net_bytes,
             (unsigned long)(arena_at - __lsnn_arena_start));
    sh_puts(line);

    const uint32_t window_len = seqs.steps / seqs.windows;
    const float len = (float)window_len;
    uint32_t channels[256];
    for (uint32_t s = 0; s < seqs.count; s++) {
        sequence_mark(s);
        uint32_t at, end;
        if ((bad = sequence_range(&seqs, s, &at, &end))) return fail("the embedded inputs", bad);
        lsnn_net_reset(net);
        uint64_t spikes = 0;
        uint32_t filled = 0, window = 0;
        memset(sums, 0, info.n_out * sizeof(float));
        for (uint32_t t = 0; t < seqs.steps; t++) {
            bench_mark(t);
            if (at >= end || seqs.bytes[at] > end - at - 1)
                return fail("the embedded inputs", "a sequence is short");
            uint32_t count = seqs.bytes[at++];
            for (uint32_t k = 0; k < count; k++) channels[k] = seqs.bytes[at++];
            uint32_t stepped;
            status = lsnn_net_step(net, channels, count, &stepped);
            if (status != LSNN_OK) return fail("lsnn_net_step", lsnn_status_message(status));
            spikes += stepped;
            lsnn_net_outputs(net, y, info.n_out);
            /* The window means of lsnn_core::sequence::WindowMeans: y / len added in step
               order, in float (no contraction: there is no product to fuse). */
            for (uint32_t o = 0; o < info.n_out; o++) sums[o] += y[o] / len;
            if (++filled == window_len) {
                classes[window++] = (uint16_t)window_class(sums, info.n_out);
                memset(sums, 0, info.n_out * sizeof(float));
                filled = 0;
            }
        }
        bench_mark(seqs.steps);
        snprintf(line, sizeof line, "seq %lu spikes ", (unsigned long)s);
        sh_puts(line);
        put_u64(spikes);
        sh_puts(" pred");
        for (uint32_t w = 0; w < window; w++) {
            snprintf(line, sizeof line, " %u", (unsigned)classes[w]);
            sh_puts(line);
        }
        sh_puts("\n");
    }
    sh_puts("lsnn-c done\n");
    return 0;
}
