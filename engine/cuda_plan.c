/* Host side of the GPU cascade update: turns a cascade_plan into the arrays the kernels
 * read (see crk_resolve_args in cuda_iface.h). */
#include "cuda_plan.h"

int cuda_pack_plan(const cascade_plan *p, int N, int32_t *slot_map, int32_t *ops, int32_t *touched, int32_t *sinks, int *n_sinks) {
    int U = 0, ns = 0;
    for (int j = 0; j < p->L; j++) {
        for (int x = p->tok_first_op[j]; x < p->tok_first_op[j + 1]; x++) {
            const cascade_op op = p->ops[x];
            ops[2 * x] = op.kind;
            if (op.kind == CASCADE_OP_SINK) {
                ops[2 * x + 1] = op.slot;
                sinks[2 * ns] = op.slot;
                sinks[2 * ns + 1] = j;
                ns++;
                continue;
            }
            if (op.slot < 0 || op.slot >= N) {
                for (int u = 0; u < U; u++) slot_map[touched[u]] = -1;
                return -1;
            }
            int loc = slot_map[op.slot];
            if (loc < 0) { loc = U; slot_map[op.slot] = U; touched[U++] = op.slot; }
            ops[2 * x + 1] = loc;
        }
    }
    for (int u = 0; u < U; u++) slot_map[touched[u]] = -1;
    *n_sinks = ns;
    return U;
}
