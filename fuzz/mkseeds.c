/* Writes seed inputs for fuzz-statefile into DIR: real state files from the writer (every
 * field type, optional fields and contexts, an empty file), each with both mode bytes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_cpu.h"
#include "snapshot/store.h"

static int seq;

static void emit(const char *out, const char *tmp)
{
	char path[512];
	struct stat st;
	uint8_t *buf;
	FILE *f;

	snprintf(path, sizeof(path), "%s/state", tmp);
	f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &st) || !(buf = malloc((size_t)st.st_size + 1)) ||
	    fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		fprintf(stderr, "mkseeds: reading %s failed\n", path);
		exit(1);
	}
	fclose(f);
	unlink(path);
	for (uint8_t mode = 0; mode < 2; mode++) {
		snprintf(path, sizeof(path), "%s/seed-%02d", out, seq++);
		f = fopen(path, "wb");
		if (!f || fwrite(&mode, 1, 1, f) != 1 ||
		    fwrite(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size || fclose(f)) {
			fprintf(stderr, "mkseeds: writing %s failed\n", path);
			exit(1);
		}
	}
	free(buf);
}

#define OK(x)                                                                                      \
	do {                                                                                       \
		if ((x) != 0) {                                                                    \
			fprintf(stderr, "mkseeds: %s\n", hearth_err_msg());                        \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

int main(int argc, char **argv)
{
	struct hearth_ckpt_writer *w;
	struct hearth_ckpt *ck;
	struct ckpt_cpu cpu;
	char tmp[] = "/tmp/hearth-seeds-XXXXXX";
	const uint32_t a32[3] = {1, 2, 3};
	const uint64_t a64[2] = {4, 5};

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	if (!mkdtemp(tmp))
		return 1;
	fuzz_cpu(&cpu);

	OK(hearth_ckpt_writer_new(tmp, &w));
	ckpt_writer_set_cpu(w, &cpu);
	OK(hearth_ckpt_writer_finish(w));
	hearth_ckpt_writer_free(w);
	emit(argv[1], tmp);

	OK(hearth_ckpt_writer_new(tmp, &w));
	ckpt_writer_set_cpu(w, &cpu);
	OK(hearth_ckpt_open_ctx(w, "vm", 1, 0, &ck));
	OK(hearth_ckpt_put_u8(ck, "a", 1));
	OK(hearth_ckpt_put_u16(ck, "b", 2));
	OK(hearth_ckpt_put_u32(ck, "c", 3));
	OK(hearth_ckpt_put_u64(ck, "d", 4));
	OK(hearth_ckpt_put_bool(ck, "e", true));
	OK(hearth_ckpt_put_bytes(ck, "f", "bytes", 5));
	OK(hearth_ckpt_put_str(ck, "g", "text"));
	OK(hearth_ckpt_put_u32_array(ck, "h", a32, 3));
	OK(hearth_ckpt_put_u64_array(ck, "i", a64, 2));
	OK(hearth_ckpt_put_u32_opt(ck, "j", 5));
	OK(hearth_ckpt_close_ctx(ck));
	OK(hearth_ckpt_open_ctx(w, "devices/com1", 1, 0, &ck));
	OK(hearth_ckpt_put_str(ck, "_class", "uart8250"));
	OK(hearth_ckpt_put_u8(ck, "lcr", 3));
	OK(hearth_ckpt_close_ctx(ck));
	OK(hearth_ckpt_open_ctx(w, "stats", 2, HEARTH_CKPT_CTX_OPTIONAL, &ck));
	OK(hearth_ckpt_put_u64_opt(ck, "exits", 99));
	OK(hearth_ckpt_close_ctx(ck));
	OK(hearth_ckpt_writer_finish(w));
	hearth_ckpt_writer_free(w);
	emit(argv[1], tmp);

	OK(hearth_ckpt_writer_new(tmp, &w));
	ckpt_writer_set_cpu(w, &cpu);
	for (int i = 0; i < 8; i++) {
		char name[32];
		snprintf(name, sizeof(name), "vcpu/%d", i);
		OK(hearth_ckpt_open_ctx(w, name, (uint32_t)i, 0, &ck));
		OK(hearth_ckpt_put_u64(ck, "rip", (uint64_t)i * 0x1000));
		OK(hearth_ckpt_close_ctx(ck));
	}
	OK(hearth_ckpt_writer_finish(w));
	hearth_ckpt_writer_free(w);
	emit(argv[1], tmp);

	rmdir(tmp);
	printf("mkseeds: %d seeds in %s\n", seq, argv[1]);
	return 0;
}
