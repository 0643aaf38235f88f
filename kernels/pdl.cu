/* The switch of programmatic dependent launch (crk_launch in common.cuh): benchmarks and
 * tests compare the decode step with and without it. */
#include "common.cuh"

extern "C" int crk_set_pdl(int on) {
    const int old = crk_pdl_state();
    crk_pdl_state() = on != 0;
    return old;
}
