#include "hearth/error.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char msg[HEARTH_ERR_MAX];

int hearth_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return -1;
}

int hearth_err_prefix(const char *fmt, ...)
{
	char old[HEARTH_ERR_MAX];
	va_list ap;
	int n;

	memcpy(old, msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", old);
	return -1;
}

const char *hearth_err_msg(void)
{
	return msg[0] ? msg : "unknown error";
}

void hearth_err_clear(void)
{
	msg[0] = 0;
}

void hearth_log(const char *fmt, ...)
{
	char line[HEARTH_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one write so lines from several threads never interleave */
	fprintf(stderr, "hearth: %s\n", line);
}
