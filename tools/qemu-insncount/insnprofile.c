/* QEMU TCG plugin (API v1, QEMU 6.0..8.x), a sibling of insncount.c: counts guest instructions
 * per address (the first 4 MiB: a Cortex-M's flash), so that a firmware's instructions can be
 * attributed to its functions (scripts/firmware-check.sh maps them with llvm-nm).
 * At exit writes "ADDR COUNT" lines (hex address, executions) to $PROF_OUT (default prof.txt).
 * The API's declarations: qemu_plugin_v1.h (no QEMU header needed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_v1.h"

#define SPAN (4u << 20)
static uint64_t *counts;
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc < SPAN)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[pc / 2], 1);
    }
}
static void at_exit(qemu_plugin_id_t id, void *p) {
    FILE *f = fopen(getenv("PROF_OUT") ? getenv("PROF_OUT") : "prof.txt", "w");
    for (uint64_t k = 0; k < SPAN / 2; k++)
        if (counts[k]) fprintf(f, "%llx %llu\n", (unsigned long long)(k * 2), (unsigned long long)counts[k]);
    fclose(f);
}
QEMU_PLUGIN_EXPORT
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    counts = calloc(SPAN / 2, sizeof(uint64_t));
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
