/* Fuzz target for the safetensors header parser: any byte string is treated as a whole file
 * and fed to safetensors_parse_header(); it must be accepted or rejected without crashing,
 * reading out of bounds, leaking, or returning tensors that break the promised invariants
 * (which abort here so a fuzzer reports them).
 *
 * Two ways to run it:
 *
 * 1. As a ctest (built by tests/CMakeLists.txt with FOLIO_FUZZ_MAIN=1): the main() below
 *    builds valid seed files in memory and runs argv[1] (default 20000) mutations of them with
 *    a fixed-seed PRNG, then prints how many were accepted and rejected. Over-reads of the
 *    input fault in any build (guard page, below); other memory errors and leaks need the
 *    sanitizer build (-DFOLIO_SANITIZE=ON). `fuzz_safetensors N --seeds DIR` also
 *    writes the seeds into DIR as a starting corpus for libFuzzer.
 *
 * 2. As a libFuzzer target with clang (from the repository root, clang 14 with
 *    libclang-rt-14-dev):
 *
 *      mkdir -p build-fuzz/corpus
 *      clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *          -D_GNU_SOURCE -Iengine tests/fuzz/fuzz_safetensors.c engine/safetensors.c \
 *          engine/error.c $(pkg-config --cflags --libs jansson) -o build-fuzz/fuzz_st
 *      build/tests/fuzz_safetensors 0 --seeds build-fuzz/corpus     # optional seeds
 *      build-fuzz/fuzz_st -max_total_time=20 -max_len=4096 build-fuzz/corpus
 *
 *    jansson itself is not instrumented: coverage guidance sees only our code, and an
 *    over-read inside jansson (a wrong length passed to json_loadb) is invisible to ASAN there.
 *    So every input is copied to end right before a PROT_NONE guard page (guarded_copy), and
 *    an over-read faults in any code, instrumented or not. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "safetensors.h"

/* ---------------------------------------------------------------- guarded input buffer */

/* The header bytes are read by libjansson, which AddressSanitizer does not instrument, so a
 * heap red zone would miss an over-read there. Each input is instead copied to end exactly at
 * a PROT_NONE page: reading one byte past it faults in any code. */
static uint8_t *g_guard_base;
static size_t g_guard_usable; /* bytes before the guard page */

/* Returns a copy of data[0..n) that ends right before the guard page. */
static const uint8_t *guarded_copy(const uint8_t *data, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (!g_guard_base || n > g_guard_usable) {
        if (g_guard_base) munmap(g_guard_base, g_guard_usable + page);
        g_guard_usable = (n + page - 1) / page * page;
        if (g_guard_usable == 0) g_guard_usable = page;
        g_guard_base = mmap(NULL, g_guard_usable + page, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (g_guard_base == MAP_FAILED ||
            mprotect(g_guard_base + g_guard_usable, page, PROT_NONE) != 0)
            abort();
    }
    uint8_t *p = g_guard_base + g_guard_usable - n;
    if (n) memcpy(p, data, n);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless the accepted table keeps the header's promises: names strictly increasing,
 * every range inside the data section, bytes = elements * dtype size, no shared bytes.
 * Called only on accepted input, so data holds at least the 8-byte length and the header. */
static void check_invariants(const uint8_t *data, size_t size, const st_tensor *t, int n) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (size < 8 || hlen > size - 8) abort();
    uint64_t data_size = size - 8 - hlen;
    for (int i = 0; i < n; i++) {
        if (!t[i].name || t[i].data || t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS) abort();
        if (i > 0 && strcmp(t[i - 1].name, t[i].name) >= 0) abort();
        if (t[i].offset > data_size || t[i].nbytes > data_size - t[i].offset) abort();
        uint64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0) abort();
            numel *= (uint64_t)t[i].shape[d]; /* wraps only where a zero dim follows */
        }
        if (numel * st_dtype_size(t[i].dtype) != t[i].nbytes) abort();
    }
    if (n > 64) return; /* the pairwise overlap check is quadratic */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const st_tensor *a = &t[i], *b = &t[j];
            if (a->nbytes && b->nbytes && a->offset < b->offset + b->nbytes &&
                b->offset < a->offset + a->nbytes)
                abort();
        }
}

