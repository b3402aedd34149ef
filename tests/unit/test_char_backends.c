/* The char backends against a fake char frontend, with the event loop driven by hand:
 * files, FIFOs, UNIX sockets, pseudo-terminals, and stdio in forked children whose fds 0
 * and 1 are pipes, files or a terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "backends/char_common.h"
#include "backends/char_stdio.h"
#include "fakevm.h"
#include "hearth/chardev.h"
#include "testutil.h"

/* ---- a char frontend that takes at most `limit` bytes of input in total ---- */

static struct fake_fe {
	const struct hearth_char_backend_ops *be_ops;
	void *be;
	uint8_t in[1 << 17];
	size_t nin, limit;
	int tx_ready_calls, attach_calls, detach_calls;
} fe;

static void ffe_attach(void *opaque, const struct hearth_char_backend_ops *ops, void *be)
{
	assert_ptr_equal(opaque, &fe);
	if (ops)
		fe.attach_calls++;
	else
		fe.detach_calls++;
	fe.be_ops = ops;
	fe.be = be;
}

static size_t ffe_receive(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	size_t room = fe.limit > fe.nin ? fe.limit - fe.nin : 0;
	if (len > room)
		len = room;
	memcpy(fe.in + fe.nin, buf, len);
	fe.nin += len;
	return len;
}

static void ffe_tx_ready(void *opaque)
{
	(void)opaque;
	fe.tx_ready_calls++;
}

static const struct hearth_char_frontend_ops ffe_ops = {
	.attach = ffe_attach, .receive = ffe_receive, .tx_ready = ffe_tx_ready};

static int ffe_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	(void)cfg;
	return hearth_frontend_register(dev, HEARTH_FE_CHAR, &ffe_ops, &fe);
}

HEARTH_DEVICE_CLASS(test_ffe_class, .name = "test-charfe", .init = ffe_init);

static const int blk_ops_dummy = 1;

static int fblk_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	(void)cfg;
	return hearth_frontend_register(dev, HEARTH_FE_BLK, &blk_ops_dummy, NULL);
}

HEARTH_DEVICE_CLASS(test_fblk_class, .name = "test-blkfe", .init = fblk_init);

/* ---- fixture ---- */

static struct fakevm *vm;
static char dir[64];

