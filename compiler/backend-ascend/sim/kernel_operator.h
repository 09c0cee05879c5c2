// kernel_operator.h — stand-in for CANN's header of the same name when compiling tk's emitted
// Ascend C with g++ (-DASCENDC_CPU_DEBUG): everything lives in tk_ascend_sim.h.
#ifndef TK_KERNEL_OPERATOR_H
#define TK_KERNEL_OPERATOR_H
#include "tk_ascend_sim.h"
#endif
