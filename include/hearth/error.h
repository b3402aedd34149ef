/* Error reporting for device authors: one message per thread, set where the failure is
 * understood (naming the device, key or resource) and printed once by whoever gives up. */
#pragma once

#include <stdarg.h>

#define HEARTH_ERR_MAX 512

/* Record a message; returns -1 so callers can `return hearth_err("...")`. */
int hearth_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefix the current message, e.g. with the file or device that was being built. */
int hearth_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *hearth_err_msg(void);
void hearth_err_clear(void);

/* Runtime diagnostics (stderr), never for guest-triggerable floods: see hearth_log_once. */
void hearth_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define hearth_log_once(flag, ...)                                                                 \
	do {                                                                                       \
		if (!(flag)) {                                                                     \
			(flag) = 1;                                                                \
			hearth_log(__VA_ARGS__);                                                   \
		}                                                                                  \
	} while (0)
