/* Internals of the checkpoint store (include/hearth/checkpoint.h): the context, writer and
 * reader structures and the entry points tests, the fuzzer and the VM layer use. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/checkpoint.h"
#include "snapshot/cpufeat.h"
#include "snapshot/format.h"

/* One field of a context being read; key and val point into the state file's bytes. */
struct ckpt_field {
	const char *key; /* key_len bytes, not NUL-terminated */
	const uint8_t *val;
	uint32_t len;
	uint8_t key_len, type, flags;
	bool used;
};

struct hearth_ckpt {
	char name[CKPT_NAME_MAX + 1];
	uint32_t version, flags;
	bool writing;

	/* writing: the encoded fields */
	struct hearth_ckpt_writer *w;
	uint8_t *buf;
	size_t len, cap;
	uint32_t nfields_put;
	bool open;

	/* reading */
	struct hearth_ckpt_reader *r;
	const uint8_t *payload;
	uint64_t payload_len;
	struct ckpt_field *fields; /* sorted by key */
	uint32_t nfields;
	bool taken, version_ok;
};

struct hearth_ckpt_writer {
	char *dir;
	struct ckpt_cpu cpu;
	struct hearth_ckpt **ctx; /* open order = file order */
	uint32_t nctx, cap;
	bool failed;
	char first_err[HEARTH_ERR_MAX];
};

struct hearth_ckpt_reader {
	uint8_t *owned; /* the file's bytes when read from disk */
	uint32_t format_version;
	struct ckpt_cpu cpu;
	struct hearth_ckpt *ctx; /* file order */
	struct hearth_ckpt **by_name;
	uint32_t nctx;
	struct ckpt_field *fields; /* every context's, one allocation */
};

/* Parse and validate a state file held in memory (buf must outlive the reader). host NULL:
 * compare against this machine's CPU. */
int statefile_parse(const uint8_t *buf, size_t len, const struct ckpt_cpu *host,
		    struct hearth_ckpt_reader **out);
/* Make a (possibly malformed) state file's file size and CRCs match its bytes, in place, as
 * far as its lengths can be followed: lets tests and the fuzzer reach the checks behind them. */
void statefile_fixup(uint8_t *buf, size_t len);

/* Checks shared by writer and parser. */
bool ckpt_name_valid(const char *s, size_t len);
const char *ckpt_type_name(unsigned type);
/* Index the fields of payload into fields[] (room for max), sorted by key. Refuses bad
 * lengths, unknown flags, malformed values and duplicate keys, naming context and key. */
int ckpt_fields_index(const char *ctx_name, const uint8_t *payload, uint64_t len,
		      struct ckpt_field *fields, uint32_t max, uint32_t *n);
/* Number of fields in payload without checking them (for sizing the index); UINT32_MAX when
 * over CKPT_MAX_FIELDS. */
uint32_t ckpt_fields_count(const uint8_t *payload, uint64_t len);

/* The writer records this CPU summary instead of the host's (tests, fuzz seeds). */
void ckpt_writer_set_cpu(struct hearth_ckpt_writer *w, const struct ckpt_cpu *cpu);

/* Contexts of a reader in file order, and taking one without a version check (the device
 * walker does the check through the device's load op). */
uint32_t ckpt_reader_count(const struct hearth_ckpt_reader *r);
struct hearth_ckpt *ckpt_reader_at(struct hearth_ckpt_reader *r, uint32_t i);
struct hearth_ckpt *ckpt_reader_take(struct hearth_ckpt_reader *r, const char *name);
/* hearth_ckpt_close_ctx of a context being read. */
int ckpt_reader_close(struct hearth_ckpt *ck);

/* Write dir/name the safe way: fn fills fd (a fresh file, mode 0600); then fsync, rename over
 * name, fsync dir. When fn (or anything) fails, dir/name is untouched and no temporary file is
 * left. fn returns 0, or -1 with hearth_err set. */
typedef int (*ckpt_write_fn)(int fd, void *opaque);
int ckpt_write_file_atomic(const char *dir, const char *name, ckpt_write_fn fn, void *opaque);
/* Tests: force the named-temporary-file path used where O_TMPFILE is unsupported. */
extern bool ckpt_atomic_no_tmpfile;
/* write(2) all of it, retrying short writes and EINTR; -1 with hearth_err naming what. */
int ckpt_write_all(int fd, const void *buf, size_t len, const char *what);
