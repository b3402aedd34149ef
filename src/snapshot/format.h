/* The state file's on-disk layout (docs/checkpoint-format.md), shared by the writer and the
 * parser so both enforce the same limits. Little-endian, byte-packed. */
#pragma once

#include <stdint.h>
#include <string.h>

#include "hearth/le.h"

#define CKPT_MAGIC "HEARTHCK"
#define CKPT_MAGIC_LEN 8
#define CKPT_FORMAT_VERSION 1 /* the newest this hearth writes and reads */
#define CKPT_FORMAT_MIN 1     /* the oldest it reads */
#define CKPT_STATE_FILE "state"
#define CKPT_MEMORY_FILE "memory"

/* Header, format version 1. magic, version and header_len keep their offsets in every
 * version, and the header's CRC32C is always its last four bytes. */
enum {
	HDR_MAGIC = 0,
	HDR_VERSION = 8,
	HDR_LEN = 12,
	HDR_FLAGS = 16,
	HDR_NCTX = 20,
	HDR_FILE_SIZE = 24,
	HDR_CPU_VENDOR = 32, /* 12 bytes */
	HDR_CPU_FAMILY = 44,
	HDR_CPU_MODEL = 48,
	HDR_CPU_STEPPING = 52,
	HDR_CPU_FEAT = 56, /* 5 x u32 */
	HDR_CRC = 76,
	HDR_V1_LEN = 80,
};
#define CKPT_HEADER_MAX 1024

/* Context record: name_len u8, name, version u32, flags u32, payload_len u64, crc u32,
 * payload. The CRC covers the record from name_len up to the crc field, then the payload. */
#define CTX_FIXED_LEN (1 + 4 + 4 + 8 + 4) /* + name */
#define CTX_FLAG_OPTIONAL 0x1u
#define CTX_FLAGS_KNOWN CTX_FLAG_OPTIONAL

/* Field: key_len u8, key, type u8, flags u8, value_len u32, value. */
#define FIELD_FIXED_LEN (1 + 1 + 1 + 4) /* + key */
#define FIELD_FLAG_OPTIONAL 0x1u
#define FIELD_FLAGS_KNOWN FIELD_FLAG_OPTIONAL

enum ckpt_type {
	CKPT_T_U8 = 1,
	CKPT_T_U16 = 2,
	CKPT_T_U32 = 3,
	CKPT_T_U64 = 4,
	CKPT_T_BOOL = 5,
	CKPT_T_BYTES = 6,
	CKPT_T_STR = 7,
	CKPT_T_U32_ARRAY = 8,
	CKPT_T_U64_ARRAY = 9,
};
#define CKPT_T_MAX CKPT_T_U64_ARRAY

/* Limits: a hostile file can make the loader allocate at most a small multiple of these. */
#define CKPT_NAME_MAX 255	     /* context names and keys */
#define CKPT_MAX_FILE (256ull << 20) /* the whole state file */
#define CKPT_MAX_CONTEXTS 16384u
#define CKPT_MAX_FIELDS 65536u		 /* per context */
#define CKPT_MAX_TOTAL_FIELDS (1u << 20) /* over the file */
