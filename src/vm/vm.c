/* VM lifecycle: guest RAM from a memfd (shareable with other processes and checkpoints),
 * KVM with in-kernel irqchip and PIT, devices from the configuration, vCPU threads and the
 * event loop; stop requests from any thread end up in vm_run's wait. */
#include "vm/vm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <poll.h>
#include <unistd.h>

#include "config/cfg.h"
#include "snapshot/vmsnap.h"
#include "vm/boot.h"
#include "vm/loop.h"

static struct vm *vm_of(struct hearth_vm *m)
{
	return (struct vm *)((char *)m - offsetof(struct vm, m));
}

void vm_stop(struct vm *vm, int status)
{
	bool expected = false;

	/* the first reason to stop wins; later ones (a vCPU seeing the kick) are ignored */
	if (!atomic_compare_exchange_strong(&vm->stopping, &expected, true))
		return;
	atomic_store(&vm->status, status);
	/* wake parked vCPUs so they see the stop */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	uint64_t one = 1;
	if (write(vm->stop_efd, &one, sizeof(one)) != sizeof(one))
		hearth_log("cannot signal the stop: %s", strerror(errno));
}

void vm_pause(struct vm *vm)
{
	atomic_store(&vm->pause_req, true);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < vm->alive && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

static void request_stop(struct hearth_vm *m, int status)
{
	vm_stop(vm_of(m), status);
}

static void irq_line(struct hearth_vm *m, unsigned gsi, int level)
{
	static int warned;
	int r = kvm_irq_line(vm_of(m)->vmfd, gsi, level);

	if (r < 0)
		hearth_log_once(warned, "KVM_IRQ_LINE gsi %u: %s", gsi, strerror(-r));
}

static int msrs_changed(struct hearth_vm *m)
{
	struct vm *vm = vm_of(m);
	uint32_t msrs[64];
	unsigned n = 0;

	pthread_mutex_lock(&m->hooks_lock);
	for (unsigned i = 0; i < m->msrs.n && n < 64; i++)
		msrs[n++] = m->msrs.v[i].msr;
	pthread_mutex_unlock(&m->hooks_lock);
	return kvm_set_msr_filter(&vm->kvm, vm->vmfd, msrs, n);
}

int vm_build_devices(struct hearth_vm *m, const struct vm_config *cfg)
{
	if (hearth_classes_init() < 0)
		return -1;
	for (size_t i = 0; i < json_object_array_length(cfg->devices); i++) {
		struct json_object *d = json_object_array_get_idx(cfg->devices, i), *cls, *id;
		char where[HEARTH_NAME_MAX + 32];

		json_object_object_get_ex(d, "class", &cls);
		json_object_object_get_ex(d, "id", &id);
		snprintf(where, sizeof(where), "device '%s'", json_object_get_string(id));
		struct hearth_cfg *c = cfg_new(d, where);
		cfg_mark_used(c, "class");
		cfg_mark_used(c, "id");
		struct hearth_dev *dev = hearth_dev_create(m, json_object_get_string(cls),
							   json_object_get_string(id), c);
		cfg_free(c);
		if (!dev)
			return -1;
	}
	return 0;
}

/* Low RAM up to the 3 GiB hole, the rest above 4 GiB: both from one memfd, or, restoring,
 * from the checkpoint's memory file mapped private so nothing is copied up front. */
static int setup_memory(struct vm *vm)
{
	uint64_t size = vm->cfg->memory;

	if (vm->mem_src_fd >= 0) {
		vm->ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
			       vm->mem_src_fd, 0);
		goto mapped;
	}
	vm->memfd = memfd_create("hearth-ram", MFD_CLOEXEC);
	if (vm->memfd < 0)
		return hearth_err("guest RAM: memfd_create: %s", strerror(errno));
	if (ftruncate(vm->memfd, (off_t)size) < 0)
		return hearth_err("guest RAM: cannot size %llu bytes: %s", (unsigned long long)size,
				  strerror(errno));
	vm->ram =
		mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, vm->memfd, 0);
mapped:
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		return hearth_err("guest RAM: mmap %llu bytes: %s", (unsigned long long)size,
				  strerror(errno));
	}
	madvise(vm->ram, size, MADV_HUGEPAGE);
	if (memmap_setup_vm(&vm->m, vm->ram, size, boot_rom_alias_size(vm)) < 0)
		return -1;
	for (unsigned i = 0; i < vm->m.nram; i++)
		if (kvm_set_memory(vm->vmfd, vm->nslots++, vm->m.ram[i].gpa, vm->m.ram[i].size,
				   vm->m.ram[i].hva, false) < 0)
			return -1;
	return boot_map_rom(vm);
}

