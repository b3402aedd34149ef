/*
 * bench-startup: process start -> first guest serial byte, start -> exit, and peak RSS, for
 * hearth, the raw KVM floor (bench-rawvmm) and QEMU (microvm and pc), all booting the same
 * testos.elf with "bench=boot" (it prints one line on reaching ring 3, then debug-exits 0).
 *
 * Runs are interleaved (one of each VMM per round) so that load drifting over the run hits
 * every VMM alike.  Then a few extra runs per VMM stop the child at its first byte to read
 * /proc/PID/smaps; those give the guest RAM actually resident, which is subtracted from
 * ru_maxrss for "RSS beyond guest RAM".  See bench/README.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spawn.h"

#define MAX_VMMS 4
#define MAX_ARGS 40
#define MAX_RUNS 1000

struct vmm {
	const char *name;
	char *argv[MAX_ARGS];
	double first[MAX_RUNS], exit[MAX_RUNS], maxrss[MAX_RUNS];
	double beyond[MAX_RUNS], guest[MAX_RUNS], rss_at_first[MAX_RUNS];
	int runs, probes, failures;
	double first_med, exit_med, maxrss_med, beyond_med;
};

static struct vmm vmms[MAX_VMMS];
static int nvmms;

static struct vmm *add_vmm(const char *name, const char *const *args)
{
	struct vmm *v = &vmms[nvmms++];
	v->name = name;
	for (int i = 0; args[i] && i < MAX_ARGS - 1; i++)
		v->argv[i] = (char *)args[i];
	return v;
}

static void run_one(struct vmm *v, bool probe, long ram_kib)
{
	static struct spawn_result r;
	spawn_run(v->argv, probe, ram_kib, &r);
	if (!r.ok || r.status != 1 || !strstr(r.out, "hearth-testos ready") || r.first_ms < 0) {
		if (v->failures++ < 3)
			fprintf(stderr,
				"%s: run failed (status %d)\n  stdout: %.200s\n  stderr: %.400s\n",
				v->name, r.status, r.out, r.err);
		return;
	}
	if (!probe) {
		v->first[v->runs] = r.first_ms;
		v->exit[v->runs] = r.exit_ms;
		v->maxrss[v->runs] = r.maxrss_kib / 1024.0;
		v->runs++;
	} else if (r.guest_rss_kib >= 0) {
		v->guest[v->probes] = r.guest_rss_kib / 1024.0;
		v->rss_at_first[v->probes] = r.rss_kib / 1024.0;
		v->beyond[v->probes] = (r.maxrss_kib - r.guest_rss_kib) / 1024.0;
		v->probes++;
	}
}

static struct vmm *find(const char *name)
{
	for (int i = 0; i < nvmms; i++)
		if (!strcmp(vmms[i].name, name) && vmms[i].runs)
			return &vmms[i];
	return NULL;
}

static void ratio_line(const char *what, const char *a, const char *b, double target)
{
	struct vmm *x = find(a), *y = find(b);
	if (!x || !y)
		return;
	double vx = 0, vy = 0;
	if (!strcmp(what, "first byte")) {
		vx = x->first_med, vy = y->first_med;
	} else if (!strcmp(what, "exit")) {
		vx = x->exit_med, vy = y->exit_med;
	} else {
		vx = x->maxrss_med, vy = y->maxrss_med;
	}
	printf("  %-10s %s/%s = %.3f", what, a, b, vx / vy);
	if (target > 0)
		printf("   (target <= %.2f: %s)", target, vx / vy <= target ? "met" : "MISSED");
	printf("\n");
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-k RUNS] [-p PROBES] [-m MIB] [--only NAMES] [--hearth PATH]\n"
		"          [--rawvmm PATH] [--qemu PATH] [--kernel PATH]\n"
		"  -k RUNS     timed runs per VMM (default 20)\n"
		"  -p PROBES   extra runs per VMM that sample smaps at the first byte (default 3)\n"
		"  -m MIB      guest RAM (default 128)\n"
		"  --only      comma list of hearth,raw,qemu-microvm,qemu-pc (default all)\n",
		prog);
	exit(2);
}

int main(int argc, char **argv)
{
	struct bench_progs progs = BENCH_PROGS_DEFAULT;
	int k = 20, probes = 3, mib = 128;
	static const struct option opts[] = {BENCH_PROGS_OPTIONS, {0}};
	int c;
	while ((c = getopt_long(argc, argv, "k:p:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k = atoi(optarg);
			break;
		case 'p':
			probes = atoi(optarg);
			break;
		case 'm':
			mib = atoi(optarg);
			break;
		default:
			if (!bench_progs_opt(&progs, c, optarg))
				usage(argv[0]);
		}
	}
	if (optind != argc || k < 1 || k > MAX_RUNS || probes < 0 || probes > MAX_RUNS || mib < 8 ||
	    mib > 3072)
		usage(argv[0]);

	char mem_m[16], mem_n[16];
	snprintf(mem_m, sizeof(mem_m), "%dM", mib);
	snprintf(mem_n, sizeof(mem_n), "%d", mib);
	if (bench_wanted(progs.only, "hearth"))
		add_vmm("hearth",
			(const char *[]){progs.hearth, "--kernel", progs.kernel, "--cmdline",
					 "bench=boot", "--device", "debug-exit", "--memory", mem_m,
					 "--serial", "stdio", NULL});
	if (bench_wanted(progs.only, "raw"))
		add_vmm("raw",
			(const char *[]){progs.raw, progs.kernel, "bench=boot", mem_n, NULL});
	static const char *machines[] = {"microvm", "pc"};
	for (int i = 0; i < 2; i++) {
		static char names[2][16];
		snprintf(names[i], sizeof(names[i]), "qemu-%s", machines[i]);
		if (bench_wanted(progs.only, names[i]))
			add_vmm(names[i], (const char *[]){progs.qemu,
							   "-M",
							   machines[i],
							   "-accel",
							   "kvm",
							   "-m",
							   mem_n,
							   "-nodefaults",
							   "-no-user-config",
							   "-display",
							   "none",
							   "-serial",
							   "stdio",
							   "-device",
							   "isa-debug-exit,iobase=0xf4,iosize=4",
							   "-kernel",
							   progs.kernel,
							   "-append",
							   "bench=boot",
							   NULL});
	}
	if (!nvmms)
		usage(argv[0]);

	printf("# bench-startup: %d timed runs + %d smaps probes per VMM, guest RAM %d MiB\n", k,
	       probes, mib);
	fflush(stdout);
	for (int i = 0; i < nvmms; i++) /* warm the page cache; not counted */
		run_one(&vmms[i], false, 0), vmms[i].runs = 0, vmms[i].failures = 0;
	for (int round = 0; round < k; round++)
		for (int i = 0; i < nvmms; i++)
			run_one(&vmms[i], false, mib * 1024L);
	for (int round = 0; round < probes; round++)
		for (int i = 0; i < nvmms; i++)
			run_one(&vmms[i], true, mib * 1024L);

	printf("%-13s %4s  %17s  %17s  %15s  %9s  %13s\n", "", "", "first byte ms", "exit ms",
	       "ru_maxrss MiB", "guest RAM", "maxrss beyond");
	printf("%-13s %4s  %8s %8s  %8s %8s  %7s %7s  %9s  %13s\n", "vmm", "runs", "median", "p90",
	       "median", "p90", "median", "p90", "touched", "guest RAM");
	for (int i = 0; i < nvmms; i++) {
		struct vmm *v = &vmms[i];
		if (!v->runs) {
			printf("%-13s %4d  (every run failed)\n", v->name, v->failures);
			continue;
		}
		v->first_med = stats_pct(v->first, v->runs, 0.5);
		v->exit_med = stats_pct(v->exit, v->runs, 0.5);
		v->maxrss_med = stats_pct(v->maxrss, v->runs, 0.5);
		printf("%-13s %4d  %8.2f %8.2f  %8.2f %8.2f  %7.2f %7.2f", v->name, v->runs,
		       v->first_med, stats_pct(v->first, v->runs, 0.9), v->exit_med,
		       stats_pct(v->exit, v->runs, 0.9), v->maxrss_med,
		       stats_pct(v->maxrss, v->runs, 0.9));
		if (v->probes) {
			v->beyond_med = stats_pct(v->beyond, v->probes, 0.5);
			printf("  %9.2f  %13.2f\n", stats_pct(v->guest, v->probes, 0.5),
			       v->beyond_med);
		} else {
			printf("  %9s  %13s\n", "-", "-");
		}
		if (v->failures)
			printf("  (%s: %d failed runs left out)\n", v->name, v->failures);
	}
	printf("ratios of medians:\n");
	ratio_line("first byte", "hearth", "qemu-microvm", 0.10);
	ratio_line("exit", "hearth", "qemu-microvm", 0);
	ratio_line("ru_maxrss", "hearth", "qemu-microvm", 0);
	ratio_line("first byte", "hearth", "qemu-pc", 0);
	ratio_line("first byte", "hearth", "raw", 0);
	ratio_line("exit", "hearth", "raw", 0);
	struct vmm *h = find("hearth");
	if (h && h->probes)
		printf("  hearth peak RSS beyond guest RAM = %.2f MiB   (target <= 4 MiB: %s)\n",
		       h->beyond_med, h->beyond_med <= 4.0 ? "met" : "MISSED");

	/* Machine-readable lines for run-all.sh. */
	for (int i = 0; i < nvmms; i++) {
		struct vmm *v = &vmms[i];
		if (v->runs)
			printf("summary|startup|%s|first_byte_ms=%.2f|exit_ms=%.2f|maxrss_mib=%.2f|"
			       "beyond_ram_mib=%.2f\n",
			       v->name, v->first_med, v->exit_med, v->maxrss_med,
			       v->probes ? v->beyond_med : -1.0);
	}
	int failed = 0;
	for (int i = 0; i < nvmms; i++)
		failed |= !vmms[i].runs;
	return failed;
}
