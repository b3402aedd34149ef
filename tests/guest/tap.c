/*
 * TAP 13 output.  Tests never print: they record diagnostics here, and the
 * result line is written after the test returns.  That keeps the UART test
 * (which puts COM1 in loopback) from losing output, and keeps each line one
 * burst of port writes.
 */
#include "testos.h"

static const struct testcase tests[] = {
	{"multiboot", test_multiboot, false},
	{"uart", test_uart, false},
	{"uart-irq", test_uart_irq, false},
	{"cmos", test_cmos, false},
	{"testdev", test_testdev, false},
	{"unhooked", test_unhooked, false},
	{"hooks", test_hooks, false},
	{"smp", test_smp, false},
	{"pci", test_pci, true},
	{"virtio-blk", test_virtio_blk, true},
	{"virtio-irq", test_virtio_irq, true},
	{"virtio-console", test_virtio_console, true},
	{"virtio-rng", test_virtio_rng, true},
	{"hostile", test_hostile, true},
};

static char diag[4096];
static char times[512]; /* one "# time" line at the end: output costs an exit per byte */
static size_t times_len;
static size_t diag_len;
static unsigned failures;
static const char *skip_reason;

static void diag_add(const char *fmt, va_list ap)
{
	if (diag_len + 3 >= sizeof(diag))
		return;
	diag[diag_len++] = '#';
	diag[diag_len++] = ' ';
	int n = vsnprintf(diag + diag_len, sizeof(diag) - diag_len - 1, fmt, ap);
	if (n > (int)(sizeof(diag) - diag_len - 2))
		n = (int)(sizeof(diag) - diag_len - 2);
	diag_len += n;
	diag[diag_len++] = '\n';
}

bool tap_check(bool cond, const char *fmt, ...)
{
	if (cond)
		return true;
	va_list ap;
	va_start(ap, fmt);
	diag_add(fmt, ap);
	va_end(ap);
	failures++;
	return false;
}

void tap_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_add(fmt, ap);
	va_end(ap);
}

void tap_skip(const char *reason)
{
	skip_reason = reason;
}

static const struct testcase *find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++)
		if (strlen(tests[i].name) == len && !strncmp(tests[i].name, name, len))
			return &tests[i];
	return NULL;
}

static bool run_one(unsigned n, const char *name, size_t len)
{
	const struct testcase *t = find(name, len);
	diag_len = 0;
	failures = 0;
	skip_reason = NULL;
	uint64_t t0 = rdtsc();
	if (t)
		t->run();
	else
		tap_check(false,
			  "no such test; known: multiboot uart uart-irq cmos testdev "
			  "unhooked hooks smp pci virtio-blk virtio-irq virtio-console virtio-rng");
	uint64_t us = cycles_to_us(rdtsc() - t0);
	if (skip_reason && !failures)
		kprintf("ok %u - %.*s # SKIP %s\n", n, (int)len, name, skip_reason);
	else
		kprintf("%s %u - %.*s\n", failures ? "not ok" : "ok", n, (int)len, name);
	if (diag_len)
		serial_write(diag, diag_len);
	if (times_len < sizeof(times))
		times_len += snprintf(times + times_len, sizeof(times) - times_len, " %.*s %lu",
				      (int)len, name, us);
	return !failures;
}

static int run_list(const char *list);

/* list: comma-separated test names, or NULL for all.  Returns failures. */
int tap_run(const char *list)
{
	times_len = 0;
	int failed = run_list(list);
	if (times_len)
		kprintf("# time (us):%.*s\n",
			(int)(times_len < sizeof(times) ? times_len : sizeof(times) - 1), times);
	return failed;
}

static int run_list(const char *list)
{
	unsigned total = 0, failed = 0;
	if (!list) {
		for (unsigned i = 0; i < ARRAY_SIZE(tests); i++)
			total += !tests[i].named_only;
		kprintf("1..%u\n", total);
		for (unsigned i = 0, n = 0; i < ARRAY_SIZE(tests); i++)
			if (!tests[i].named_only)
				failed += !run_one(++n, tests[i].name, strlen(tests[i].name));
		return failed;
	}
	for (const char *p = list; *p;) {
		total++;
		while (*p && *p++ != ',')
			;
	}
	kprintf("1..%u\n", total);
	unsigned n = 0;
	for (const char *p = list; *p;) {
		const char *e = p;
		while (*e && *e != ',')
			e++;
		failed += !run_one(++n, p, (size_t)(e - p));
		p = *e ? e + 1 : e;
	}
	return failed;
}
