/* Packing of a cascade plan for the GPU update kernels (CUDA=1 builds only). */
#ifndef CR_CUDA_PLAN_H
#define CR_CUDA_PLAN_H
#include <stdint.h>
#include "cascade.h"

/* ops[2x] = kind, ops[2x+1] = index of the op's slot in touched[] (or the sink index for
 * SINK ops); touched[0..U) = the distinct slots in order of first use; sinks[2i] = sink
 * index, sinks[2i+1] = chunk token, for *n_sinks sink ops. slot_map: [N] all -1 on entry
 * and on return. Returns U, or -1 for a slot out of range. */
int cuda_pack_plan(const cascade_plan *p, int N, int32_t *slot_map, int32_t *ops, int32_t *touched, int32_t *sinks, int *n_sinks);
#endif
