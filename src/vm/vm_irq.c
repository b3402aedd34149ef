/* The platform side of device interrupts and notifications: the callbacks of struct
 * hearth_vm that MSI-X and virtio need, on top of kvm_irq.c. */
#include <stddef.h>

#include "vm/vm.h"

static struct vm *vm_of(struct hearth_vm *m)
{
	return (struct vm *)((char *)m - offsetof(struct vm, m));
}

static int msi_route(struct hearth_vm *m, int gsi, uint64_t addr, uint32_t data)
{
	return kvm_irq_msi_route(vm_of(m)->irq, gsi, addr, data);
}

static void msi_unroute(struct hearth_vm *m, int gsi)
{
	kvm_irq_msi_unroute(vm_of(m)->irq, gsi);
}

static int irqfd(struct hearth_vm *m, int fd, unsigned gsi, bool assign)
{
	return kvm_irqfd(vm_of(m)->vmfd, fd, gsi, assign);
}

static int signal_msi(struct hearth_vm *m, uint64_t addr, uint32_t data)
{
	return kvm_signal_msi(vm_of(m)->vmfd, addr, data);
}

static int ioeventfd(struct hearth_vm *m, bool pio, uint64_t addr, unsigned len, bool datamatch,
		     uint64_t data, int fd, bool assign)
{
	return kvm_ioeventfd(vm_of(m)->vmfd, pio, addr, len, datamatch, data, fd, assign);
}

int vm_irq_init(struct vm *vm)
{
	vm->irq = kvm_irq_new(vm->vmfd);
	if (!vm->irq)
		return -1;
	vm->m.msi_route = msi_route;
	vm->m.msi_unroute = msi_unroute;
	vm->m.irqfd = irqfd;
	vm->m.signal_msi = signal_msi;
	vm->m.ioeventfd = ioeventfd;
	return 0;
}

void vm_irq_free(struct vm *vm)
{
	kvm_irq_free(vm->irq);
	vm->irq = NULL;
}
