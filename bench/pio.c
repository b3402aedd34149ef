/*
 * bench-pio: cost of one guest write that exits to the VMM, for the raw KVM_RUN floor
 * (bench-rawvmm), hearth and QEMU microvm, all running the same testos.elf in
 * "bench=pio:N" (N `outl` to port 0x704 from ring 3) and "bench=mmio:N" (N 32-bit stores to
 * 0xD0000004).  The guest times its own loop with rdtsc and prints
 * "# bench KIND n=N tsc=CYCLES"; cycles per write are converted to ns with the TSC rate
 * KVM reports (KVM_GET_TSC_KHZ).
 *
 * QEMU has no testdev: 0x704 and 0xD0000004 are unassigned there, which still costs a
 * KVM exit to QEMU's user space and a lookup in its address-space dispatch, so it measures
 * QEMU's port/MMIO dispatch path.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spawn.h"

#define MAX_VMMS 3
#define MAX_ARGS 32
#define MAX_RUNS 200

static const char *const kinds[] = {"pio", "mmio"};

struct vmm {
	const char *name;
	char *argv[MAX_ARGS];
	int spec_arg; /* argv slot that holds the guest command line */
	double cycles[2][MAX_RUNS];
	int runs[2], failures;
	double med[2];
};

static struct vmm vmms[MAX_VMMS];
static int nvmms;

static void add_vmm(const char *name, const char *const *args)
{
	struct vmm *v = &vmms[nvmms++];
	v->name = name;
	for (int i = 0; args[i] && i < MAX_ARGS - 1; i++) {
		v->argv[i] = (char *)args[i];
		if (!strcmp(args[i], "@SPEC@"))
			v->spec_arg = i;
	}
}

static void run_one(struct vmm *v, int kind, uint64_t n)
{
	static struct spawn_result r;
	char spec[64], want[64];
	snprintf(spec, sizeof(spec), "bench=%s:%" PRIu64, kinds[kind], n);
	snprintf(want, sizeof(want), "# bench %s n=%" PRIu64 " tsc=", kinds[kind], n);
	v->argv[v->spec_arg] = spec;
	spawn_run(v->argv, false, 0, &r);
	const char *line = strstr(r.out, want);
	if (!r.ok || r.status != 1 || !line) {
		if (v->failures++ < 3)
			fprintf(stderr,
				"%s %s: run failed (status %d)\n  stdout: %.300s\n  stderr: "
				"%.400s\n",
				v->name, spec, r.status, r.out, r.err);
		return;
	}
	double cyc = strtod(line + strlen(want), NULL);
	v->cycles[kind][v->runs[kind]++] = cyc / (double)n;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-n WRITES] [-r RUNS] [--kinds pio,mmio] [--only NAMES]\n"
		"          [--hearth PATH] [--rawvmm PATH] [--qemu PATH] [--kernel PATH]\n"
		"  -n WRITES   guest writes per run (default 100000)\n"
		"  -r RUNS     runs per VMM and kind (default 5)\n"
		"  --only      comma list of raw,hearth,qemu-microvm (default all)\n",
		prog);
	exit(2);
}