static int create(struct vm *vm, const struct vm_config *cfg, int mem_fd)
{
	memset(vm, 0, sizeof(*vm));
	machine_init(&vm->m);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->cfg = cfg;
	vm->vmfd = vm->memfd = -1;
	vm->mem_src_fd = mem_fd;
	vm->kvm.fd = -1;
	vm->stop_efd = eventfd(0, EFD_CLOEXEC);
	vm->m.irq_line = irq_line;
	vm->m.request_stop = request_stop;
	vm->m.msrs_changed = msrs_changed;
	vm->m.loop = loop_new();
	if (vm->stop_efd < 0 || !vm->m.loop) {
		hearth_err("cannot create the VM's event loop: %s", strerror(errno));
		return EXIT_HOST;
	}
	if (memmap_check_size(cfg->memory) < 0 || boot_prepare(vm) < 0)
		return EXIT_CONFIG;
	/* RAM before the irqchip: see kvm_vm_create */
	if (kvm_open(&vm->kvm) < 0 || kvm_vm_create(&vm->kvm, &vm->vmfd) < 0 ||
	    setup_memory(vm) < 0 || kvm_vm_create_irqchip(vm->vmfd) < 0 || vm_irq_init(vm) < 0)
		return EXIT_HOST;
	if (vm_build_devices(&vm->m, cfg) < 0)
		return EXIT_CONFIG;
	vm->ncpus = cfg->cpus;
	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		hearth_err("out of memory");
		return EXIT_HOST;
	}
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vcpu_create(vm, &vm->vcpus[i], i) < 0)
			return EXIT_HOST;
	if (mem_fd >= 0)
		return 0; /* the checkpoint holds the vCPUs' state */
	return boot_setup(vm) < 0 ? EXIT_CONFIG : 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	return create(vm, cfg, -1);
}

int vm_create_restored(struct vm *vm, const struct vm_config *cfg, int mem_fd)
{
	return create(vm, cfg, mem_fd);
}

/* Waits for a stop request or a terminating signal (blocked in every thread, read here);
 * SIGUSR2, when asked for, takes a snapshot and waits on. */
static int wait_for_stop(struct vm *vm, const sigset_t *sigs)
{
	int sfd = signalfd(-1, sigs, SFD_CLOEXEC);
	struct pollfd p[2] = {{vm->stop_efd, POLLIN, 0}, {sfd, POLLIN, 0}};

	for (;;) {
		p[1].revents = 0;
		while (poll(p, sfd >= 0 ? 2 : 1, -1) < 0 && errno == EINTR)
			;
		if (sfd < 0 || !(p[1].revents & POLLIN))
			break;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGUSR2) {
			vmsnap_on_signal(vm);
			continue;
		}
		hearth_log("stopping on signal %u", si.ssi_signo);
		vm_stop(vm, EXIT_SIGNAL_BASE + (int)si.ssi_signo);
		break;
	}
	if (sfd >= 0)
		close(sfd);
	return atomic_load(&vm->status);
}

int vm_run(struct vm *vm)
{
	sigset_t sigs, old;
	int status;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	if (vm->snap_sig_dir)
		sigaddset(&sigs, SIGUSR2);
	/* threads inherit the mask: only wait_for_stop sees these signals */
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	if (loop_start(vm->m.loop) < 0) {
		hearth_log("%s", hearth_err_msg());
		status = EXIT_HOST;
		goto out;
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		if (vcpu_start(&vm->vcpus[i]) < 0) {
			hearth_log("%s", hearth_err_msg());
			vm_stop(vm, EXIT_HOST);
			break;
		}
	}
	status = wait_for_stop(vm, &sigs);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_join(&vm->vcpus[i]);
	loop_stop(vm->m.loop);
out:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}

void vm_destroy(struct vm *vm)
{
	/* devices first: backends flush and restore the terminal while the loop still exists */
	machine_destroy(&vm->m);
	for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	loop_free(vm->m.loop);
	if (vm->ram)
		munmap(vm->ram, vm->cfg->memory);
	firmware_free(&vm->fw);
	vm_irq_free(vm);
	if (vm->memfd >= 0)
		close(vm->memfd);
	if (vm->mem_src_fd >= 0)
		close(vm->mem_src_fd);
	if (vm->vmfd >= 0)
		close(vm->vmfd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	kvm_close(&vm->kvm);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_cond_destroy(&vm->pause_cond);
}