static int setup(void **state)
{
	(void)state;
	memset(&fe, 0, sizeof(fe));
	fe.limit = sizeof(fe.in);
	vm = fakevm_new(4096);
	strcpy(dir, "/tmp/hearth-chartest-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (!fakevm_dev(vm, "test-charfe", "fe", NULL))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fakevm_free(vm);
	vm = NULL;
	return rm_tree(dir);
}

static const char *in_dir(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static struct hearth_dev *mkdev(const char *cls, const char *id, const char *json)
{
	struct hearth_dev *d = fakevm_dev(vm, cls, id, json);
	if (!d)
		fprintf(stderr, "%s\n", hearth_err_msg());
	return d;
}

static size_t be_write(const void *buf, size_t len)
{
	return fe.be_ops->write(fe.be, buf, len);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Run the loop until cond holds or ms pass. */
#define PUMP_UNTIL(cond, ms)                                                                       \
	do {                                                                                       \
		long end_ = now_ms() + (ms);                                                       \
		while (!(cond) && now_ms() < end_)                                                 \
			loop_run_once(vm->vm.loop, 20);                                            \
	} while (0)

static void pump(int rounds)
{
	for (int i = 0; i < rounds; i++)
		loop_run_once(vm->vm.loop, 0);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	static char buf[1 << 18];

	assert_non_null(f);
	*len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return buf;
}

static void describe(const char *id, char *buf, size_t len)
{
	struct hearth_dev *d = hearth_dev_find(&vm->vm, id);
	assert_non_null(d);
	hearth_dev_class(d)->describe(d, buf, len);
}

/* ---- ring and escape parser ---- */

static void ring_wraps_and_bounds(void **state)
{
	struct char_ring r;
	const uint8_t *p;
	uint8_t out[16];
	size_t n, got = 0;

	(void)state;
	assert_int_equal(char_ring_init(&r, 8), 0);
	assert_int_equal(char_ring_put(&r, (const uint8_t *)"abcdef", 6), 6);
	assert_int_equal(char_ring_peek(&r, &p), 6);
	char_ring_consume(&r, 4);
	/* "ef" stored at 4..5; the next six wrap around the end */
	assert_int_equal(char_ring_put(&r, (const uint8_t *)"ghijklmn", 8), 6);
	assert_int_equal(char_ring_space(&r), 0);
	assert_int_equal(char_ring_put(&r, (const uint8_t *)"z", 1), 0);
	while ((n = char_ring_peek(&r, &p)) > 0) {
		memcpy(out + got, p, n);
		got += n;
		char_ring_consume(&r, n);
	}
	assert_int_equal(got, 8);
	assert_memory_equal(out, "efghijkl", 8);
	char_ring_consume(&r, 5); /* more than stored: harmless */
	assert_int_equal(r.len, 0);
	char_ring_free(&r);
}

static void escape_parser(void **state)
{
	struct char_escape e = {0};
	uint8_t out[16];
	bool quit;
	size_t n;

	(void)state;
	n = char_escape_filter(&e, (const uint8_t *)"ab", 2, out, &quit);
	assert_int_equal(n, 2);
	assert_false(quit);
	/* Ctrl-A Ctrl-A is one Ctrl-A */
	n = char_escape_filter(&e, (const uint8_t *)"\x01\x01z", 3, out, &quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\x01z", 2);
	/* Ctrl-A and another key: both pass */
	n = char_escape_filter(&e, (const uint8_t *)"\x01q", 2, out, &quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\x01q", 2);
	/* an escape split across reads */
	n = char_escape_filter(&e, (const uint8_t *)"k\x01", 2, out, &quit);
	assert_int_equal(n, 1);
	assert_true(e.armed);
	n = char_escape_filter(&e, (const uint8_t *)"w", 1, out, &quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\x01w", 2);
	/* Ctrl-A x quits; what follows is dropped */
	n = char_escape_filter(&e, (const uint8_t *)"hi\x01xyz", 6, out, &quit);
	assert_true(quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "hi", 2);
	e.armed = false;
	n = char_escape_filter(&e, (const uint8_t *)"\x01X", 2, out, &quit);
	assert_true(quit);
	assert_int_equal(n, 0);
}

/* ---- connection errors shared by every backend ---- */

static void frontend_errors(void **state)
{
	char json[512];

	(void)state;
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"nope\"}", in_dir("a"));
	assert_null(fakevm_dev(vm, "char-file", "f1", json));
	assert_non_null(strstr(hearth_err_msg(), "no frontend 'nope'"));

	assert_non_null(mkdev("test-blkfe", "disk", NULL));
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"disk\"}", in_dir("a"));
	assert_null(fakevm_dev(vm, "char-file", "f2", json));
	assert_non_null(strstr(hearth_err_msg(), "frontend 'disk' is blk, not char"));

	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"\"}", in_dir("a"));
	assert_null(fakevm_dev(vm, "char-file", "f3", json));
	assert_non_null(strstr(hearth_err_msg(), "names no frontend"));

	/* the default is com1, absent here */
	snprintf(json, sizeof(json), "{\"path\": \"%s\"}", in_dir("a"));
	assert_null(fakevm_dev(vm, "char-file", "f4", json));
	assert_non_null(strstr(hearth_err_msg(), "no frontend 'com1'"));

	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("a"));
	assert_non_null(mkdev("char-file", "f5", json));
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("b"));
	assert_null(fakevm_dev(vm, "char-file", "f6", json));
	assert_non_null(strstr(hearth_err_msg(), "already connected to 'f5'"));

	/* failed backends never attached: one attach in all */
	assert_int_equal(fe.attach_calls, 1);
	assert_int_equal(fe.detach_calls, 0);
}

/* ---- char-file ---- */

static void file_writes_exactly(void **state)
{
	static uint8_t big[100000];
	char json[512], desc[256];
	size_t len;

	(void)state;
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("out"));
	assert_non_null(mkdev("char-file", "log", json));
	describe("log", desc, sizeof(desc));
	assert_string_equal(desc, in_dir("out"));
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	assert_int_equal(be_write("hello\n", 6), 6);
	/* a regular file takes everything at once: nothing waits for the loop */
	assert_int_equal(be_write(big, sizeof(big)), sizeof(big));
	pump(3);
	char *got = slurp(in_dir("out"), &len);
	assert_int_equal(len, 6 + sizeof(big));
	assert_memory_equal(got, "hello\n", 6);
	assert_memory_equal(got + 6, big, sizeof(big));
	assert_int_equal(fe.tx_ready_calls, 0);
	/* removal detaches from the frontend */
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&vm->vm, "log")), 0);
	assert_int_equal(fe.detach_calls, 1);
	assert_null(fe.be_ops);
}

