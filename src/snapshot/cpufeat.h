/* The host CPU summary a state file records, and the check that a restoring host has every
 * feature the saving host had. */
#pragma once

#include <stdint.h>

enum {
	CPU_F1_ECX,
	CPU_F1_EDX,
	CPU_F7_EBX,
	CPU_F7_ECX,
	CPU_F7_EDX,
	CKPT_CPU_NFEAT,
};

struct ckpt_cpu {
	char vendor[12];		  /* CPUID.0 EBX, EDX, ECX; not NUL-terminated */
	uint32_t family, model, stepping; /* display values */
	uint32_t feat[CKPT_CPU_NFEAT];
};

void ckpt_cpu_host(struct ckpt_cpu *out);
/* 0 when a guest saved on `saved` may run on `host`; otherwise -1 with a message naming the
 * vendors or the missing features (name and CPUID bit). */
int ckpt_cpu_check(const struct ckpt_cpu *saved, const struct ckpt_cpu *host);
