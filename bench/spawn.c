/*
 * One timed VMM run.  Times are CLOCK_MONOTONIC taken in this process: just before fork,
 * when read() first returns stdout bytes, and when wait4() reaps the child.  The pipe read
 * is the same path a terminal or log collector would see, so "first byte" includes the
 * VMM's own output buffering.
 */
#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 120000

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/*
 * Guest RAM is the one writable mapping of about the configured size: hearth's memfd
 * ("/memfd:hearth-ram"), QEMU's and rawvmm's anonymous memory.  QEMU rounds its block up
 * to an alignment, hence the slack.  Every such mapping's Rss is summed.
 */
static void read_smaps(int pid, long ram_kib, long *total, long *guest)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	FILE *f = fopen(path, "re");
	bool in_ram = false;
	long v;

	*total = *guest = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		int name_at = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &name_at) == 3) {
			long kib = (long)((hi - lo) >> 10);
			const char *name = line + name_at;
			bool anon_or_memfd =
				*name == '\n' || *name == '\0' || !strncmp(name, "/memfd:", 7);
			in_ram = perms[0] == 'r' && perms[1] == 'w' && anon_or_memfd &&
				 kib >= ram_kib && kib <= ram_kib + 8192;
		} else if (sscanf(line, "Rss: %ld kB", &v) == 1) {
			*total += v;
			if (in_ram)
				*guest += v;
		}
	}
	fclose(f);
}

static void read_fd(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
}

static void reaped(struct spawn_result *r, int st, const struct rusage *ru, double t0)
{
	r->exit_ms = now_ms() - t0;
	r->maxrss_kib = ru->ru_maxrss;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->ok = WIFEXITED(st);
}

/*
 * Every thread of the child in the stopped state?  KVM's per-VM kernel worker
 * (kvm-nx-lpage-recovery, a vhost task inside the VMM's thread group) can take the group
 * stop after our SIGCONT; the VM's teardown then waits for that worker forever.  So probe
 * runs look for stopped threads until the child is gone and continue them again.
 */
static bool any_thread_stopped(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	struct dirent *e;
	bool stopped = false;

	while (d && !stopped && (e = readdir(d))) {
		char stat[128], buf[512];
		if (e->d_name[0] == '.')
			continue;
		snprintf(stat, sizeof(stat), "%s/%.16s/stat", path, e->d_name);
		FILE *f = fopen(stat, "re");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		const char *paren = strrchr(buf, ')');
		stopped = paren && paren[1] == ' ' && paren[2] == 'T';
	}
	if (d)
		closedir(d);
	return stopped;
}

static void unstop(int pid)
{
	if (any_thread_stopped(pid)) {
		fprintf(stderr, "bench: pid %d still had a stopped thread, continued it\n", pid);
		kill(pid, SIGCONT);
	}
}

/* Stops the child so that it cannot exit while smaps is read.  True if it exited (and was
 * reaped) instead. */
static bool probe(int pid, long ram_kib, struct spawn_result *r, double t0)
{
	struct rusage ru;
	int st;

	/* A VMM already tearing its VM down sits uninterruptibly in the kernel waiting for
	 * that worker, which does stop: the group stop then never completes, so never wait
	 * for it long.  Such a run gives no sample. */
	kill(pid, SIGSTOP);
	for (int i = 0;; i++) {
		int w = wait4(pid, &st, WUNTRACED | WNOHANG, &ru);
		if (w == pid)
			break;
		if (w < 0) {
			perror("bench: wait4");
			exit(1);
		}
		if (i == 250) {
			kill(pid, SIGCONT);
			return false;
		}
		usleep(200);
	}
	if (!WIFSTOPPED(st)) {
		reaped(r, st, &ru, t0);
		return true;
	}
	read_smaps(pid, ram_kib, &r->rss_kib, &r->guest_rss_kib);
	kill(pid, SIGCONT);
	return false;
}

void spawn_run(char *const argv[], bool probe_rss, long ram_kib, struct spawn_result *r)
{
	int out[2], err = memfd_create("bench-stderr", MFD_CLOEXEC);
	size_t len = 0;
	bool done = false;
	struct rusage ru;
	int st;

	memset(r, 0, sizeof(*r));
	r->first_ms = -1;
	r->rss_kib = r->guest_rss_kib = -1;
	if (err < 0 || pipe2(out, O_CLOEXEC) < 0) {
		perror("bench: pipe");
		exit(1);
	}
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench: fork");
		exit(1);
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(out[1], 1);
		dup2(err, 2);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		perror("bench: pidfd_open");
		exit(1);
	}

	/* stdout until EOF, then the exit; probe runs check for stuck stops every 20 ms */
	for (int fd = out[0]; fd >= 0;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(t0 + RUN_TIMEOUT_MS - now_ms());
		if (left <= 0) {
			fprintf(stderr, "bench: %s timed out, killed\n", argv[0]);
			kill(pid, SIGKILL);
			kill(pid, SIGCONT);
			t0 -= RUN_TIMEOUT_MS; /* one more timeout's grace to die */
			continue;
		}
		int ready = poll(&p, 1, probe_rss && left > 20 ? 20 : left);
		if (ready <= 0) {
			if (probe_rss)
				unstop(pid);
			continue;
		}
		if (fd == pidfd)
			break;
		char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fd = done ? -1 : pidfd;
			continue;
		}
		if (r->first_ms < 0) {
			r->first_ms = now_ms() - t0;
			if (probe_rss && probe(pid, ram_kib, r, t0))
				done = true;
		}
		size_t keep =
			(size_t)n < sizeof(r->out) - 1 - len ? (size_t)n : sizeof(r->out) - 1 - len;
		memcpy(r->out + len, buf, keep);
		len += keep;
	}
	r->out[len] = '\0';
	close(out[0]);
	close(pidfd);
	if (!done) {
		while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
			;
		reaped(r, st, &ru, t0);
	}
	read_fd(err, r->err, sizeof(r->err));
	close(err);
	r->ok = r->ok && len > 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Linear interpolation between the two nearest ranks, so the median of an even count is
 * the mean of the middle pair. */
double stats_pct(double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	double pos = p * (double)(n - 1);
	size_t i = (size_t)pos;
	if (i + 1 >= n)
		return v[n - 1];
	return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

long kvm_tsc_khz(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	long khz = -1;
	if (kvm >= 0) {
		int vm = ioctl(kvm, KVM_CREATE_VM, 0);
		int vcpu = vm >= 0 ? ioctl(vm, KVM_CREATE_VCPU, 0) : -1;
		khz = vcpu >= 0 ? ioctl(vcpu, KVM_GET_TSC_KHZ, 0) : -1;
		if (vcpu >= 0)
			close(vcpu);
		if (vm >= 0)
			close(vm);
		close(kvm);
	}
	if (khz <= 0) {
		fprintf(stderr, "bench: KVM_GET_TSC_KHZ: %s\n", strerror(errno));
		return 0;
	}
	return khz;
}

bool bench_progs_opt(struct bench_progs *p, int c, const char *arg)
{
	switch (c) {
	case 'o':
		p->only = arg;
		return true;
	case 'H':
		p->hearth = arg;
		return true;
	case 'R':
		p->raw = arg;
		return true;
	case 'Q':
		p->qemu = arg;
		return true;
	case 'K':
		p->kernel = arg;
		return true;
	}
	return false;
}

bool bench_wanted(const char *list, const char *name)
{
	if (!list)
		return true;
	size_t n = strlen(name);
	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}