static void file_truncates_or_appends(void **state)
{
	char json[512];
	size_t len;
	FILE *f = fopen(in_dir("t"), "w");

	(void)state;
	fputs("old content\n", f);
	fclose(f);
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\", \"append\": true}",
		 in_dir("t"));
	assert_non_null(mkdev("char-file", "a", json));
	assert_int_equal(be_write("more\n", 5), 5);
	char *got = slurp(in_dir("t"), &len);
	assert_int_equal(len, 17);
	assert_memory_equal(got, "old content\nmore\n", 17);
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&vm->vm, "a")), 0);

	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("t"));
	assert_non_null(mkdev("char-file", "t", json));
	got = slurp(in_dir("t"), &len);
	assert_int_equal(len, 0);
	assert_int_equal(be_write("new", 3), 3);
	got = slurp(in_dir("t"), &len);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "new", 3);
}

static void file_errors(void **state)
{
	char json[512];

	(void)state;
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}",
		 in_dir("missing/dir/out"));
	assert_null(fakevm_dev(vm, "char-file", "f", json));
	assert_non_null(strstr(hearth_err_msg(), in_dir("missing/dir/out")));
	assert_non_null(strstr(hearth_err_msg(), "No such file or directory"));
	assert_null(strchr(hearth_err_msg(), '\n'));

	assert_null(fakevm_dev(vm, "char-file", "f", "{\"frontend\": \"fe\"}"));
	assert_non_null(strstr(hearth_err_msg(), "'path' is required"));

	/* a FIFO nobody reads: refused at start, not a hang */
	assert_int_equal(mkfifo(in_dir("fifo"), 0600), 0);
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("fifo"));
	assert_null(fakevm_dev(vm, "char-file", "f", json));
	assert_non_null(strstr(hearth_err_msg(), "no reader"));

	snprintf(json, sizeof(json),
		 "{\"path\": \"%s\", \"frontend\": \"fe\", \"append\": \"maybe\"}", in_dir("x"));
	assert_null(fakevm_dev(vm, "char-file", "f", json));
	assert_non_null(strstr(hearth_err_msg(), "append"));
	assert_int_equal(fe.attach_calls, 0);
}

/* Through a FIFO the output is drained by the loop: the bounded ring fills, the
 * frontend is refused, and tx_ready comes when the reader catches up. */
static void file_fifo_backpressure(void **state)
{
	static uint8_t data[400000], got[400000];
	char json[512];
	size_t sent = 0, recvd = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ (i >> 9));
	assert_int_equal(mkfifo(in_dir("fifo"), 0600), 0);
	int rd = open(in_dir("fifo"), O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("fifo"));
	assert_non_null(mkdev("char-file", "pipe", json));

	/* with no reading, the writes stop at the pipe plus the ring */
	while (sent < sizeof(data)) {
		size_t n = be_write(data + sent, 4096);
		sent += n;
		if (n < 4096)
			break;
	}
	assert_true(sent < sizeof(data));
	assert_true(sent >= CHAR_OUT_CAP);
	assert_int_equal(be_write(data + sent, 1), 0);
	assert_int_equal(fe.tx_ready_calls, 0);

	for (int guard = 0; recvd < sizeof(data) && guard < 100000; guard++) {
		ssize_t r = read(rd, got + recvd, sizeof(got) - recvd);
		if (r > 0)
			recvd += (size_t)r;
		int before = fe.tx_ready_calls;
		pump(1);
		if (fe.tx_ready_calls > before || sent < sizeof(data)) {
			while (sent < sizeof(data)) {
				size_t n = be_write(data + sent, sizeof(data) - sent);
				sent += n;
				if (!n)
					break;
			}
		}
	}
	assert_int_equal(recvd, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	assert_true(fe.tx_ready_calls > 0);
	close(rd);
}

/* ---- char-socket ---- */

