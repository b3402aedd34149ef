/* The CPU summary fuzz seeds are written with and inputs are checked against: one vendor and
 * every feature, so the CPU check passes unless the fuzzer changes the header. */
#pragma once

#include <string.h>

#include "snapshot/cpufeat.h"

static inline void fuzz_cpu(struct ckpt_cpu *cpu)
{
	memset(cpu, 0, sizeof(*cpu));
	memcpy(cpu->vendor, "HearthFuzzer", 12);
	cpu->family = 6;
	cpu->model = 1;
	memset(cpu->feat, 0xff, sizeof(cpu->feat));
}
