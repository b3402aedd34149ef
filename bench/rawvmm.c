/*
 * rawvmm: the smallest VMM that runs the test OS, as the floor hearth's exit dispatch is
 * measured against.  One vCPU, in-kernel irqchip, no devices: the exit loop is a switch on
 * the port number, nothing else.  It boots the same testos.elf as hearth through the
 * multiboot a.out-kludge fields, so both run byte-identical guest code.
 *
 * usage: bench-rawvmm KERNEL [CMDLINE] [RAM_MIB]
 * Guest COM1 output goes to stdout byte by byte (so start-up latency is comparable); a
 * summary of the exits goes to stderr.  Exit status as QEMU's isa-debug-exit: (V << 1) | 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MB_HEADER_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_AOUT_KLUDGE (1u << 16)
#define MB_INFO_GPA 0x1000u
#define MB_CMDLINE_GPA 0x2000u
#define MB_INFO_MEM (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)

#define PORT_TESTDEV_BENCH 0x704
#define PORT_COM1_THR 0x3F8
#define PORT_COM1_LSR 0x3FD
#define PORT_DEBUG_EXIT 0xF4
#define MMIO_TESTDEV_BENCH 0xD0000004u

static void die(const char *what)
{
	fprintf(stderr, "rawvmm: %s: %s\n", what, strerror(errno));
	exit(126);
}

static void fail(const char *what)
{
	fprintf(stderr, "rawvmm: %s\n", what);
	exit(126);
}

/* Multiboot v1 a.out kludge: the header says where the file's bytes go, no ELF parsing. */
static uint32_t load_kernel(const char *path, uint8_t *ram, uint64_t ram_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		die(path);
	uint8_t *img = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img == MAP_FAILED)
		die(path);
	close(fd);

	for (uint64_t off = 0; off + 32 <= 8192 && off + 32 <= (uint64_t)st.st_size; off += 4) {
		uint32_t h[8];
		memcpy(h, img + off, sizeof(h));
		if (h[0] != MB_HEADER_MAGIC || h[0] + h[1] + h[2] != 0)
			continue;
		if (!(h[1] & MB_AOUT_KLUDGE))
			fail("kernel has no a.out-kludge address fields");
		uint32_t header_addr = h[3], load_addr = h[4], load_end = h[5], bss_end = h[6];
		uint32_t entry = h[7];
		if (load_addr > header_addr || header_addr - load_addr > off)
			fail("bad multiboot load_addr");
		uint64_t file_off = off - (header_addr - load_addr);
		uint64_t len = load_end ? load_end - load_addr : st.st_size - file_off;
		uint64_t end = bss_end > load_addr + len ? bss_end : load_addr + len;
		if (file_off + len > (uint64_t)st.st_size || end > ram_size)
			fail("kernel image does not fit");
		memcpy(ram + load_addr, img + file_off, len);
		memset(ram + load_addr + len, 0, end - (load_addr + len));
		munmap(img, st.st_size);
		return entry;
	}
	fail("no multiboot header in the first 8 KiB");
	return 0;
}

static void setup_cpuid(int kvm, int vcpu)
{
	struct {
		struct kvm_cpuid2 c;
		struct kvm_cpuid_entry2 e[256];
	} cpuid = {.c.nent = 256};
	/* KVM refuses EFER.LME unless the guest's CPUID offers long mode. */
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	if (ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0)
		die("KVM_SET_CPUID2");
}

static void enter_multiboot(int vcpu, uint32_t entry)
{
	struct kvm_sregs s;
	if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
		die("KVM_GET_SREGS");
	struct kvm_segment code = {.limit = 0xFFFFFFFF,
				   .selector = 0x08,
				   .type = 0xB,
				   .present = 1,
				   .db = 1,
				   .s = 1,
				   .g = 1};
	struct kvm_segment data = code;
	data.selector = 0x10;
	data.type = 0x3;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.cr0 = 0x11; /* PE | ET, paging off */
	s.cr4 = 0;
	s.efer = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0)
		die("KVM_SET_SREGS");
	struct kvm_regs r = {.rip = entry, .rax = MB_BOOT_MAGIC, .rbx = MB_INFO_GPA, .rflags = 2};
	if (ioctl(vcpu, KVM_SET_REGS, &r) < 0)
		die("KVM_SET_REGS");
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: %s KERNEL [CMDLINE] [RAM_MIB]\n", argv[0]);
		return 2;
	}
	const char *cmdline = argc > 2 ? argv[2] : "";
	uint64_t ram_size = (argc > 3 ? strtoull(argv[3], NULL, 0) : 128) << 20;
	if (ram_size < (2u << 20) || ram_size > (3ull << 30) || strlen(cmdline) >= 4096)
		fail("RAM must be 2..3072 MiB and the command line under 4 KiB");

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");

	uint8_t *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram == MAP_FAILED)
		die("guest RAM");
	struct kvm_userspace_memory_region region = {
		.slot = 0, .memory_size = ram_size, .userspace_addr = (uintptr_t)ram};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	/* After the memory slot, not before: the first slot change once an irqchip exists
	 * waits ~6 ms on this host (an SRCU grace period), before it costs ~0.05 ms. */
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");

	uint32_t entry = load_kernel(argv[1], ram, ram_size);
	uint32_t info[8] = {MB_INFO_MEM | MB_INFO_CMDLINE, 640, (uint32_t)((ram_size >> 10) - 1024),
			    0, MB_CMDLINE_GPA};
	memcpy(ram + MB_INFO_GPA, info, sizeof(info));
	memcpy(ram + MB_CMDLINE_GPA, cmdline, strlen(cmdline) + 1);

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run_size < 0 || run == MAP_FAILED)
		die("kvm_run mapping");
	setup_cpuid(kvm, vcpu);
	enter_multiboot(vcpu, entry);

	uint64_t exits = 0, pio_bench = 0, mmio_bench = 0;
	int status = -1;
	while (status < 0) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN");
		}
		exits++;
		if (run->exit_reason == KVM_EXIT_IO) {
			uint8_t *data = (uint8_t *)run + run->io.data_offset;
			uint32_t bytes = run->io.size * run->io.count;
			if (run->io.direction == KVM_EXIT_IO_OUT) {
				switch (run->io.port) {
				case PORT_TESTDEV_BENCH:
					pio_bench++;
					break;
				case PORT_COM1_THR:
					if (write(1, data, bytes) < 0)
						die("stdout");
					break;
				case PORT_DEBUG_EXIT:
					status = ((data[0] << 1) | 1) & 0xFF;
					break;
				}
			} else {
				memset(data, run->io.port == PORT_COM1_LSR ? 0x60 : 0xFF, bytes);
			}
		} else if (run->exit_reason == KVM_EXIT_MMIO) {
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0xFF, sizeof(run->mmio.data));
			else if (run->mmio.phys_addr == MMIO_TESTDEV_BENCH)
				mmio_bench++;
		} else if (run->exit_reason != KVM_EXIT_HLT && run->exit_reason != KVM_EXIT_INTR) {
			fprintf(stderr, "rawvmm: unexpected exit reason %u (suberror %u)\n",
				run->exit_reason, run->internal.suberror);
			return 4;
		}
	}
	fprintf(stderr, "# rawvmm exits=%lu pio_0x704=%lu mmio_0xd0000004=%lu tsc_khz=%d\n",
		(unsigned long)exits, (unsigned long)pio_bench, (unsigned long)mmio_bench,
		ioctl(vcpu, KVM_GET_TSC_KHZ, 0));
	return status;
}
