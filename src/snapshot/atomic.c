/* Replacing a checkpoint file so that a failed or killed save never damages the old one: the
 * new contents go to a file with no name (O_TMPFILE) or a hidden temporary name, are fsynced,
 * then renamed over the old file, and the directory is fsynced so the rename is durable. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/store.h"

bool ckpt_atomic_no_tmpfile;

int ckpt_write_all(int fd, const void *buf, size_t len, const char *what)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hearth_err("writing %s: %s", what, strerror(errno));
		if (n == 0)
			return hearth_err("writing %s: no progress", what);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static bool simple_name(const char *name)
{
	return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 200;
}

/* A hidden name unique in this directory for as long as it exists. */
static void temp_name(char *buf, size_t size, const char *name)
{
	static atomic_uint seq;

	snprintf(buf, size, ".%s.tmp-%ld-%u", name, (long)getpid(), atomic_fetch_add(&seq, 1));
}

/* Give the anonymous file a temporary name (retrying on a stale leftover of that name). */
static int link_anon(int fd, int dfd, char *tmp, size_t size, const char *name)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int tries = 0; tries < 16; tries++) {
		temp_name(tmp, size, name);
		if (linkat(AT_FDCWD, proc, dfd, tmp, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	tmp[0] = 0;
	return -1;
}

static int open_named(int dfd, char *tmp, size_t size, const char *name)
{
	for (int tries = 0; tries < 16; tries++) {
		temp_name(tmp, size, name);
		int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

int ckpt_write_file_atomic(const char *dir, const char *name, ckpt_write_fn fn, void *opaque)
{
	char tmp[256] = "";
	int dfd, fd = -1, ret = -1;
	bool anon = false;

	if (!simple_name(name))
		return hearth_err("checkpoint file name '%s' is not a plain file name", name);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hearth_err("checkpoint directory '%s': %s", dir, strerror(errno));

	if (!ckpt_atomic_no_tmpfile) {
		fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
		anon = fd >= 0;
		/* filesystems without O_TMPFILE say so in one of these ways */
		if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
			hearth_err("creating a file in '%s': %s", dir, strerror(errno));
			goto out;
		}
	}
	if (fd < 0) {
		fd = open_named(dfd, tmp, sizeof(tmp), name);
		if (fd < 0) {
			tmp[0] = 0;
			hearth_err("creating a temporary file in '%s': %s", dir, strerror(errno));
			goto out;
		}
	}

	if (fn(fd, opaque) != 0) {
		hearth_err_prefix("writing '%s/%s'", dir, name);
		goto out;
	}
	if (fsync(fd) != 0) {
		hearth_err("flushing '%s/%s': %s", dir, name, strerror(errno));
		goto out;
	}
	if (anon && link_anon(fd, dfd, tmp, sizeof(tmp), name) != 0) {
		hearth_err("naming the new '%s/%s': %s", dir, name, strerror(errno));
		goto out;
	}
	if (renameat(dfd, tmp, dfd, name) != 0) {
		hearth_err("renaming the new '%s/%s' into place: %s", dir, name, strerror(errno));
		goto out;
	}
	tmp[0] = 0;
	if (fsync(dfd) != 0) {
		hearth_err("flushing directory '%s': %s", dir, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (tmp[0])
		unlinkat(dfd, tmp, 0);
	if (fd >= 0)
		close(fd);
	close(dfd);
	return ret;
}