/* Parses one input from a guarded copy; returns 1 when accepted, 0 when rejected. */
static int run_one(const uint8_t *input, size_t size) {
    const uint8_t *data = guarded_copy(input, size);
    st_tensor *t = NULL;
    int n = 0;
    if (safetensors_parse_header(data, size, size, "fuzz", &t, &n) != 0) {
        if (t || n) abort(); /* failure must leave nothing behind */
        return 0;
    }
    check_invariants(data, size, t, n);
    safetensors_free_tensors(t, n);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    run_one(data, size);
    return 0;
}

#ifdef FOLIO_FUZZ_MAIN

/* Releases the guarded buffer (for a leak-free exit). */
static void guarded_free(void) {
    if (g_guard_base) munmap(g_guard_base, g_guard_usable + (size_t)sysconf(_SC_PAGESIZE));
    g_guard_base = NULL;
    g_guard_usable = 0;
}

/* ---------------------------------------------------------------- growable byte buffer */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void bytes_reserve(bytes *b, size_t extra) {
    if (b->p && b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort();
    b->cap = cap;
}

/* Inserts len bytes of src at position at (0 <= at <= b->n). */
static void bytes_insert(bytes *b, size_t at, const void *src, size_t len) {
    bytes_reserve(b, len);
    memmove(b->p + at + len, b->p + at, b->n - at);
    memcpy(b->p + at, src, len);
    b->n += len;
}

static void bytes_erase(bytes *b, size_t at, size_t len) {
    memmove(b->p + at, b->p + at + len, b->n - at - len);
    b->n -= len;
}

/* ---------------------------------------------------------------- PRNG (splitmix64) */

static uint64_t g_rng = 0x5afe7e25f00dULL;

/* Next 64 random bits; the fixed start makes every run the same. */
static uint64_t rng_next(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform-enough integer in [0, n); 0 when n == 0. */
static size_t rng_below(size_t n) { return n ? (size_t)(rng_next() % n) : 0; }

/* ---------------------------------------------------------------- seeds */

typedef struct {
    char *json;     /* header text */
    size_t pad;     /* trailing spaces */
    size_t data_len;
} seed;

#define MAX_SEEDS 8

/* A header of n U8/F32/BF16 tensors laid out back to back, with metadata; returns its data
 * length in *data_len. */
static char *many_tensor_json(int n, size_t *data_len) {
    size_t cap = 128 + (size_t)n * 128, used = 0;
    char *s = malloc(cap);
    if (!s) abort();
    used += (size_t)snprintf(s, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    static const char *const dt[3] = {"U8", "F32", "BF16"};
    static const uint64_t sz[3] = {1, 4, 2};
    for (int i = 0; i < n; i++) {
        uint64_t rows = 1 + (uint64_t)i % 3, cols = 1 + (uint64_t)i % 5;
        uint64_t nb = rows * cols * sz[i % 3];
        used += (size_t)snprintf(s + used, cap - used,
                                 ",\"model.layers.%d.w\":{\"dtype\":\"%s\",\"shape\":[%llu,%llu],"
                                 "\"data_offsets\":[%llu,%llu]}",
                                 i, dt[i % 3], (unsigned long long)rows,
                                 (unsigned long long)cols, (unsigned long long)off,
                                 (unsigned long long)(off + nb));
        off += nb;
    }
    snprintf(s + used, cap - used, "}");
    *data_len = (size_t)off;
    return s;
}

/* strdup that aborts on out-of-memory (C11 has no strdup). */
static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (!p) abort();
    memcpy(p, s, n);
    return p;
}

/* Fills seeds[] with valid headers; returns how many. */
static int make_seeds(seed *seeds) {
    int k = 0;
    seeds[k++] = (seed){dup_str("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                                "\"data_offsets\":[0,24]},"
                                "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                                "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],"
                                "\"data_offsets\":[32,40]}}"),
                        0, 40};
    seeds[k++] = (seed){dup_str("{\"__metadata__\":{\"format\":\"pt\"},"
                                "\"embed\":{\"dtype\":\"BF16\",\"shape\":[4,2],"
                                "\"data_offsets\":[0,16]}}"),
                        7, 16};
    seeds[k++] = (seed){dup_str("{}"), 6, 0};
    seeds[k++] = (seed){dup_str("{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                                "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                                "\"d\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,3],"
                                "\"data_offsets\":[8,11]},"
                                "\"f\":{\"dtype\":\"F8_E5M2\",\"shape\":[1],"
                                "\"data_offsets\":[12,13]}}"),
                        3, 16};
    size_t dl;
    char *many = many_tensor_json(24, &dl);
    seeds[k++] = (seed){many, 0, dl};
    return k;
}

/* Assembles a file image: LE u64 length, header bytes, data bytes (a repeating pattern). */
static void assemble(bytes *out, uint64_t len_field, const uint8_t *hdr, size_t hdr_len,
                     size_t data_len) {
    out->n = 0;
    bytes_reserve(out, 8 + hdr_len + data_len);
    for (int i = 0; i < 8; i++) out->p[i] = (uint8_t)(len_field >> (8 * i));
    memcpy(out->p + 8, hdr, hdr_len);
    for (size_t i = 0; i < data_len; i++) out->p[8 + hdr_len + i] = (uint8_t)(i * 37 + 11);
    out->n = 8 + hdr_len + data_len;
}

/* Sets hdr to the seed's header text followed by its padding spaces. */
static void seed_header(const seed *s, bytes *hdr) {
    hdr->n = 0;
    bytes_insert(hdr, 0, s->json, strlen(s->json));
    bytes_reserve(hdr, s->pad);
    memset(hdr->p + hdr->n, ' ', s->pad);
    hdr->n += s->pad;
}

/* Writes each seed as a file in dir (a starting corpus for libFuzzer). */
static int write_seeds(const seed *seeds, int n, const char *dir) {
    bytes img = {0}, hdr = {0};
    for (int i = 0; i < n; i++) {
        seed_header(&seeds[i], &hdr);
        assemble(&img, hdr.n, hdr.p, hdr.n, seeds[i].data_len);
        char path[4096];
        snprintf(path, sizeof path, "%s/seed%d.safetensors", dir, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(img.p, 1, img.n, f) != img.n || fclose(f) != 0) {
            fprintf(stderr, "fuzz_safetensors: cannot write %s\n", path);
            free(img.p);
            free(hdr.p);
            return 1;
        }
    }
    free(img.p);
    free(hdr.p);
    return 0;
}

/* ---------------------------------------------------------------- mutations */

static const char INTERESTING_BYTES[] = "\"[]{},:0123456789-+eE. \\u\0\xff";

static const char *const INTERESTING_TOKENS[] = {
    "18446744073709551615", "18446744073709551616", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "4611686018427387904", "4294967296",
    "1e400", "-1e400", "1e-400", "-1", "-0", "0", "1", "2.5", "1e2", "NaN", "Infinity",
    "null", "true", "[]", "{}", "[0,0]", "[1,2,3,4,5,6,7,8,9]", "\"F32\"", "\"BF16\"",
    "\"F16\"", "\"F8_E4M3\"", "\"Q4\"", "\"__metadata__\"", "\"dtype\"", "\"shape\"",
    "\"data_offsets\"", "\\u0000", "\\ud800", "\"\\u00e9\"", "\xc3\x28", "\"\"", ",", ":",
    "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},",
};
#define N_TOKENS (sizeof INTERESTING_TOKENS / sizeof INTERESTING_TOKENS[0])

/* Replaces the run of digits (and '-') around a random digit with an interesting token. */
static void mutate_number(bytes *h) {
    for (int tries = 0; tries < 8 && h->n; tries++) {
        size_t at = rng_below(h->n);
        if (h->p[at] < '0' || h->p[at] > '9') continue;
        size_t a = at, b = at;
        while (a > 0 && ((h->p[a - 1] >= '0' && h->p[a - 1] <= '9') || h->p[a - 1] == '-')) a--;
        while (b < h->n && h->p[b] >= '0' && h->p[b] <= '9') b++;
        bytes_erase(h, a, b - a);
        const char *tok = INTERESTING_TOKENS[rng_below(12)]; /* the numbers come first */
        bytes_insert(h, a, tok, strlen(tok));
        return;
    }
}

/* Applies one random mutation to the header bytes. */
static void mutate_once(bytes *h) {
    size_t at = rng_below(h->n + 1);
    switch (rng_below(8)) {
    case 0: /* bit flip */
        if (h->n) h->p[rng_below(h->n)] ^= (uint8_t)(1u << rng_below(8));
        break;
    case 1: /* replace a byte with an interesting one */
        if (h->n) h->p[rng_below(h->n)] = (uint8_t)INTERESTING_BYTES[rng_below(
                      sizeof INTERESTING_BYTES - 1)];
        break;
    case 2: /* truncate */
        h->n = at;
        break;
    case 3: { /* insert an interesting token */
        const char *tok = INTERESTING_TOKENS[rng_below(N_TOKENS)];
        bytes_insert(h, at, tok, strlen(tok));
        break;
    }
    case 4: { /* duplicate a chunk somewhere else */
        if (!h->n) break;
        size_t a = rng_below(h->n), len = 1 + rng_below(h->n - a < 64 ? h->n - a : 64);
        uint8_t chunk[64];
        memcpy(chunk, h->p + a, len);
        bytes_insert(h, rng_below(h->n + 1), chunk, len);
        break;
    }
    case 5: { /* delete a chunk */
        if (!h->n) break;
        size_t a = rng_below(h->n), len = 1 + rng_below(h->n - a < 16 ? h->n - a : 16);
        bytes_erase(h, a, len);
        break;
    }
    case 6: mutate_number(h); break;
    default: { /* insert one interesting byte */
        uint8_t c = (uint8_t)INTERESTING_BYTES[rng_below(sizeof INTERESTING_BYTES - 1)];
        bytes_insert(h, at, &c, 1);
        break;
    }
    }
}

/* The header length field to write: mostly the true length, sometimes a lie. */
static uint64_t pick_length(size_t true_len) {
    static const uint64_t lies[] = {0, 1, 7, 8, UINT64_MAX, (uint64_t)1 << 63,
                                    ST_MAX_HEADER_BYTES, (uint64_t)ST_MAX_HEADER_BYTES + 1};
    switch (rng_below(16)) {
    case 0: return lies[rng_below(sizeof lies / sizeof lies[0])];
    case 1: return true_len + 1 + rng_below(64);
    case 2: return true_len ? true_len - 1 - rng_below(true_len) : 0;
    default: return true_len;
    }
}

/* One fuzz case from seed s: mutate the header 1..8 times, pick a length field and a data
 * length (sometimes short or long), sometimes flip raw bytes of the whole image, and run it
 * from a guarded copy so any over-read faults. */
static int fuzz_case(const seed *s, bytes *hdr, bytes *img) {
    seed_header(s, hdr);
    int rounds = 1 + (int)rng_below(8);
    if (rng_below(10) == 0) rounds = 0; /* unmutated header, mutated frame only */
    for (int i = 0; i < rounds; i++) mutate_once(hdr);
    size_t data_len = s->data_len;
    switch (rng_below(8)) {
    case 0: data_len = rng_below(data_len + 1); break;
    case 1: data_len += rng_below(32); break;
    default: break;
    }
    assemble(img, pick_length(hdr->n), hdr->p ? hdr->p : (const uint8_t *)"", hdr->n,
             data_len);
    if (rng_below(16) == 0 && img->n)
        for (int i = 0, k = 1 + (int)rng_below(4); i < k; i++)
            img->p[rng_below(img->n)] ^= (uint8_t)(1u << rng_below(8));
    return run_one(img->p, img->n);
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    seed seeds[MAX_SEEDS];
    int n_seeds = make_seeds(seeds), rc = 0;
    bytes hdr = {0}, img = {0};

    /* Every seed must be accepted as is: otherwise the parser rejects valid files. */
    for (int i = 0; i < n_seeds; i++) {
        seed_header(&seeds[i], &hdr);
        assemble(&img, hdr.n, hdr.p, hdr.n, seeds[i].data_len);
        if (!run_one(img.p, img.n)) {
            fprintf(stderr, "fuzz_safetensors: valid seed %d rejected: %s\n", i,
                    folio_last_error());
            rc = 1;
        }
    }
    if (argc > 3 && strcmp(argv[2], "--seeds") == 0 && write_seeds(seeds, n_seeds, argv[3]))
        rc = 1;

    long accepted = 0;
    for (long it = 0; it < iters; it++)
        accepted += fuzz_case(&seeds[rng_below((size_t)n_seeds)], &hdr, &img);
    printf("fuzz_safetensors: %ld inputs, %ld accepted, %ld rejected\n", iters, accepted,
           iters - accepted);

    for (int i = 0; i < n_seeds; i++) free(seeds[i].json);
    free(hdr.p);
    free(img.p);
    guarded_free();
    return rc;
}

#endif /* FOLIO_FUZZ_MAIN */
