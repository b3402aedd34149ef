#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hearth/error.h"

#define CPUID_MAX_ENTRIES 256

int kvm_open(struct kvm_sys *k)
{
	memset(k, 0, sizeof(*k));
	k->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->fd < 0)
		return hearth_err("cannot open /dev/kvm: %s", strerror(errno));
	int ver = ioctl(k->fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		hearth_err("/dev/kvm: API version %d, need %d", ver, KVM_API_VERSION);
		goto fail;
	}
	k->run_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->run_size <= 0) {
		hearth_err("/dev/kvm: KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto fail;
	}
	k->cpuid = calloc(1, sizeof(*k->cpuid) + CPUID_MAX_ENTRIES * sizeof(k->cpuid->entries[0]));
	if (!k->cpuid) {
		hearth_err("out of memory");
		goto fail;
	}
	k->cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, k->cpuid) < 0) {
		hearth_err("/dev/kvm: KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto fail;
	}
	k->user_msr = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) > 0 &&
		      ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) > 0;
	return 0;
fail:
	kvm_close(k);
	return -1;
}

void kvm_close(struct kvm_sys *k)
{
	if (k->fd > 0)
		close(k->fd);
	free(k->cpuid);
	memset(k, 0, sizeof(*k));
	k->fd = -1;
}

int kvm_vm_create(struct kvm_sys *k, int *vmfd)
{
	int fd = ioctl(k->fd, KVM_CREATE_VM, 0);

	if (fd < 0)
		return hearth_err("KVM_CREATE_VM: %s", strerror(errno));
	/* The TSS and identity-map pages KVM needs sit just below the firmware window. */
	if (ioctl(fd, KVM_SET_TSS_ADDR, 0xfeffd000ul) < 0) {
		hearth_err("KVM_SET_TSS_ADDR: %s", strerror(errno));
		goto fail;
	}
	uint64_t idmap = 0xfeffc000;
	if (ioctl(fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
		hearth_err("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
		goto fail;
	}
	if (k->user_msr) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_USER_SPACE_MSR,
					     .args[0] = KVM_MSR_EXIT_REASON_FILTER};
		if (ioctl(fd, KVM_ENABLE_CAP, &cap) < 0)
			k->user_msr = false;
	}
	*vmfd = fd;
	return 0;
fail:
	close(fd);
	return -1;
}

int kvm_vm_create_irqchip(int vmfd)
{
	if (ioctl(vmfd, KVM_CREATE_IRQCHIP, 0) < 0)
		return hearth_err("KVM_CREATE_IRQCHIP: %s", strerror(errno));
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vmfd, KVM_CREATE_PIT2, &pit) < 0)
		return hearth_err("KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}

int kvm_set_memory(int vmfd, uint32_t slot, uint64_t gpa, uint64_t size, void *hva, bool readonly)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = readonly ? KVM_MEM_READONLY : 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return hearth_err("KVM_SET_USER_MEMORY_REGION slot %u at %#llx+%#llx: %s", slot,
				  (unsigned long long)gpa, (unsigned long long)size,
				  strerror(errno));
	return 0;
}

int kvm_irq_line(int vmfd, unsigned gsi, int level)
{
	struct kvm_irq_level l = {.irq = gsi, .level = level};

	return ioctl(vmfd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

int kvm_set_msr_filter(struct kvm_sys *k, int vmfd, const uint32_t *msrs, unsigned n)
{
	/* one bit per range, cleared: the MSR is denied to KVM and so exits to us */
	static uint8_t deny;
	struct kvm_msr_filter f = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};

	if (n && !k->user_msr)
		return hearth_err("MSR %#x: this KVM cannot route MSR accesses to user space "
				  "(no KVM_CAP_X86_USER_SPACE_MSR/MSR_FILTER)",
				  msrs[0]);
	if (n > KVM_MSR_FILTER_MAX_RANGES)
		return hearth_err("MSR %#x: at most %d MSRs can be hooked", msrs[n - 1],
				  KVM_MSR_FILTER_MAX_RANGES);
	for (unsigned i = 0; i < n; i++)
		f.ranges[i] = (struct kvm_msr_filter_range){
			.flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
			.nmsrs = 1,
			.base = msrs[i],
			.bitmap = &deny,
		};
	if (!k->user_msr)
		return 0;
	if (ioctl(vmfd, KVM_X86_SET_MSR_FILTER, &f) < 0)
		return hearth_err("KVM_X86_SET_MSR_FILTER: %s", strerror(errno));
	return 0;
}

int kvm_tsc_khz(int vcpufd)
{
	int khz = ioctl(vcpufd, KVM_GET_TSC_KHZ, 0);
	return khz > 0 ? khz : 0;
}

int kvm_vcpu_create(struct kvm_sys *k, int vmfd, unsigned id, struct kvm_vcpu_fd *out)
{
	int fd = ioctl(vmfd, KVM_CREATE_VCPU, (unsigned long)id);

	if (fd < 0)
		return hearth_err("KVM_CREATE_VCPU %u: %s", id, strerror(errno));
	void *run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (run == MAP_FAILED) {
		close(fd);
		return hearth_err("vCPU %u: cannot map kvm_run: %s", id, strerror(errno));
	}
	*out = (struct kvm_vcpu_fd){fd, run, k->run_size};
	return 0;
}

void kvm_vcpu_destroy(struct kvm_vcpu_fd *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd > 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

int kvm_vcpu_set_cpuid(struct kvm_vcpu_fd *v, const struct kvm_cpuid2 *cpuid)
{
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0)
		return hearth_err("KVM_SET_CPUID2: %s", strerror(errno));
	return 0;
}

int kvm_vcpu_run(struct kvm_vcpu_fd *v)
{
	return ioctl(v->fd, KVM_RUN, 0) < 0 ? -errno : 0;
}

#define VCPU_IOCTL(name, req, type, qual)                                                          \
	int name(struct kvm_vcpu_fd *v, qual type *x)                                              \
	{                                                                                          \
		if (ioctl(v->fd, req, x) < 0)                                                      \
			return hearth_err(#req ": %s", strerror(errno));                           \
		return 0;                                                                          \
	}
VCPU_IOCTL(kvm_get_regs, KVM_GET_REGS, struct kvm_regs, )
VCPU_IOCTL(kvm_set_regs, KVM_SET_REGS, struct kvm_regs, const)
VCPU_IOCTL(kvm_get_sregs, KVM_GET_SREGS, struct kvm_sregs, )
VCPU_IOCTL(kvm_set_sregs, KVM_SET_SREGS, struct kvm_sregs, const)
