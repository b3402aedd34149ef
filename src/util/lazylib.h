/* Libraries only some runs need, opened on first use: libmicrohttpd (with GnuTLS and a
 * dozen more) and libcurl (with OpenSSL, Kerberos, LDAP, ...) linked into the binary cost
 * every VM 5 ms of start-up and 6.7 MiB of RSS before its first instruction (measured with
 * bench-startup; docs/performance.md), though only --api and `hearth snapshot` use them. */
#pragma once

#include <stddef.h>

/* Open soname and fill slots[i] with names[i]; 0, or -1 with hearth_err naming the library
 * or symbol. Idempotent per handle. */
int lazylib_open(const char *soname, const char *const names[], void **slots, size_t n);

/* One struct member per function, typed from the library's own header, named like it. */
#define LAZYLIB_MEMBER(f) __typeof__(&f) f;
#define LAZYLIB_NAME(f) #f,
