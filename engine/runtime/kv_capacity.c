/* KV pool size from measured memory. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "kv_capacity.h"
#include "progress.h"

/* Not one block fits: what the memory went to, every figure a size (never a negative
 * remainder). */
static int no_room(const kv_capacity_in *in, const char *knob) {
    char one[32], allowed[32], total[32], used[32], ws[32];
    format_bytes((double)in->block_bytes, one, sizeof one);
    if (in->kv_cache_memory > 0)
        return folio_fail("%s %lld bytes is less than one KV block (%s, all layers, K and V): "
                          "raise it", knob, in->kv_cache_memory, one);
    const double in_use = in->total_bytes > in->free_bytes
                              ? (double)(in->total_bytes - in->free_bytes) : 0.0;
    format_bytes(in->utilization * (double)in->total_bytes, allowed, sizeof allowed);
    format_bytes((double)in->total_bytes, total, sizeof total);
    format_bytes(in_use, used, sizeof used);
    format_bytes((double)in->workspace_bytes, ws, sizeof ws);
    return folio_fail("no memory is left for the KV cache: %s %.2f allows %s of %s; %s is in use "
                      "already (the weights among it) and the activation workspace needs %s (it "
                      "grows with --max-num-batched-tokens and --max-model-len), which leaves "
                      "less than one block of %s: raise %s or lower --max-num-batched-tokens or "
                      "--max-model-len", knob, in->utilization, allowed, total, used, ws, one,
                      knob);
}

int kv_capacity_blocks(const kv_capacity_in *in, int *num_blocks) {
    if (in->free_bytes > 0 && in->workspace_bytes > in->free_bytes) {
        char ws[32], avail[32];
        return folio_fail("the activation workspace needs %s, more than the %s of memory free (it "
                          "grows with --max-num-batched-tokens and --max-model-len): lower them",
                          format_bytes((double)in->workspace_bytes, ws, sizeof ws),
                          format_bytes((double)in->free_bytes, avail, sizeof avail));
    }
    if (in->num_blocks_override > 0) {
        *num_blocks = in->num_blocks_override;
        return 0;
    }
    if (in->block_bytes == 0) return folio_fail("KV capacity: a block of 0 bytes");
    double budget;
    const char *knob;
    if (in->kv_cache_memory > 0) {
        budget = (double)in->kv_cache_memory;
        knob = "--kv-cache-memory";
    } else {
        if (!(in->utilization > 0.0 && in->utilization <= 1.0))
            return folio_fail("--gpu-memory-utilization: %g is out of range (0, 1]",
                              in->utilization);
        double used = (double)in->total_bytes - (double)in->free_bytes;
        budget = in->utilization * (double)in->total_bytes - used - (double)in->workspace_bytes;
        knob = "--gpu-memory-utilization";
    }
    double blocks = budget / (double)in->block_bytes;
    if (blocks < 1.0) return no_room(in, knob);
    if (in->max_useful_blocks > 0 && blocks > in->max_useful_blocks) blocks = in->max_useful_blocks;
    if (blocks > 1 << 30) blocks = 1 << 30;
    *num_blocks = (int)blocks;
    return 0;
}

int kv_capacity_host_memory(size_t *total, size_t *available) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return folio_fail("/proc/meminfo: cannot open it to size the KV cache");
    char line[256];
    unsigned long long kb;
    *total = *available = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) *total = (size_t)kb * 1024;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *available = (size_t)kb * 1024;
    }
    fclose(f);
    if (*total == 0 || *available == 0)
        return folio_fail("/proc/meminfo: no MemTotal or MemAvailable line");
    return 0;
}
