/* The checkpoint store. A checkpoint is a directory holding a state file (named, versioned,
 * checksummed contexts of keyed, typed fields) and a guest-memory file; the layout is in
 * docs/checkpoint-format.md.
 *
 * Device authors only see `struct hearth_ckpt *`, one open context: their save op puts fields
 * into it and sets the context version, their load op accepts a version range and gets the
 * fields back. Every failure returns -1 with hearth_err naming the context and key.
 *
 * Compatibility rules (details in the format document):
 *   - A change an older reader cannot ignore bumps the context version; the loader accepts
 *     [min, max] and refuses anything else, naming both.
 *   - A field added later that an older reader may ignore is written with put_*_opt; readers
 *     that may meet files from before it existed read it with get_*_opt and a default.
 *   - A field written with plain put_* that the reader never asks for refuses the restore
 *     ("unknown required field"): the writer said it matters.
 *   - A context opened without HEARTH_CKPT_CTX_OPTIONAL that nobody consumes refuses the
 *     restore. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth/error.h"

struct hearth_ckpt; /* one context, open for writing or for reading */
struct hearth_ckpt_writer;
struct hearth_ckpt_reader;

/* Context names and keys: 1..255 characters of [A-Za-z0-9_./-]. Keys starting with '_' are
 * reserved for the framework (e.g. "_class" in device contexts). */
#define HEARTH_CKPT_NAME_MAX 255

/* Context flag: a reader may leave this context unconsumed (e.g. data only newer hearths use). */
#define HEARTH_CKPT_CTX_OPTIONAL 0x1u

/* ---- writing ----
 * Contexts accumulate in memory; finish writes the state file under a temporary name, fsyncs
 * it, renames it to `state` and fsyncs the directory, so a failed or killed save leaves the
 * previous state file as it was. A failed put poisons the writer: finish refuses, repeating
 * the first error. */

/* Create dir (mode 0700) if missing. */
int hearth_ckpt_writer_new(const char *dir, struct hearth_ckpt_writer **out);
/* Open a new context; names are unique within a checkpoint. The context belongs to the
 * writer (freed with it); close it before finish. */
int hearth_ckpt_open_ctx(struct hearth_ckpt_writer *w, const char *name, uint32_t version,
			 unsigned flags, struct hearth_ckpt **out);
int hearth_ckpt_writer_finish(struct hearth_ckpt_writer *w);
/* Discards everything not finished; the directory is left as it was. NULL is fine. */
void hearth_ckpt_writer_free(struct hearth_ckpt_writer *w);

/* The context version defaults to what open_ctx was given; a device's save op sets its own. */
int hearth_ckpt_set_version(struct hearth_ckpt *ck, uint32_t version);

/* Keys are unique within a context. The _opt forms mark the field optional: a reader that does
 * not know the key skips it. */
int hearth_ckpt_put_u8(struct hearth_ckpt *ck, const char *key, uint8_t v);
int hearth_ckpt_put_u16(struct hearth_ckpt *ck, const char *key, uint16_t v);
int hearth_ckpt_put_u32(struct hearth_ckpt *ck, const char *key, uint32_t v);
int hearth_ckpt_put_u64(struct hearth_ckpt *ck, const char *key, uint64_t v);
int hearth_ckpt_put_bool(struct hearth_ckpt *ck, const char *key, bool v);
int hearth_ckpt_put_bytes(struct hearth_ckpt *ck, const char *key, const void *p, size_t len);
/* Text without NUL bytes. */
int hearth_ckpt_put_str(struct hearth_ckpt *ck, const char *key, const char *s);
int hearth_ckpt_put_u32_array(struct hearth_ckpt *ck, const char *key, const uint32_t *v, size_t n);
int hearth_ckpt_put_u64_array(struct hearth_ckpt *ck, const char *key, const uint64_t *v, size_t n);

int hearth_ckpt_put_u8_opt(struct hearth_ckpt *ck, const char *key, uint8_t v);
int hearth_ckpt_put_u16_opt(struct hearth_ckpt *ck, const char *key, uint16_t v);
int hearth_ckpt_put_u32_opt(struct hearth_ckpt *ck, const char *key, uint32_t v);
int hearth_ckpt_put_u64_opt(struct hearth_ckpt *ck, const char *key, uint64_t v);
int hearth_ckpt_put_bool_opt(struct hearth_ckpt *ck, const char *key, bool v);
int hearth_ckpt_put_bytes_opt(struct hearth_ckpt *ck, const char *key, const void *p, size_t len);
int hearth_ckpt_put_str_opt(struct hearth_ckpt *ck, const char *key, const char *s);
int hearth_ckpt_put_u32_array_opt(struct hearth_ckpt *ck, const char *key, const uint32_t *v,
				  size_t n);
