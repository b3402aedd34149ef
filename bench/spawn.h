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

/* The TSC frequency KVM gives a new vCPU (kHz), or 0 with a message on stderr. */
long kvm_tsc_khz(void);

#endif
