/* libFuzzer target: arbitrary bytes into the state file parser, then every context and field
 * read back through the typed getters (right and wrong types, small buffers).
 * Input: one mode byte, then the file. Mode bit 0: patch file size and CRCs first, so
 * mutations reach the checks behind the checksums. Bit 1: accept only context version 1. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_cpu.h"
#include "snapshot/store.h"

static struct ckpt_cpu host;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_cpu(&host);
	return 0;
}

static void read_field(struct hearth_ckpt *ck, const struct ckpt_field *f)
{
	char key[CKPT_NAME_MAX + 1], s[64];
	uint8_t u8, bytes[16];
	uint16_t u16;
	uint32_t u32, a32[8];
	uint64_t u64, a64[8];
	const void *blob;
	size_t n;
	bool b;

	memcpy(key, f->key, f->key_len);
	key[f->key_len] = 0;
	(void)hearth_ckpt_has(ck, key);
	switch (f->type) {
	case CKPT_T_U8:
		(void)hearth_ckpt_get_u8(ck, key, &u8);
		break;
	case CKPT_T_U16:
		(void)hearth_ckpt_get_u16_opt(ck, key, 1, &u16);
		break;
	case CKPT_T_U32:
		(void)hearth_ckpt_get_u32(ck, key, &u32);
		break;
	case CKPT_T_U64:
		(void)hearth_ckpt_get_u64_opt(ck, key, 2, &u64);
		break;
	case CKPT_T_BOOL:
		(void)hearth_ckpt_get_bool(ck, key, &b);
		break;
	case CKPT_T_BYTES:
		(void)hearth_ckpt_get_bytes(ck, key, bytes, sizeof(bytes), &n);
		(void)hearth_ckpt_get_bytes(ck, key, bytes, 4, NULL);
		if (hearth_ckpt_get_blob(ck, key, &blob, &n) == 0 && n)
			s[0] = ((const char *)blob)[n - 1];
		break;
	case CKPT_T_STR:
		(void)hearth_ckpt_get_str(ck, key, s, sizeof(s));
		(void)hearth_ckpt_get_str_opt(ck, key, "d", s, 2);
		break;
	case CKPT_T_U32_ARRAY:
		(void)hearth_ckpt_get_u32_array(ck, key, a32, 8, &n);
		(void)hearth_ckpt_get_u32_array(ck, key, a32, 2, NULL);
		break;
	case CKPT_T_U64_ARRAY:
		(void)hearth_ckpt_get_u64_array(ck, key, a64, 8, &n);
		break;
	default:
		break;
	}
	/* the wrong type is refused */
	(void)hearth_ckpt_get_u32(ck, key, &u32);
}

static void exercise(struct hearth_ckpt_reader *r, unsigned mode)
{
	struct hearth_ckpt *ck;
	uint8_t u8;

	for (uint32_t i = 0; i < ckpt_reader_count(r); i++) {
		struct hearth_ckpt *at = ckpt_reader_at(r, i);
		uint32_t max = (mode & 2) ? 1 : UINT32_MAX;
		if (hearth_ckpt_find_ctx(r, at->name, 0, max, &ck))
			continue;
		for (uint32_t j = 0; j < ck->nfields; j++)
			if (j % 3 != 2) /* leave some unread for the consumption checks */
				read_field(ck, &ck->fields[j]);
		(void)hearth_ckpt_close_ctx(ck);
	}
	if (hearth_ckpt_find_ctx(r, "devices/com1", 1, 1, &ck) == 0)
		(void)hearth_ckpt_get_u8(ck, "lcr", &u8);
	(void)hearth_ckpt_reader_check_all_consumed(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hearth_ckpt_reader *r;
	unsigned mode;
	uint8_t *buf;

	if (size < 1)
		return 0;
	mode = data[0];
	/* an exact-size copy: ASan sees any read past the end */
	buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (mode & 1)
		statefile_fixup(buf, size - 1);
	if (statefile_parse(buf, size - 1, &host, &r) == 0) {
		exercise(r, mode);
		hearth_ckpt_reader_free(r);
	} else if (!hearth_err_msg()[0]) {
		abort(); /* every refusal must say why */
	}
	free(buf);
	return 0;
}
