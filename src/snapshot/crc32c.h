/* CRC32C (Castagnoli), the checksum of checkpoint state files. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Chainable: crc32c(crc32c(0, a, n), b, m) == crc32c(0, a ++ b, n + m); crc32c(0, "123456789",
 * 9) == 0xe3069283. Uses the SSE4.2 instruction when the CPU has it. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The table version, always available (tests compare the two). */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