int main(int argc, char **argv)
{
	struct bench_progs progs = BENCH_PROGS_DEFAULT;
	const char *kind_list = NULL;
	uint64_t n = 100000;
	int reps = 5;
	static const struct option opts[] = {BENCH_PROGS_OPTIONS, {"kinds", 1, 0, 't'}, {0}};
	int c;
	while ((c = getopt_long(argc, argv, "n:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 't':
			kind_list = optarg;
			break;
		default:
			if (!bench_progs_opt(&progs, c, optarg))
				usage(argv[0]);
		}
	}
	if (optind != argc || n < 1 || reps < 1 || reps > MAX_RUNS)
		usage(argv[0]);

	if (bench_wanted(progs.only, "raw"))
		add_vmm("raw", (const char *[]){progs.raw, progs.kernel, "@SPEC@", "128", NULL});
	if (bench_wanted(progs.only, "hearth"))
		add_vmm("hearth",
			(const char *[]){progs.hearth, "--kernel", progs.kernel, "--cmdline",
					 "@SPEC@", "--device", "debug-exit", "--device", "testdev",
					 "--memory", "128M", "--serial", "stdio", NULL});
	if (bench_wanted(progs.only, "qemu-microvm"))
		add_vmm("qemu-microvm",
			(const char *[]){
				progs.qemu, "-M",	   "microvm",
				"-accel",   "kvm",	   "-m",
				"128",	    "-nodefaults", "-no-user-config",
				"-display", "none",	   "-serial",
				"stdio",    "-device",	   "isa-debug-exit,iobase=0xf4,iosize=4",
				"-kernel",  progs.kernel,  "-append",
				"@SPEC@",   NULL});
	if (!nvmms)
		usage(argv[0]);

	long khz = kvm_tsc_khz();
	printf("# bench-pio: %" PRIu64 " writes per run, %d runs per VMM and kind, TSC %ld kHz\n",
	       n, reps, khz);
	fflush(stdout);
	for (int kind = 0; kind < 2; kind++) {
		if (!bench_wanted(kind_list, kinds[kind]))
			continue;
		for (int round = 0; round < reps; round++)
			for (int i = 0; i < nvmms; i++)
				run_one(&vmms[i], kind, n);
	}

	printf("%-6s %-13s %4s  %26s  %26s  %9s\n", "", "", "", "cycles/write", "ns/write", "");
	printf("%-6s %-13s %4s  %8s %8s %8s  %8s %8s %8s  %9s\n", "kind", "vmm", "runs", "min",
	       "median", "p90", "min", "median", "p90", "vs raw");
	for (int kind = 0; kind < 2; kind++) {
		double raw_med = 0;
		for (int i = 0; i < nvmms; i++) {
			struct vmm *v = &vmms[i];
			if (!v->runs[kind])
				continue;
			int m = v->runs[kind];
			v->med[kind] = stats_pct(v->cycles[kind], m, 0.5);
			double p90 = stats_pct(v->cycles[kind], m, 0.9);
			double min = stats_pct(v->cycles[kind], m, 0);
			if (!strcmp(v->name, "raw"))
				raw_med = v->med[kind];
			double to_ns = khz ? 1e6 / (double)khz : 0;
			printf("%-6s %-13s %4d  %8.0f %8.0f %8.0f  %8.0f %8.0f %8.0f", kinds[kind],
			       v->name, m, min, v->med[kind], p90, min * to_ns,
			       v->med[kind] * to_ns, p90 * to_ns);
			if (raw_med > 0)
				printf("  %8.3fx", v->med[kind] / raw_med);
			printf("\n");
		}
		for (int i = 0; i < nvmms; i++)
			if (!strcmp(vmms[i].name, "hearth") && raw_med > 0 && vmms[i].runs[kind]) {
				double ratio = vmms[i].med[kind] / raw_med;
				printf("  %s: hearth/raw = %.3f   (target <= 1.10: %s)\n",
				       kinds[kind], ratio, ratio <= 1.10 ? "met" : "MISSED");
			}
	}
	/* Machine-readable lines for run-all.sh. */
	for (int kind = 0; kind < 2; kind++)
		for (int i = 0; i < nvmms; i++)
			if (vmms[i].runs[kind])
				printf("summary|%s|%s|cycles=%.0f|ns=%.0f|vs_raw=%.3f\n",
				       kinds[kind], vmms[i].name, vmms[i].med[kind],
				       khz ? vmms[i].med[kind] * 1e6 / (double)khz : 0,
				       vmms[0].runs[kind] && !strcmp(vmms[0].name, "raw")
					       ? vmms[i].med[kind] / vmms[0].med[kind]
					       : -1.0);
	int failed = 0;
	for (int i = 0; i < nvmms; i++)
		failed |= vmms[i].failures > 0;
	return failed;
}
