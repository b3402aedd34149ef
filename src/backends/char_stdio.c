/* char-stdio: the guest's console on hearth's own stdin and stdout. A terminal is put in
 * raw mode, and everything changed (terminal mode, O_NONBLOCK on the shared file
 * descriptions) is put back on every way out: free, exit, fatal signals. */
#include "backends/char_stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "backends/char_ckpt.h"
#include "backends/char_common.h"

struct stdio_be {
	struct char_be c;
	struct char_escape esc;
	bool tty_in;
	bool out_logged;
	char what[64];
};

/* What to restore: written before the change it undoes, read by signal handlers. */
static struct {
	volatile sig_atomic_t termios, in_flags, out_flags;
	struct termios tio;
	int in_fl, out_fl;
} saved;
static struct stdio_be *owner; /* the one instance: there is one stdin */

void char_stdio_restore_all(void)
{
	if (saved.termios) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved.tio);
		saved.termios = 0;
	}
	/* reverse order of saving: stdin and stdout often share one file description, and
	 * stdout's saved flags then already carry our O_NONBLOCK */
	if (saved.out_flags) {
		fcntl(STDOUT_FILENO, F_SETFL, saved.out_fl);
		saved.out_flags = 0;
	}
	if (saved.in_flags) {
		fcntl(STDIN_FILENO, F_SETFL, saved.in_fl);
		saved.in_flags = 0;
	}
}

static const int fatal_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGABRT,
				    SIGBUS, SIGFPE, SIGSEGV, SIGTERM};

static void on_fatal_signal(int sig)
{
	int e = errno;

	char_stdio_restore_all();
	/* SA_RESETHAND put the default back: die of the same signal */
	raise(sig);
	errno = e;
}

/* Only where nobody (the VM layer, a sanitizer) handles the signal already: theirs must
 * call char_stdio_restore_all themselves. */
static void install_handlers(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	atexit(char_stdio_restore_all);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		struct sigaction old,
			sa = {.sa_handler = on_fatal_signal, .sa_flags = SA_RESETHAND | SA_NODEFER};
		if (sigaction(fatal_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
		    !(old.sa_flags & SA_SIGINFO))
			sigaction(fatal_signals[i], &sa, NULL);
	}
}

size_t char_escape_filter(struct char_escape *e, const uint8_t *in, size_t n, uint8_t *out,
			  bool *quit)
{
	size_t o = 0;

	*quit = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = in[i];
		if (!e->armed) {
			if (ch == CHAR_ESCAPE)
				e->armed = true;
			else
				out[o++] = ch;
			continue;
		}
		e->armed = false;
		if (ch == 'x' || ch == 'X') {
			*quit = true;
			return o;
		}
		/* Ctrl-A Ctrl-A is one Ctrl-A; anything else keeps both so nothing typed is lost */
		if (ch != CHAR_ESCAPE)
			out[o++] = CHAR_ESCAPE;
		out[o++] = ch;
	}
	return o;
}

static enum char_read stdio_read(struct char_be *c, int fd, uint8_t *buf, size_t cap, size_t *n)
{
	struct stdio_be *s = (struct stdio_be *)c;
	uint8_t raw[CHAR_IN_CHUNK];
	size_t want = cap - 1 < sizeof(raw) ? cap - 1 : sizeof(raw);
	ssize_t r;

	do
		r = read(fd, s->tty_in ? raw : buf, want);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return CHAR_READ_AGAIN;
	if (r <= 0)
		return CHAR_READ_END; /* EOF, or a terminal that went away: no more input */
	if (!s->tty_in) {
		*n = (size_t)r;
		return CHAR_READ_DATA;
	}
	bool quit;
	*n = char_escape_filter(&s->esc, raw, (size_t)r, buf, &quit);
	if (quit)
		hearth_vm_request_stop(c->vm, 0);
	return CHAR_READ_DATA;
}

static void stdio_hangup(struct char_be *c, bool output)
{
	struct stdio_be *s = (struct stdio_be *)c;

	if (output) {
		hearth_log_once(s->out_logged,
				"char-stdio '%s': stdout is closed; discarding "
				"guest output",
				char_be_id(c));
		char_be_set_fds(c, c->in_fd, c->in_poll, -1, false);
	} else {
		char_be_set_fds(c, -1, false, c->out_fd, c->out_sync);
	}
}

