/* Seeds for fuzz-virtqueue: well-formed virtio-blk traffic (each request type, a scattered
 * chain, an indirect table, EVENT_IDX), written as one file each into the directory given. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define QSIZE 16
#define DESC 0x0000
#define AVAIL 0x0100
#define USED 0x0200
#define HDR 0x1000
#define STATUS 0x1800
#define DATA 0x2000
#define ITAB 0x6000

struct seed {
	uint8_t hdr[10];
	uint16_t ram_len;
	uint8_t ram[0x8000];
	uint8_t patches[64];
};

static void desc(uint8_t *ram, uint32_t table, unsigned i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	uint8_t *p = ram + table + 16 * i;
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void put16(uint8_t *ram, uint32_t at, uint16_t v)
{
	memcpy(ram + at, &v, 2);
}

static void req_hdr(uint8_t *ram, uint32_t at, uint32_t type, uint64_t sector)
{
	memcpy(ram + at, &type, 4);
	memcpy(ram + at + 8, &sector, 8);
}

/* Request n at descriptors 3n..3n+2: header, data (len, writable or not), status. */
static void req(struct seed *s, unsigned n, uint32_t type, uint64_t sector, uint32_t len, int wr)
{
	uint16_t i = (uint16_t)(3 * n);
	req_hdr(s->ram, HDR + 16 * n, type, sector);
	desc(s->ram, DESC, i, HDR + 16 * n, 16, 1, i + 1);
	desc(s->ram, DESC, i + 1, DATA + 0x800 * n, len, 1 | (wr ? 2 : 0), i + 2);
	desc(s->ram, DESC, i + 2, STATUS + n, 1, 2, 0);
	put16(s->ram, AVAIL + 4 + 2 * n, i);
}

static void write_seed(const char *dir, const char *name, struct seed *s, unsigned nreq,
		       uint8_t features)
{
	uint16_t v;
	char path[512];

	/* qsize_log2 4 -> 16, features, kicks 3, backend mode: mix inline/held */
	s->hdr[0] = 4;
	s->hdr[1] = features;
	s->hdr[2] = 3;
	s->hdr[3] = 0x98;
	v = DESC / 4;
	memcpy(s->hdr + 4, &v, 2);
	v = AVAIL / 4;
	memcpy(s->hdr + 6, &v, 2);
	v = USED / 4;
	memcpy(s->hdr + 8, &v, 2);
	put16(s->ram, AVAIL + 2, (uint16_t)nreq);
	s->ram_len = sizeof(s->ram);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		return;
	}
	fwrite(s, 1, sizeof(*s), f);
	fclose(f);
}

int main(int argc, char **argv)
{
	static struct seed s;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	memset(&s, 0, sizeof(s));
	req(&s, 0, 1, 0, 512, 0); /* OUT */
	req(&s, 1, 0, 0, 512, 1); /* IN */
	req(&s, 2, 4, 0, 0, 0);	  /* FLUSH (zero-length data descriptor) */
	req(&s, 3, 8, 0, 20, 1);  /* GET_ID */
	req(&s, 4, 11, 0, 16, 0); /* DISCARD */
	write_seed(argv[1], "basic", &s, 5, 0x1f);

	memset(&s, 0, sizeof(s));
	req(&s, 0, 13, 0, 16, 0); /* WRITE_ZEROES, unmap */
	uint32_t unmap = 1, nsec = 2;
	memcpy(s.ram + DATA + 8, &nsec, 4);
	memcpy(s.ram + DATA + 12, &unmap, 4);
	req(&s, 1, 1, 4, 1024, 0);
	write_seed(argv[1], "zeroes", &s, 2, 0x1a);

	/* one request through an indirect table */
	memset(&s, 0, sizeof(s));
	req_hdr(s.ram, HDR, 0, 2);
	desc(s.ram, ITAB, 0, HDR, 16, 1, 1);
	desc(s.ram, ITAB, 1, DATA, 1024, 3, 2);
	desc(s.ram, ITAB, 2, STATUS, 1, 2, 0);
	desc(s.ram, DESC, 0, ITAB, 48, 4, 0);
	put16(s.ram, AVAIL + 4, 0);
	write_seed(argv[1], "indirect", &s, 1, 0x03);
	return 0;
}
