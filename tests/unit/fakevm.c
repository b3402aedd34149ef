#include "fakevm.h"

#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

static void fake_irq(struct hearth_vm *vm, unsigned gsi, int level)
{
	struct fakevm *f = fakevm_of(vm);

	if (gsi >= 32)
		return;
	if (level && !f->irq_level[gsi])
		f->irq_raises[gsi]++;
	f->irq_level[gsi] = level;
}

static void fake_stop(struct hearth_vm *vm, int status)
{
	struct fakevm *f = fakevm_of(vm);

	f->stop_requested++;
	f->stop_status = status;
}

static int fake_msi_route(struct hearth_vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	struct fakevm *f = fakevm_of(vm);
	int i = gsi - FAKEVM_MSI_GSI_BASE;

	if (f->fail_msi_route)
		return hearth_err("fake: MSI routing refused");
	if (gsi < 0)
		for (i = 0; i < FAKEVM_MSI_ROUTES && f->msi_route[i].used; i++)
			;
	if (i < 0 || i >= FAKEVM_MSI_ROUTES || (gsi >= 0 && !f->msi_route[i].used))
		return hearth_err("fake: bad or no free MSI GSI (%d)", gsi);
	f->msi_route[i].used = true;
	f->msi_route[i].msg = (struct fakevm_msi){addr, data};
	f->route_calls++;
	return FAKEVM_MSI_GSI_BASE + i;
}

static void fake_msi_unroute(struct hearth_vm *vm, int gsi)
{
	struct fakevm *f = fakevm_of(vm);
	int i = gsi - FAKEVM_MSI_GSI_BASE;

	if (i >= 0 && i < FAKEVM_MSI_ROUTES)
		f->msi_route[i].used = false;
}

static int fake_irqfd(struct hearth_vm *vm, int fd, unsigned gsi, bool assign)
{
	struct fakevm *f = fakevm_of(vm);

	for (unsigned i = 0; i < f->nirqfd; i++) {
		if (f->irqfd[i].fd != fd)
			continue;
		if (assign)
			return hearth_err("fake: irqfd %d is bound already", fd);
		f->irqfd[i] = f->irqfd[--f->nirqfd];
		return 0;
	}
	if (!assign)
		return hearth_err("fake: irqfd %d is not bound", fd);
	if (f->nirqfd == FAKEVM_IRQFDS)
		return hearth_err("fake: too many irqfds");
	f->irqfd[f->nirqfd].fd = fd;
	f->irqfd[f->nirqfd++].gsi = gsi;
	return 0;
}

static void log_msi(struct fakevm *f, uint64_t addr, uint32_t data)
{
	if (f->nmsi < FAKEVM_MSI_LOG)
		f->msi[f->nmsi++] = (struct fakevm_msi){addr, data};
}

static int fake_signal_msi(struct hearth_vm *vm, uint64_t addr, uint32_t data)
{
	log_msi(fakevm_of(vm), addr, data);
	return 0;
}

static int fake_ioeventfd(struct hearth_vm *vm, bool pio, uint64_t addr, unsigned len,
			  bool datamatch, uint64_t data, int fd, bool assign)
{
	struct fakevm *f = fakevm_of(vm);
	struct fakevm_ioeventfd e = {pio, datamatch, addr, datamatch ? data : 0, len, fd};

	for (unsigned i = 0; i < f->niofd; i++) {
		struct fakevm_ioeventfd *o = &f->iofd[i];
		if (o->pio != pio || o->addr != addr || o->len != len || o->fd != fd ||
		    o->datamatch != datamatch || o->data != e.data)
			continue;
		if (assign)
			return hearth_err("fake: ioeventfd exists");
		f->iofd[i] = f->iofd[--f->niofd];
		return 0;
	}
	if (!assign)
		return hearth_err("fake: no such ioeventfd");
	if (f->fail_ioeventfd)
		return hearth_err("fake: ioeventfd refused");
	if (f->niofd == FAKEVM_IOEVENTFDS)
		return hearth_err("fake: too many ioeventfds");
	f->iofd[f->niofd++] = e;
	return 0;
}

unsigned fakevm_msi_poll(struct fakevm *f)
{
	for (unsigned i = 0; i < f->nirqfd; i++) {
		uint64_t n;
		int r = f->irqfd[i].gsi - FAKEVM_MSI_GSI_BASE;
		if (read(f->irqfd[i].fd, &n, sizeof(n)) != sizeof(n))
			continue;
		for (uint64_t k = 0; k < n && r >= 0 && r < FAKEVM_MSI_ROUTES; k++)
			log_msi(f, f->msi_route[r].msg.addr, f->msi_route[r].msg.data);
	}
	return f->nmsi;
}

bool fakevm_ioeventfd_write(struct fakevm *f, bool pio, uint64_t addr, unsigned len, uint64_t value)
{
	for (unsigned i = 0; i < f->niofd; i++) {
		struct fakevm_ioeventfd *e = &f->iofd[i];
		uint64_t one = 1;
		if (e->pio != pio || e->addr != addr || (e->len && e->len != len) ||
		    (e->datamatch && e->data != value))
			continue;
		return write(e->fd, &one, sizeof(one)) == sizeof(one);
	}
	return false;
}

void fakevm_guest_write(struct fakevm *f, bool pio, uint64_t addr, uint64_t value, unsigned len)
{
	if (!fakevm_ioeventfd_write(f, pio, addr, len, value))
		iobus_write(pio ? &f->vm.pio : &f->vm.mmio, addr, value, len);
}

struct fakevm *fakevm_of(struct hearth_vm *vm)
{
	return (struct fakevm *)((char *)vm - offsetof(struct fakevm, vm));
}

struct fakevm *fakevm_new(uint64_t ram_size)
{
	struct fakevm *f = calloc(1, sizeof(*f));

	machine_init(&f->vm);
	f->ram = calloc(1, ram_size ? ram_size : 1);
	if (ram_size) {
		f->vm.ram[0] = (struct hearth_ram_slot){0, ram_size, f->ram};
		f->vm.nram = 1;
		f->vm.ram_size = ram_size;
	}
	f->vm.irq_line = fake_irq;
	f->vm.request_stop = fake_stop;
	f->vm.msi_route = fake_msi_route;
	f->vm.msi_unroute = fake_msi_unroute;
	f->vm.irqfd = fake_irqfd;
	f->vm.signal_msi = fake_signal_msi;
	f->vm.ioeventfd = fake_ioeventfd;
	f->vm.loop = loop_new();
	return f;
}

void fakevm_free(struct fakevm *f)
{
	machine_destroy(&f->vm);
	loop_free(f->vm.loop);
	free(f->ram);
	free(f);
}

struct hearth_dev *fakevm_dev(struct fakevm *f, const char *cls, const char *id, const char *json)
{
	struct json_object *obj = json ? json_tokener_parse(json) : NULL;
	struct hearth_cfg *cfg = cfg_new(obj, id);
	struct hearth_dev *d = hearth_dev_create(&f->vm, cls, id, cfg);

	cfg_free(cfg);
	json_object_put(obj);
	return d;
}