static size_t read_some(int fd, char *buf, size_t cap, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t got = 0;

	while (got < cap && poll(&p, 1, ms) > 0) {
		ssize_t r = read(fd, buf + got, cap - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		ms = 20;
	}
	return got;
}

static void socket_clients_come_and_go(void **state)
{
	char json[512], buf[64], desc[256];
	const char *path = in_dir("sock");

	(void)state;
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", path);
	assert_non_null(mkdev("char-socket", "sock", json));
	describe("sock", desc, sizeof(desc));
	assert_string_equal(desc, path);
	/* no client: output is discarded, never a stall */
	assert_int_equal(be_write("lost", 4), 4);

	int c1 = unix_connect(path);
	pump(2);
	assert_int_equal(be_write("out1", 4), 4);
	assert_int_equal(read_some(c1, buf, 4, 1000), 4);
	assert_memory_equal(buf, "out1", 4);
	assert_int_equal(write(c1, "in1", 3), 3);
	PUMP_UNTIL(fe.nin == 3, 1000);
	assert_int_equal(fe.nin, 3);
	assert_memory_equal(fe.in, "in1", 3);

	/* a second client waits while the first is served */
	int c2 = unix_connect(path);
	pump(2);
	assert_int_equal(be_write("only1", 5), 5);
	assert_int_equal(read_some(c1, buf, 5, 1000), 5);
	assert_memory_equal(buf, "only1", 5);
	assert_int_equal(read_some(c2, buf, sizeof(buf), 50), 0);

	close(c1);
	pump(4);
	assert_int_equal(be_write("out2", 4), 4);
	assert_int_equal(read_some(c2, buf, 4, 1000), 4);
	assert_memory_equal(buf, "out2", 4);
	assert_int_equal(write(c2, "in2", 3), 3);
	PUMP_UNTIL(fe.nin == 6, 1000);
	assert_memory_equal(fe.in, "in1in2", 6);
	close(c2);
	pump(4);

	/* a third, later */
	int c3 = unix_connect(path);
	pump(2);
	assert_int_equal(be_write("out3", 4), 4);
	assert_int_equal(read_some(c3, buf, sizeof(buf), 1000), 4);
	assert_memory_equal(buf, "out3", 4);
	close(c3);

	/* removal deletes the socket file */
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&vm->vm, "sock")), 0);
	struct stat st;
	assert_int_equal(lstat(path, &st), -1);
}

static void socket_input_flow_control(void **state)
{
	char json[512];
	const char *path = in_dir("sock");

	(void)state;
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", path);
	assert_non_null(mkdev("char-socket", "sock", json));
	int c = unix_connect(path);
	pump(2);
	fe.limit = 4;
	assert_int_equal(write(c, "0123456789", 10), 10);
	PUMP_UNTIL(fe.nin == 4, 1000);
	pump(3);
	assert_int_equal(fe.nin, 4);
	fe.limit = 7;
	fe.be_ops->rx_ready(fe.be);
	pump(3);
	assert_int_equal(fe.nin, 7);
	/* the client leaves while its last bytes wait for the frontend: the line is free at
	 * once (a guest that never reads must not stall it), and what was already read
	 * still arrives, before anything from the next client */
	close(c);
	pump(3);
	static uint8_t big[3 * CHAR_OUT_CAP];
	assert_int_equal(be_write(big, sizeof(big)), sizeof(big)); /* no client: discarded */
	c = unix_connect(path);
	pump(3);
	assert_int_equal(write(c, "x", 1), 1);
	pump(3);
	assert_int_equal(fe.nin, 7);
	fe.limit = sizeof(fe.in);
	fe.be_ops->rx_ready(fe.be);
	PUMP_UNTIL(fe.nin == 11, 1000);
	assert_int_equal(fe.nin, 11);
	assert_memory_equal(fe.in, "0123456789x", 11);
	assert_int_equal(be_write("y", 1), 1);
	char buf[8];
	assert_int_equal(read_some(c, buf, sizeof(buf), 1000), 1);
	assert_int_equal(buf[0], 'y');
	close(c);
}