static const struct char_be_io stdio_io = {
	.read = stdio_read,
	.hangup = stdio_hangup,
};

static const char *kind(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return "closed";
	if (isatty(fd))
		return "tty";
	if (S_ISFIFO(st.st_mode))
		return "pipe";
	if (S_ISSOCK(st.st_mode))
		return "socket";
	if (S_ISREG(st.st_mode))
		return "file";
	return "device";
}

static int set_raw(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &saved.tio) < 0)
		return hearth_err("stdin: cannot read the terminal mode: %s", strerror(errno));
	saved.termios = 1;
	t = saved.tio;
	/* raw input, no signals or echo; output processing (OPOST) is left alone so hearth's
	 * own messages on the same terminal still start at the left margin */
	t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0)
		return hearth_err("stdin: cannot set raw mode: %s", strerror(errno));
	return 0;
}

static int save_and_nonblock(int fd, volatile sig_atomic_t *flag, int *fl)
{
	int cur = fcntl(fd, F_GETFL);

	if (cur < 0)
		return -1;
	*fl = cur;
	*flag = 1;
	return fcntl(fd, F_SETFL, cur | O_NONBLOCK);
}

static void stdio_free(struct hearth_dev *dev)
{
	struct stdio_be *s = hearth_dev_priv(dev);

	if (!s)
		return;
	char_be_stop(&s->c);
	char_be_destroy(&s->c);
	if (owner == s) {
		char_stdio_restore_all();
		owner = NULL;
	}
	free(s);
}

static int stdio_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	struct stdio_be *s;
	struct stat st;

	if (owner)
		return hearth_err("stdin and stdout are already used by char-stdio '%s'",
				  char_be_id(&owner->c));
	s = calloc(1, sizeof(*s));
	if (!s)
		return hearth_err("out of memory");
	hearth_dev_set_priv(dev, s);
	owner = s;
	if (char_be_init(&s->c, dev, &stdio_io, false) < 0)
		return -1;
	snprintf(s->what, sizeof(s->what), "stdin: %s, stdout: %s", kind(STDIN_FILENO),
		 kind(STDOUT_FILENO));
	install_handlers();

	int in_fd = -1, out_fd = -1;
	bool in_poll = false, out_sync = false;
	if (fstat(STDIN_FILENO, &st) == 0) {
		in_fd = STDIN_FILENO;
		in_poll = char_fd_pollable(in_fd);
		s->tty_in = isatty(in_fd);
		if (s->tty_in && set_raw() < 0)
			return -1;
		if (in_poll && save_and_nonblock(in_fd, &saved.in_flags, &saved.in_fl) < 0)
			return hearth_err("stdin: %s", strerror(errno));
	}
	if (fstat(STDOUT_FILENO, &st) == 0) {
		out_fd = STDOUT_FILENO;
		out_sync = !char_fd_pollable(out_fd);
		if (!out_sync && save_and_nonblock(out_fd, &saved.out_flags, &saved.out_fl) < 0)
			return hearth_err("stdout: %s", strerror(errno));
		/* a pipe whose reader left must end the output, not the VMM */
		struct sigaction old;
		if (S_ISFIFO(st.st_mode) && sigaction(SIGPIPE, NULL, &old) == 0 &&
		    old.sa_handler == SIG_DFL)
			signal(SIGPIPE, SIG_IGN);
	}
	char_be_set_fds(&s->c, in_fd, in_poll, out_fd, out_sync);
	return char_be_attach(&s->c, cfg);
}

static void stdio_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	struct stdio_be *s = hearth_dev_priv(dev);

	snprintf(buf, len, "%s", s ? s->what : "");
}

HEARTH_DEVICE_CLASS(
	char_stdio_class, .name = "char-stdio",
	.summary = "char backend on hearth's stdin/stdout (raw terminal, Ctrl-A x quits)",
	.init = stdio_init, .free = stdio_free, .describe = stdio_describe, .save = char_be_save_op,
	.load = char_be_load_op, .quiesce = char_be_quiesce_op);
