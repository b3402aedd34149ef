/* Interrupt routing and eventfd plumbing: the VM's one GSI routing table (the PC's ISA
 * wiring plus a GSI per MSI message in use), irqfd, ioeventfd and KVM_SIGNAL_MSI.
 * KVM_SET_GSI_ROUTING replaces the whole table, so every change rebuilds it from here. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hearth/error.h"
#include "kvm/kvm.h"

#define ISA_GSIS 24 /* IOAPIC pins; GSIs from here on carry MSI messages */
#define DEFAULT_MAX_ROUTES 1024

struct msi_route {
	bool used;
	uint64_t addr;
	uint32_t data;
};

struct kvm_irq {
	int vmfd;
	unsigned max_routes;
	pthread_mutex_t lock;
	struct msi_route *msi; /* GSI ISA_GSIS + i */
	unsigned nmsi;
};

/* ISA IRQ n reaches PIC input n and IOAPIC pin n, except the PIT's IRQ 0, which is wired
 * to pin 2 as on PCs (and as the MP table says); GSI 2, the PIC cascade, goes nowhere.
 * GSIs 16..23 reach IOAPIC pins 16..23 (PCI INTx). */
static unsigned isa_routes(struct kvm_irq_routing_entry *e)
{
	unsigned n = 0;

	for (unsigned gsi = 0; gsi < ISA_GSIS; gsi++) {
		if (gsi == 2)
			continue;
		if (gsi < 16)
			e[n++] = (struct kvm_irq_routing_entry){
				.gsi = gsi,
				.type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = {gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
						      : KVM_IRQCHIP_PIC_SLAVE,
					      gsi % 8}};
		e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = {KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi}};
	}
	return n;
}

/* Install the table as it stands; called with the lock held. */
static int apply(struct kvm_irq *r)
{
	size_t cap = 2 * ISA_GSIS + r->nmsi;
	struct kvm_irq_routing *t = calloc(1, sizeof(*t) + cap * sizeof(t->entries[0]));
	unsigned n;
	int ret = 0;

	if (!t)
		return hearth_err("GSI routing: out of memory");
	n = isa_routes(t->entries);
	for (unsigned i = 0; i < r->nmsi; i++) {
		if (!r->msi[i].used)
			continue;
		t->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = ISA_GSIS + i,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = {.address_lo = (uint32_t)r->msi[i].addr,
				  .address_hi = (uint32_t)(r->msi[i].addr >> 32),
				  .data = r->msi[i].data}};
	}
	t->nr = n;
	if (ioctl(r->vmfd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = hearth_err("KVM_SET_GSI_ROUTING (%u routes): %s", n, strerror(errno));
	free(t);
	return ret;
}

struct kvm_irq *kvm_irq_new(int vmfd)
{
	struct kvm_irq *r = calloc(1, sizeof(*r));
	int max;

	if (!r) {
		hearth_err("GSI routing: out of memory");
		return NULL;
	}
	r->vmfd = vmfd;
	max = ioctl(vmfd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	r->max_routes = max > 2 * ISA_GSIS ? (unsigned)max : DEFAULT_MAX_ROUTES;
	pthread_mutex_init(&r->lock, NULL);
	if (apply(r) < 0) {
		kvm_irq_free(r);
		return NULL;
	}
	return r;
}

void kvm_irq_free(struct kvm_irq *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->msi);
	free(r);
}

int kvm_irq_msi_route(struct kvm_irq *r, int gsi, uint64_t addr, uint32_t data)
{
	struct msi_route old = {0};
	unsigned i;
	int ret;

	pthread_mutex_lock(&r->lock);
	if (gsi < 0) {
		for (i = 0; i < r->nmsi && r->msi[i].used; i++)
			;
		if (i == r->nmsi) {
			/* every IOAPIC entry and PIC entry stays: the MSI share is what is left */
			if (2 * ISA_GSIS + r->nmsi >= r->max_routes) {
				pthread_mutex_unlock(&r->lock);
				return hearth_err("no free GSI for an MSI route (%u in use)",
						  r->nmsi);
			}
			struct msi_route *m = realloc(r->msi, (r->nmsi + 1) * sizeof(*m));
			if (!m) {
				pthread_mutex_unlock(&r->lock);
				return hearth_err("GSI routing: out of memory");
			}
			r->msi = m;
			r->msi[r->nmsi++] = (struct msi_route){0};
		}
	} else {
		i = (unsigned)gsi - ISA_GSIS;
		if ((unsigned)gsi < ISA_GSIS || i >= r->nmsi || !r->msi[i].used) {
			pthread_mutex_unlock(&r->lock);
			return hearth_err("GSI %d is not an MSI route", gsi);
		}
	}
	old = r->msi[i];
	r->msi[i] = (struct msi_route){true, addr, data};
	ret = apply(r);
	if (ret < 0)
		r->msi[i] = old; /* KVM kept the previous table */
	pthread_mutex_unlock(&r->lock);
	return ret < 0 ? -1 : (int)(ISA_GSIS + i);
}

void kvm_irq_msi_unroute(struct kvm_irq *r, int gsi)
{
	unsigned i = (unsigned)gsi - ISA_GSIS;

	pthread_mutex_lock(&r->lock);
	if (gsi >= ISA_GSIS && i < r->nmsi && r->msi[i].used) {
		r->msi[i].used = false;
		apply(r);
	}
	pthread_mutex_unlock(&r->lock);
}

int kvm_irqfd(int vmfd, int fd, unsigned gsi, bool assign)
{
	struct kvm_irqfd x = {
		.fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};

	if (ioctl(vmfd, KVM_IRQFD, &x) < 0)
		return hearth_err("KVM_IRQFD %s GSI %u: %s", assign ? "to" : "off", gsi,
				  strerror(errno));
	return 0;
}

int kvm_ioeventfd(int vmfd, bool pio, uint64_t addr, unsigned len, bool datamatch, uint64_t data,
		  int fd, bool assign)
{
	struct kvm_ioeventfd x = {.datamatch = data,
				  .addr = addr,
				  .len = len,
				  .fd = fd,
				  .flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
					   (datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
					   (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN)};

	if (ioctl(vmfd, KVM_IOEVENTFD, &x) < 0)
		return hearth_err("KVM_IOEVENTFD %s %s %#llx+%u: %s", assign ? "on" : "off",
				  pio ? "port" : "mmio", (unsigned long long)addr, len,
				  strerror(errno));
	return 0;
}

int kvm_signal_msi(int vmfd, uint64_t addr, uint32_t data)
{
	struct kvm_msi m = {
		.address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};

	/* 0: the guest blocked it (masked in the LAPIC), still delivered as far as we care */
	if (ioctl(vmfd, KVM_SIGNAL_MSI, &m) < 0)
		return hearth_err("KVM_SIGNAL_MSI %#llx/%#x: %s", (unsigned long long)addr, data,
				  strerror(errno));
	return 0;
}