static void socket_wait_holds_output(void **state)
{
	static uint8_t data[CHAR_OUT_CAP + 100], got[CHAR_OUT_CAP + 100];
	char json[512];
	const char *path = in_dir("sock");
	size_t sent = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\", \"wait\": true}",
		 path);
	assert_non_null(mkdev("char-socket", "sock", json));
	/* no client: held up to the bound, then the frontend is refused */
	sent = be_write(data, sizeof(data));
	assert_int_equal(sent, CHAR_OUT_CAP);
	assert_int_equal(fe.tx_ready_calls, 0);
	int c = unix_connect(path);
	size_t recvd = 0;
	for (int i = 0; i < 2000 && recvd < sizeof(data); i++) {
		pump(1);
		if (fe.tx_ready_calls && sent < sizeof(data))
			sent += be_write(data + sent, sizeof(data) - sent);
		struct pollfd p = {.fd = c, .events = POLLIN};
		if (poll(&p, 1, 1) > 0) {
			ssize_t r = read(c, got + recvd, sizeof(got) - recvd);
			if (r > 0)
				recvd += (size_t)r;
		}
	}
	assert_true(fe.tx_ready_calls >= 1);
	assert_int_equal(recvd, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	close(c);
}

static void socket_errors(void **state)
{
	char json[512], longpath[200];
	struct sockaddr_un sa;
	struct stat st;

	(void)state;
	/* too long for sun_path: a clear error, never a truncated name */
	memset(longpath, 0, sizeof(longpath));
	snprintf(longpath, sizeof(longpath), "%s/", dir);
	while (strlen(longpath) < sizeof(sa.sun_path) + 5)
		strcat(longpath, "x");
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", longpath);
	assert_null(fakevm_dev(vm, "char-socket", "s", json));
	assert_non_null(strstr(hearth_err_msg(), "at most 107"));
	longpath[sizeof(sa.sun_path) - 1] = 0;
	assert_int_equal(lstat(longpath, &st), -1);

	/* exactly the limit fits */
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", longpath);
	assert_non_null(mkdev("char-socket", "s107", json));
	assert_int_equal(hearth_dev_remove(hearth_dev_find(&vm->vm, "s107")), 0);

	/* something that is not a socket is never replaced */
	FILE *f = fopen(in_dir("plain"), "w");
	fclose(f);
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("plain"));
	assert_null(fakevm_dev(vm, "char-socket", "s", json));
	assert_non_null(strstr(hearth_err_msg(), "is not a socket"));
	assert_int_equal(lstat(in_dir("plain"), &st), 0);

	/* a live server's socket is not stolen */
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("live"));
	assert_non_null(mkdev("char-socket", "live", json));
	assert_non_null(mkdev("test-charfe", "fe2", NULL));
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe2\"}", in_dir("live"));
	assert_null(fakevm_dev(vm, "char-socket", "s", json));
	assert_non_null(strstr(hearth_err_msg(), "in use"));
	assert_int_equal(lstat(in_dir("live"), &st), 0);

	/* a stale socket file is replaced */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	strcpy(sa.sun_path, in_dir("stale"));
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe2\"}", in_dir("stale"));
	assert_non_null(mkdev("char-socket", "s", json));
	int c = unix_connect(in_dir("stale"));
	close(c);

	assert_null(fakevm_dev(vm, "char-socket", "s2", "{\"frontend\": \"fe\"}"));
	assert_non_null(strstr(hearth_err_msg(), "'path' is required"));
	/* missing directory */
	snprintf(json, sizeof(json), "{\"path\": \"%s\", \"frontend\": \"fe\"}", in_dir("no/s"));
	assert_null(fakevm_dev(vm, "char-socket", "s3", json));
	assert_non_null(strstr(hearth_err_msg(), in_dir("no/s")));
}

/* ---- char-pty ---- */

