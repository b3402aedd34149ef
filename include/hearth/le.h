/* Little-endian fields in byte buffers (guest tables, config spaces, file formats), byte by
 * byte: neither alignment nor host byte order matters. */
#pragma once

#include <stdint.h>

static inline uint64_t le_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void le_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t le_get16(const uint8_t *p)
{
	return (uint16_t)le_get(p, 2);
}

static inline uint32_t le_get32(const uint8_t *p)
{
	return (uint32_t)le_get(p, 4);
}

static inline uint64_t le_get64(const uint8_t *p)
{
	return le_get(p, 8);
}

static inline void le_put16(uint8_t *p, uint16_t v)
{
	le_put(p, v, 2);
}

static inline void le_put32(uint8_t *p, uint32_t v)
{
	le_put(p, v, 4);
}

static inline void le_put64(uint8_t *p, uint64_t v)
{
	le_put(p, v, 8);
}
