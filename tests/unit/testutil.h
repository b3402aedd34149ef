/* Helpers several unit tests share: the last error's text, device locks, scratch directories,
 * whole files and Unix sockets.  Each fails the calling test (cmocka) where a step that must work
 * does not. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether hearth_err_msg() contains needle; when not, prints both, so a failed
 * assert_true(msg_has(...)) says what the message was. */
bool msg_has(const char *needle);

struct hearth_dev;

/* Whether d's lock is held: called in a device callback, whether the framework took it. */
bool dev_locked(struct hearth_dev *d);

/* Removes dir and everything below it, without following links; 0, or -1 if anything stayed. */
int rm_tree(const char *dir);

/* The whole file, in a malloc'd buffer one byte longer than *len. */
uint8_t *read_whole_file(const char *path, size_t *len);

/* A stream socket connected to the Unix socket at path. */
int unix_connect(const char *path);
