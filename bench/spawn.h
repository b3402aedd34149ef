/* Running one VMM process and timing it, shared by the benchmark harnesses. */
#ifndef BENCH_SPAWN_H
#define BENCH_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spawn_result {
	bool ok;	    /* ran, exited (not signalled) and produced stdout */
	int status;	    /* exit status, or 128 + signal */
	double first_ms;    /* fork -> first byte on stdout; negative if none */
	double exit_ms;	    /* fork -> reaped */
	long maxrss_kib;    /* wait4's ru_maxrss */
	long rss_kib;	    /* sampled at the first byte (only with probe_rss) */
	long guest_rss_kib; /* of that, resident pages of the guest RAM mapping */
	char out[8192];	    /* stdout, NUL-terminated, truncated */
	char err[2048];	    /* stderr, NUL-terminated, truncated */
};

/*
 * Runs argv[0] (searched in PATH) with stdin from /dev/null, stdout into a pipe and stderr
 * into a memfd.  With probe_rss the child is stopped on its first stdout byte, its
 * /proc/PID/smaps read, and continued: that run's times are perturbed, its sizes are not.
 * ram_kib identifies the guest RAM mapping (see spawn.c).
 */
void spawn_run(char *const argv[], bool probe_rss, long ram_kib, struct spawn_result *r);

/* Sorts v in place.  p in [0, 1]: nearest-rank percentile; 0.5 is the median. */
double stats_pct(double *v, size_t n, double p);

/* The programs a harness compares, as --hearth, --rawvmm, --qemu and --kernel name them. */
struct bench_progs {
	const char *hearth, *raw, *qemu, *kernel;
	const char *only; /* --only: comma list of VMM names, NULL for all */
};

/* The defaults: this build tree's hearth, bench-rawvmm and testos.elf, and QEMU from PATH. */
#define BENCH_PROGS_DEFAULT                                                                        \
	{                                                                                          \
		.hearth = BENCH_BUILD_DIR "/hearth", .raw = BENCH_BUILD_DIR "/bench/bench-rawvmm", \
		.qemu = "qemu-system-x86_64", .kernel = BENCH_BUILD_DIR "/tests/guest/testos.elf", \
	}

/* The getopt_long entries for those options and --help, to open a harness's option table. */
#define BENCH_PROGS_OPTIONS                                                                        \
	{"only", 1, 0, 'o'}, {"hearth", 1, 0, 'H'}, {"rawvmm", 1, 0, 'R'}, {"qemu", 1, 0, 'Q'},    \
		{"kernel", 1, 0, 'K'},                                                             \
	{                                                                                          \
		"help", 0, 0, 'h'                                                                  \
	}

/* Takes getopt's c if it is one of BENCH_PROGS_OPTIONS but --help; false otherwise. */
bool bench_progs_opt(struct bench_progs *p, int c, const char *arg);

/* Whether name is one of the comma list's entries; a NULL list wants every name. */
bool bench_wanted(const char *list, const char *name);

/* The TSC frequency KVM gives a new vCPU (kHz), or 0 with a message on stderr. */
long kvm_tsc_khz(void);

#endif
