/* Host CPU summary: vendor, family/model and the CPUID feature words a guest's CPUID table
 * is built from. A restored guest keeps the CPUID it booted with, so the new host must have
 * every feature the old one had. Bit names are from the Intel SDM / AMD APM CPUID tables. */
#include "snapshot/cpufeat.h"

#include <stdio.h>
#include <string.h>

#include "hearth/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static const char *const reg_name[CKPT_CPU_NFEAT] = {
	[CPU_F1_ECX] = "CPUID.1:ECX",	[CPU_F1_EDX] = "CPUID.1:EDX",
	[CPU_F7_EBX] = "CPUID.7.0:EBX", [CPU_F7_ECX] = "CPUID.7.0:ECX",
	[CPU_F7_EDX] = "CPUID.7.0:EDX",
};

/* Bits that describe the host OS or topology rather than what the CPU can execute: OSXSAVE
 * and OSPKE follow the host kernel's CR4, "hypervisor" is set when hearth itself runs
 * nested, HTT and hybrid describe topology, and the two FPU bits mean a capability was
 * removed. They never refuse a restore. */
static const uint32_t ignored[CKPT_CPU_NFEAT] = {
	[CPU_F1_ECX] = 1u << 27 | 1u << 31,
	[CPU_F1_EDX] = 1u << 28,
	[CPU_F7_EBX] = 1u << 6 | 1u << 13,
	[CPU_F7_ECX] = 1u << 4,
	[CPU_F7_EDX] = 1u << 15,
};

static const char *const bit_name[CKPT_CPU_NFEAT][32] = {
	[CPU_F1_ECX] = {"sse3",		"pclmulqdq", "dtes64", "monitor", "ds-cpl",  "vmx",
			"smx",		"est",	     "tm2",    "ssse3",	  "cnxt-id", "sdbg",
			"fma",		"cx16",	     "xtpr",   "pdcm",	  NULL,	     "pcid",
			"dca",		"sse4.1",    "sse4.2", "x2apic",  "movbe",   "popcnt",
			"tsc-deadline", "aes",	     "xsave",  "osxsave", "avx",     "f16c",
			"rdrand",	"hypervisor"},
	[CPU_F1_EDX] = {"fpu",	"vme",	 "de",	 "pse",	    "tsc",  "msr", "pae",  "mce",
			"cx8",	"apic",	 NULL,	 "sep",	    "mtrr", "pge", "mca",  "cmov",
			"pat",	"pse36", "psn",	 "clflush", NULL,   "ds",  "acpi", "mmx",
			"fxsr", "sse",	 "sse2", "ss",	    "htt",  "tm",  NULL,   "pbe"},
	[CPU_F7_EBX] = {"fsgsbase",
			"tsc-adjust",
			"sgx",
			"bmi1",
			"hle",
			"avx2",
			"fdp-excptn-only",
			"smep",
			"bmi2",
			"erms",
			"invpcid",
			"rtm",
			"rdt-m",
			"fpu-csds-deprecated",
			"mpx",
			"rdt-a",
			"avx512f",
			"avx512dq",
			"rdseed",
			"adx",
			"smap",
			"avx512ifma",
			NULL,
			"clflushopt",
			"clwb",
			"intel-pt",
			"avx512pf",
			"avx512er",
			"avx512cd",
			"sha",
			"avx512bw",
			"avx512vl"},
	[CPU_F7_ECX] = {"prefetchwt1",
			"avx512vbmi",
			"umip",
			"pku",
			"ospke",
			"waitpkg",
			"avx512-vbmi2",
			"cet-ss",
			"gfni",
			"vaes",
			"vpclmulqdq",
			"avx512-vnni",
			"avx512-bitalg",
			"tme",
			"avx512-vpopcntdq",
			NULL,
			"la57",
			NULL,
			NULL,
			NULL,
			NULL,
			NULL,
			"rdpid",
			"kl",
			NULL,
			"cldemote",
			NULL,
			"movdiri",
			"movdir64b",
			"enqcmd",
			"sgx-lc",
			"pks"},
	[CPU_F7_EDX] = {NULL,
			NULL,
			"avx512-4vnniw",
			"avx512-4fmaps",
			"fsrm",
			NULL,
			NULL,
			NULL,
			"avx512-vp2intersect",
			NULL,
			"md-clear",
			NULL,
			NULL,
			NULL,
			"serialize",
			"hybrid",
			"tsxldtrk",
			NULL,
			"pconfig",
			NULL,
			"cet-ibt",
			NULL,
			"amx-bf16",
			"avx512-fp16",
			"amx-tile",
			"amx-int8",
			"ibrs-ibpb",
			"stibp",
			"l1d-flush",
			"arch-capabilities",
			"core-capabilities",
			"ssbd"},
};

void ckpt_cpu_host(struct ckpt_cpu *out)
{
	memset(out, 0, sizeof(*out));
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d, max;

	if (!__get_cpuid(0, &max, &b, &c, &d))
		return;
	memcpy(out->vendor, &b, 4);
	memcpy(out->vendor + 4, &d, 4);
	memcpy(out->vendor + 8, &c, 4);
	if (max >= 1) {
		__cpuid(1, a, b, c, d);
		unsigned fam = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
		out->stepping = a & 0xf;
		out->family = fam == 0xf ? fam + ((a >> 20) & 0xff) : fam;
		out->model = (fam == 6 || fam == 0xf) ? (((a >> 16) & 0xf) << 4) + model : model;
		out->feat[CPU_F1_ECX] = c;
		out->feat[CPU_F1_EDX] = d;
	}
	if (max >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		out->feat[CPU_F7_EBX] = b;
		out->feat[CPU_F7_ECX] = c;
		out->feat[CPU_F7_EDX] = d;
	}
#endif
}

/* The vendor as printable text: it may come from a hostile file. */
static void vendor_str(const char v[12], char out[13])
{
	for (int i = 0; i < 12; i++)
		out[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
	out[12] = 0;
}

int ckpt_cpu_check(const struct ckpt_cpu *saved, const struct ckpt_cpu *host)
{
	char sv[13], hv[13], list[256];
	size_t used = 0;
	unsigned missing = 0;

	vendor_str(saved->vendor, sv);
	vendor_str(host->vendor, hv);
	if (memcmp(saved->vendor, host->vendor, 12) != 0)
		return hearth_err("checkpoint was taken on a %s CPU, this host is %s: restoring "
				  "across CPU vendors is not supported",
				  sv, hv);
	list[0] = 0;
	for (int r = 0; r < CKPT_CPU_NFEAT; r++) {
		uint32_t lack = saved->feat[r] & ~host->feat[r] & ~ignored[r];
		for (int bit = 0; bit < 32; bit++) {
			if (!(lack & (1u << bit)))
				continue;
			if (missing++ < 6 && used < sizeof(list)) {
				const char *n = bit_name[r][bit];
				int k = snprintf(list + used, sizeof(list) - used,
						 "%s%s (%s bit %d)", used ? ", " : "",
						 n ? n : "unnamed", reg_name[r], bit);
				used += k > 0 ? (size_t)k : 0;
			}
		}
	}
	if (!missing)
		return 0;
	return hearth_err("this host's CPU lacks %u feature%s the checkpoint's host had "
			  "(%s family %u model %u): %s%s",
			  missing, missing == 1 ? "" : "s", sv, saved->family, saved->model, list,
			  missing > 6 ? ", ..." : "");
}