static void pty_line(void **state)
{
	char buf[64], desc[256], msg[256];
	struct stat st;
	int pipefd[2], saved_err = dup(2);

	(void)state;
	/* the path is announced on stderr */
	assert_int_equal(pipe(pipefd), 0);
	dup2(pipefd[1], 2);
	struct hearth_dev *d = mkdev("char-pty", "pty0", "{\"frontend\": \"fe\"}");
	dup2(saved_err, 2);
	close(saved_err);
	close(pipefd[1]);
	assert_non_null(d);
	ssize_t n = read(pipefd[0], msg, sizeof(msg) - 1);
	close(pipefd[0]);
	assert_true(n > 0);
	msg[n] = 0;
	describe("pty0", desc, sizeof(desc));
	assert_non_null(strstr(desc, "/dev/pts/"));
	char want[300];
	snprintf(want, sizeof(want), "hearth: char-pty 'pty0': %s\n", desc);
	assert_string_equal(msg, want);
	assert_int_equal(stat(desc, &st), 0);
	assert_true(S_ISCHR(st.st_mode));

	/* nobody on the slave: output is discarded */
	assert_int_equal(be_write("gone", 4), 4);

	int s = open(desc, O_RDWR | O_NOCTTY);
	assert_true(s >= 0);
	assert_int_equal(write(s, "ping", 4), 4);
	PUMP_UNTIL(fe.nin == 4, 2000);
	assert_int_equal(fe.nin, 4);
	assert_memory_equal(fe.in, "ping", 4);
	assert_int_equal(be_write("pong\n", 5), 5);
	assert_int_equal(read_some(s, buf, sizeof(buf), 1000), 5);
	assert_memory_equal(buf, "pong\n", 5); /* raw: no \r added */

	close(s);
	PUMP_UNTIL(false, 300);
	assert_int_equal(be_write("gone", 4), 4);

	/* a new user of the slave gets the line again */
	s = open(desc, O_RDWR | O_NOCTTY);
	assert_true(s >= 0);
	assert_int_equal(write(s, "again", 5), 5);
	PUMP_UNTIL(fe.nin == 9, 2000);
	assert_memory_equal(fe.in, "pingagain", 9);
	assert_int_equal(be_write("ok", 2), 2);
	assert_int_equal(read_some(s, buf, sizeof(buf), 1000), 2);
	assert_memory_equal(buf, "ok", 2);
	close(s);
}

static void pty_wait_holds_output(void **state)
{
	char buf[64], desc[256];
	int saved_err = dup(2), null = open("/dev/null", O_WRONLY);

	(void)state;
	dup2(null, 2);
	struct hearth_dev *d = mkdev("char-pty", "pty1", "{\"frontend\": \"fe\", \"wait\": true}");
	dup2(saved_err, 2);
	close(saved_err);
	close(null);
	assert_non_null(d);
	describe("pty1", desc, sizeof(desc));
	assert_int_equal(be_write("held", 4), 4);
	int s = open(desc, O_RDWR | O_NOCTTY);
	assert_true(s >= 0);
	size_t got = 0;
	long end = now_ms() + 2000;
	while (got < 4 && now_ms() < end) {
		loop_run_once(vm->vm.loop, 20);
		got += read_some(s, buf + got, sizeof(buf) - got, 0);
	}
	assert_int_equal(got, 4);
	assert_memory_equal(buf, "held", 4);
	close(s);
}

/* ---- char-stdio, in children whose fds 0 and 1 are what the test needs ---- */

/* Child side: build a VM with a frontend and char-stdio on the current fds 0/1. */
static struct fakevm *child_vm(void)
{
	memset(&fe, 0, sizeof(fe));
	fe.limit = sizeof(fe.in);
	struct fakevm *f = fakevm_new(4096);
	if (!fakevm_dev(f, "test-charfe", "fe", NULL))
		_exit(90);
	if (!fakevm_dev(f, "char-stdio", "stdio", "{\"frontend\": \"fe\"}")) {
		fprintf(stderr, "%s\n", hearth_err_msg());
		_exit(91);
	}
	return f;
}

static void child_pump(struct fakevm *f, size_t want_in, int ms)
{
	long end = now_ms() + ms;
	while (fe.nin < want_in && now_ms() < end)
		loop_run_once(f->vm.loop, 20);
}

static int wait_child(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st))
		return 1000 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static void stdio_pipes(void **state)
{
	int in[2], out[2];

	(void)state;
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		int fl0 = fcntl(0, F_GETFL), fl1 = fcntl(1, F_GETFL);
		struct fakevm *f = child_vm();
		if (!(fcntl(0, F_GETFL) & O_NONBLOCK) || !(fcntl(1, F_GETFL) & O_NONBLOCK))
			_exit(10);
		child_pump(f, 5, 2000);
		if (fe.nin != 5 || memcmp(fe.in,
					  "a\x01"
					  "bc",
					  4) != 0)
			_exit(11); /* not a terminal: no escape processing */
		if (fe.be_ops->write(fe.be, (const uint8_t *)"echo:", 5) != 5)
			_exit(12);
		if (fe.be_ops->write(fe.be, fe.in, fe.nin) != fe.nin)
			_exit(13);
		/* EOF on stdin ends input quietly: the loop goes idle */
		child_pump(f, 6, 300);
		if (fe.nin != 5 || f->stop_requested)
			_exit(14);
		fakevm_free(f);
		if (fcntl(0, F_GETFL) != fl0 || fcntl(1, F_GETFL) != fl1)
			_exit(15); /* flags restored by free */
		_exit(0);
	}
	close(in[0]);
	close(out[1]);
	assert_int_equal(write(in[1],
			       "a\x01"
			       "bcx",
			       5),
			 5);
	close(in[1]);
	char buf[64];
	size_t n = read_some(out[0], buf, sizeof(buf), 3000);
	assert_int_equal(wait_child(pid), 0);
	assert_int_equal(n, 10);
	assert_memory_equal(buf,
			    "echo:a\x01"
			    "bcx",
			    10);
	close(out[0]);
}

