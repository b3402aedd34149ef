/* char-file: guest output into a file (or a FIFO or device); no input. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/char_ckpt.h"
#include "backends/char_common.h"

struct file_be {
	struct char_be c;
	int fd;
	bool logged;
	char *path;
};

static enum char_read file_read(struct char_be *c, int fd, uint8_t *buf, size_t cap, size_t *n)
{
	(void)c, (void)fd, (void)buf, (void)cap, (void)n;
	return CHAR_READ_END;
}

static void file_hangup(struct char_be *c, bool output)
{
	struct file_be *f = (struct file_be *)c;

	if (!output)
		return;
	hearth_log_once(f->logged,
			"char-file '%s': cannot write '%s' (%s); discarding guest output",
			char_be_id(c), f->path, strerror(c->out_errno));
	char_be_set_fds(c, -1, false, -1, false);
}

static const struct char_be_io file_io = {
	.read = file_read,
	.hangup = file_hangup,
};

static void file_free(struct hearth_dev *dev)
{
	struct file_be *f = hearth_dev_priv(dev);

	if (!f)
		return;
	char_be_stop(&f->c);
	if (f->fd >= 0)
		close(f->fd);
	char_be_destroy(&f->c);
	free(f->path);
	free(f);
}

static int file_init(struct hearth_dev *dev, struct hearth_cfg *cfg)
{
	const char *path;
	bool append;
	struct file_be *f;
	struct stat st;

	if (hearth_cfg_str(cfg, "path", NULL, &path) < 0 ||
	    hearth_cfg_bool(cfg, "append", false, &append) < 0)
		return -1;
	if (!path || !path[0])
		return hearth_err("key 'path' is required: the file to write guest output to");
	f = calloc(1, sizeof(*f));
	if (!f)
		return hearth_err("out of memory");
	f->fd = -1;
	hearth_dev_set_priv(dev, f);
	if (char_be_init(&f->c, dev, &file_io, false) < 0)
		return -1;
	f->path = strdup(path);
	if (!f->path)
		return hearth_err("out of memory");
	/* O_NONBLOCK: a FIFO without a reader fails now (ENXIO) instead of hanging start-up */
	f->fd = open(path,
		     O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
			     (append ? O_APPEND : O_TRUNC),
		     0644);
	if (f->fd < 0)
		return hearth_err("cannot open '%s' for writing: %s%s", path, strerror(errno),
				  errno == ENXIO ? " (a FIFO with no reader?)" : "");
	if (fstat(f->fd, &st) < 0)
		return hearth_err("'%s': %s", path, strerror(errno));
	bool sync = !char_fd_pollable(f->fd);
	if (sync && char_set_nonblock(f->fd, false) < 0)
		return hearth_err("'%s': %s", path, strerror(errno));
	if (S_ISFIFO(st.st_mode)) {
		struct sigaction old;
		if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			signal(SIGPIPE, SIG_IGN);
	}
	char_be_set_fds(&f->c, -1, false, f->fd, sync);
	return char_be_attach(&f->c, cfg);
}

static void file_describe(struct hearth_dev *dev, char *buf, size_t len)
{
	struct file_be *f = hearth_dev_priv(dev);

	snprintf(buf, len, "%s", f && f->path ? f->path : "");
}

HEARTH_DEVICE_CLASS(char_file_class, .name = "char-file",
		    .summary = "char backend writing guest output to a file (path=, append=on)",
		    .init = file_init, .free = file_free, .describe = file_describe,
		    .save = char_be_save_op, .load = char_be_load_op,
		    .quiesce = char_be_quiesce_op);
