#include "x86/firmware.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hearth/error.h"

int firmware_check_size(const char *what, uint64_t size)
{
	if (size == 0)
		return hearth_err("%s: firmware image is empty", what);
	if (size % FIRMWARE_SIZE_ALIGN)
		return hearth_err("%s: firmware size %llu is not a multiple of 4 KiB", what,
				  (unsigned long long)size);
	if (size > FIRMWARE_SIZE_MAX)
		return hearth_err("%s: firmware size %llu is larger than 16 MiB", what,
				  (unsigned long long)size);
	return 0;
}

uint64_t firmware_alias_size(uint64_t rom_size)
{
	return rom_size < FIRMWARE_ALIAS_MAX ? rom_size : FIRMWARE_ALIAS_MAX;
}

int firmware_layout(const uint8_t *rom, uint64_t size,
		    struct firmware_region out[FIRMWARE_MAX_REGIONS])
{
	uint64_t alias = firmware_alias_size(size);

	if (firmware_check_size("firmware", size))
		return -1;
	out[0] = (struct firmware_region){(1ULL << 32) - size, size, rom};
	/* the reset code and the legacy BIOS entry points live in the ROM's last bytes */
	out[1] = (struct firmware_region){FIRMWARE_ALIAS_END - alias, alias, rom + size - alias};
	return 2;
}

static void firmware_clear(struct firmware *fw)
{
	memset(fw, 0, sizeof(*fw));
}

int firmware_load(const char *path, struct firmware *fw)
{
	struct stat st;
	uint8_t *rom;
	uint64_t done = 0;
	int fd;

	firmware_clear(fw);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hearth_err("%s: cannot open firmware: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		hearth_err("%s: cannot stat firmware: %s", path, strerror(errno));
		goto fail_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		hearth_err("%s: firmware is not a regular file", path);
		goto fail_fd;
	}
	if (firmware_check_size(path, (uint64_t)st.st_size))
		goto fail_fd;
	/* anonymous pages: page aligned as KVM slots need, and made read-only once filled */
	rom = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (rom == MAP_FAILED) {
		hearth_err("%s: cannot allocate %lld bytes for the firmware: %s", path,
			   (long long)st.st_size, strerror(errno));
		goto fail_fd;
	}
	while (done < (uint64_t)st.st_size) {
		ssize_t r = pread(fd, rom + done, (size_t)st.st_size - done, (off_t)done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			hearth_err("%s: cannot read firmware: %s", path,
				   r < 0 ? strerror(errno) : "file shrank while reading");
			goto fail_map;
		}
		done += (uint64_t)r;
	}
	close(fd);
	if (mprotect(rom, (size_t)st.st_size, PROT_READ) < 0) {
		hearth_err("%s: cannot protect the firmware image: %s", path, strerror(errno));
		munmap(rom, (size_t)st.st_size);
		return -1;
	}
	fw->rom = rom;
	fw->size = (uint64_t)st.st_size;
	fw->nregions = (unsigned)firmware_layout(rom, fw->size, fw->region);
	return 0;

fail_map:
	munmap(rom, (size_t)st.st_size);
fail_fd:
	close(fd);
	return -1;
}

void firmware_free(struct firmware *fw)
{
	if (fw->rom)
		munmap((void *)fw->rom, fw->size);
	firmware_clear(fw);
}
