/* char-stdio internals the VM layer and the tests need. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Put the terminal mode and the stdin/stdout file flags back the way char-stdio found
 * them. Async-signal-safe (tcsetattr and fcntl only): call it from fatal-signal handlers
 * and exit paths. Does nothing when nothing was changed. */
void char_stdio_restore_all(void);

/* The Ctrl-A escape on a terminal: Ctrl-A x quits, Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A
 * followed by anything else sends both bytes. */
#define CHAR_ESCAPE 0x01

struct char_escape {
	bool armed; /* the last byte seen was an escape */
};

/* Filter n input bytes into out (room for n + 1 bytes). Returns the bytes to pass on;
 * sets *quit and stops at the quit command (what follows it is dropped). */
size_t char_escape_filter(struct char_escape *e, const uint8_t *in, size_t n, uint8_t *out,
			  bool *quit);