/* stdin a regular file (fed at the frontend's pace), stdout a regular file (written at
 * once). */
static void stdio_files(void **state)
{
	char text[4096];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (char)('a' + i % 26);
	FILE *f = fopen(in_dir("stdin"), "w");
	fwrite(text, 1, sizeof(text), f);
	fclose(f);
	pid_t pid = fork();
	if (pid == 0) {
		int i0 = open(in_dir("stdin"), O_RDONLY);
		int o1 = open(in_dir("stdout"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(i0, 0);
		dup2(o1, 1);
		struct fakevm *v = child_vm();
		/* the frontend takes 100 bytes, then stalls the input until rx_ready */
		fe.limit = 100;
		child_pump(v, sizeof(text), 300);
		if (fe.nin != 100)
			_exit(20);
		fe.limit = sizeof(fe.in);
		fe.be_ops->rx_ready(fe.be);
		child_pump(v, sizeof(text), 3000);
		if (fe.nin != sizeof(text))
			_exit(21);
		if (fe.be_ops->write(fe.be, fe.in, fe.nin) != fe.nin)
			_exit(22);
		fakevm_free(v);
		_exit(0);
	}
	assert_int_equal(wait_child(pid), 0);
	char *got = slurp(in_dir("stdout"), &len);
	assert_int_equal(len, sizeof(text));
	assert_memory_equal(got, text, sizeof(text));
}

/* stdout's reader leaves: output is discarded, hearth lives on (no SIGPIPE death). */
static void stdio_stdout_reader_gone(void **state)
{
	int out[2], in[2];

	(void)state;
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(in), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]), close(out[0]), close(out[1]), close(in[0]);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		struct fakevm *v = child_vm();
		static uint8_t big[CHAR_OUT_CAP];
		memset(big, 'b', sizeof(big));
		/* fill the pipe and the ring: the frontend is refused */
		size_t total = 0, n;
		while ((n = fe.be_ops->write(fe.be, big, sizeof(big))) == sizeof(big))
			total += n;
		(void)total;
		if (fe.tx_ready_calls)
			_exit(30);
		/* the parent now closes its read end; the loop hears of it */
		long end = now_ms() + 3000;
		while (!fe.tx_ready_calls && now_ms() < end)
			loop_run_once(v->vm.loop, 20);
		if (fe.tx_ready_calls != 1)
			_exit(32); /* the refused frontend is released */
		if (fe.be_ops->write(fe.be, big, sizeof(big)) != sizeof(big))
			_exit(33); /* discarded, never blocking */
		fakevm_free(v);
		_exit(0);
	}
	close(in[0]);
	close(out[1]);
	/* wait until the child has filled the pipe, then leave */
	struct pollfd p = {.fd = out[0], .events = POLLIN};
	assert_int_equal(poll(&p, 1, 3000), 1);
	usleep(100000);
	close(out[0]);
	close(in[1]);
	assert_int_equal(wait_child(pid), 0);
}

static int open_pty(char *name, size_t len)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);

	assert_true(m >= 0);
	assert_int_equal(grantpt(m), 0);
	assert_int_equal(unlockpt(m), 0);
	assert_int_equal(ptsname_r(m, name, len), 0);
	return m;
}