int hearth_ckpt_put_u64_array_opt(struct hearth_ckpt *ck, const char *key, const uint64_t *v,
				  size_t n);

/* ---- reading ----
 * reader_open reads `state` and validates all of it (magic, format version, header, host CPU
 * features, every context's length and CRC32C, every field's length and type) before returning
 * anything. */

int hearth_ckpt_reader_open(const char *dir, struct hearth_ckpt_reader **out);
/* The context called name, whose version must be within [min_version, max_version]. Marks it
 * consumed. The context belongs to the reader; field data stays valid until reader_free. */
int hearth_ckpt_find_ctx(struct hearth_ckpt_reader *r, const char *name, uint32_t min_version,
			 uint32_t max_version, struct hearth_ckpt **out);
/* Refuse when a context without HEARTH_CKPT_CTX_OPTIONAL was never found, or a consumed
 * context still holds a required field nobody read; names the first such context (and key). */
int hearth_ckpt_reader_check_all_consumed(struct hearth_ckpt_reader *r);
void hearth_ckpt_reader_free(struct hearth_ckpt_reader *r);

/* A device's load op gets its context unchecked and must accept its version range first. */
int hearth_ckpt_accept_versions(struct hearth_ckpt *ck, uint32_t min_version, uint32_t max_version);

/* Getters refuse a missing key, another type, or a bad length, naming context and key. The
 * _opt forms give def when the key is absent (written by an older hearth) but still refuse
 * one of the wrong type. */
int hearth_ckpt_get_u8(struct hearth_ckpt *ck, const char *key, uint8_t *v);
int hearth_ckpt_get_u16(struct hearth_ckpt *ck, const char *key, uint16_t *v);
int hearth_ckpt_get_u32(struct hearth_ckpt *ck, const char *key, uint32_t *v);
int hearth_ckpt_get_u64(struct hearth_ckpt *ck, const char *key, uint64_t *v);
int hearth_ckpt_get_bool(struct hearth_ckpt *ck, const char *key, bool *v);
int hearth_ckpt_get_u8_opt(struct hearth_ckpt *ck, const char *key, uint8_t def, uint8_t *v);
int hearth_ckpt_get_u16_opt(struct hearth_ckpt *ck, const char *key, uint16_t def, uint16_t *v);
int hearth_ckpt_get_u32_opt(struct hearth_ckpt *ck, const char *key, uint32_t def, uint32_t *v);
int hearth_ckpt_get_u64_opt(struct hearth_ckpt *ck, const char *key, uint64_t def, uint64_t *v);
int hearth_ckpt_get_bool_opt(struct hearth_ckpt *ck, const char *key, bool def, bool *v);

/* Bytes into buf of size bytes. len NULL: the field must be exactly size bytes; otherwise
 * at most size, and *len says how many. The _opt form leaves buf alone (and sets *len to 0)
 * when the key is absent. */
int hearth_ckpt_get_bytes(struct hearth_ckpt *ck, const char *key, void *buf, size_t size,
			  size_t *len);
int hearth_ckpt_get_bytes_opt(struct hearth_ckpt *ck, const char *key, void *buf, size_t size,
			      size_t *len);
/* Bytes without a copy: valid until the reader is freed. */
int hearth_ckpt_get_blob(struct hearth_ckpt *ck, const char *key, const void **data, size_t *len);
/* Text into buf (size includes the NUL); refused when it does not fit. */
int hearth_ckpt_get_str(struct hearth_ckpt *ck, const char *key, char *buf, size_t size);
int hearth_ckpt_get_str_opt(struct hearth_ckpt *ck, const char *key, const char *def, char *buf,
			    size_t size);
/* Arrays into v of max elements: n NULL means exactly max; otherwise at most max, count in *n. */
int hearth_ckpt_get_u32_array(struct hearth_ckpt *ck, const char *key, uint32_t *v, size_t max,
			      size_t *n);
int hearth_ckpt_get_u64_array(struct hearth_ckpt *ck, const char *key, uint64_t *v, size_t max,
			      size_t *n);

/* ---- either side ---- */
const char *hearth_ckpt_name(const struct hearth_ckpt *ck);
uint32_t hearth_ckpt_version(const struct hearth_ckpt *ck);
/* Reading: whether the file has the key (does not count as reading it). */
bool hearth_ckpt_has(const struct hearth_ckpt *ck, const char *key);
/* Writing: seal the context (required before finish). Reading: refuse when a required field
 * was left unread ("unknown required field", naming it). */
int hearth_ckpt_close_ctx(struct hearth_ckpt *ck);