static void stdio_terminal(void **state)
{
	char name[64], buf[64];
	int m = open_pty(name, sizeof(name));

	(void)state;
	pid_t pid = fork();
	if (pid == 0) {
		close(m);
		int s = open(name, O_RDWR | O_NOCTTY);
		dup2(s, 0);
		dup2(s, 1);
		close(s);
		struct termios before, during, after;
		tcgetattr(0, &before);
		if (!(before.c_lflag & ICANON))
			_exit(40);
		struct fakevm *v = child_vm();
		tcgetattr(0, &during);
		if (during.c_lflag & (ICANON | ECHO | ISIG) || during.c_iflag & ICRNL)
			_exit(41);
		if (!(during.c_oflag & OPOST))
			_exit(42); /* output processing kept */
		/* the restore hook works on its own (signal path) and is idempotent */
		char_stdio_restore_all();
		tcgetattr(0, &after);
		if (!(after.c_lflag & ICANON) || (fcntl(0, F_GETFL) & O_NONBLOCK))
			_exit(43);
		char_stdio_restore_all();
		/* a second instance is refused: there is one stdin */
		if (fakevm_dev(v, "char-stdio", "stdio2", "{\"frontend\": \"fe\"}") ||
		    !strstr(hearth_err_msg(), "already used by char-stdio 'stdio'"))
			_exit(44);
		fakevm_free(v);

		v = child_vm();
		fe.be_ops->write(fe.be, (const uint8_t *)"ready", 5);
		/* "a", Ctrl-A Ctrl-A, "b", Ctrl-A "c", Ctrl-A x */
		child_pump(v, 5, 3000);
		long end = now_ms() + 2000;
		while (!v->stop_requested && now_ms() < end)
			loop_run_once(v->vm.loop, 20);
		if (fe.nin != 5 || memcmp(fe.in,
					  "a\x01"
					  "b\x01"
					  "c",
					  5) != 0)
			_exit(45);
		if (v->stop_requested != 1 || v->stop_status != 0)
			_exit(46);
		fakevm_free(v);
		tcgetattr(0, &after);
		if (!(after.c_lflag & ICANON) || !(after.c_lflag & ECHO))
			_exit(47);
		_exit(0);
	}
	size_t n = read_some(m, buf, 5, 3000);
	if (n != 5)
		fprintf(stderr, "child: %d\n", wait_child(pid));
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "ready", 5);
	assert_int_equal(write(m,
			       "a\x01\x01"
			       "b\x01"
			       "c\x01x",
			       8),
			 8);
	assert_int_equal(wait_child(pid), 0);
	close(m);
}

/* A fatal signal in raw mode still gives the terminal back. */
static void stdio_terminal_restored_on_fatal_signal(void **state)
{
	char name[64];
	int m = open_pty(name, sizeof(name));
	int sync[2];

	(void)state;
	assert_int_equal(pipe(sync), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(m);
		close(sync[0]);
		int s = open(name, O_RDWR | O_NOCTTY);
		dup2(s, 0);
		dup2(s, 1);
		close(s);
		signal(SIGTERM, SIG_DFL);
		child_vm();
		if (write(sync[1], "r", 1) != 1)
			_exit(50);
		pause();
		_exit(51);
	}
	close(sync[1]);
	char c;
	assert_int_equal(read(sync[0], &c, 1), 1);
	close(sync[0]);
	/* the child holds the slave in raw mode; the termios are shared with the master */
	struct termios t;
	assert_int_equal(tcgetattr(m, &t), 0);
	assert_int_equal(t.c_lflag & ICANON, 0);
	kill(pid, SIGTERM);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGTERM);
	assert_int_equal(tcgetattr(m, &t), 0);
	assert_true(t.c_lflag & ICANON);
	close(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_wraps_and_bounds),
		cmocka_unit_test(escape_parser),
		cmocka_unit_test_setup_teardown(frontend_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(file_writes_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(file_truncates_or_appends, setup, teardown),
		cmocka_unit_test_setup_teardown(file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(file_fifo_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(socket_clients_come_and_go, setup, teardown),
		cmocka_unit_test_setup_teardown(socket_input_flow_control, setup, teardown),
		cmocka_unit_test_setup_teardown(socket_wait_holds_output, setup, teardown),
		cmocka_unit_test_setup_teardown(socket_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(pty_line, setup, teardown),
		cmocka_unit_test_setup_teardown(pty_wait_holds_output, setup, teardown),
		cmocka_unit_test_setup_teardown(stdio_pipes, setup, teardown),
		cmocka_unit_test_setup_teardown(stdio_files, setup, teardown),
		cmocka_unit_test_setup_teardown(stdio_stdout_reader_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(stdio_terminal, setup, teardown),
		cmocka_unit_test_setup_teardown(stdio_terminal_restored_on_fatal_signal, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
