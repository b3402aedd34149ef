/* MSI-X table, pending bits and delivery for one function. Each vector that gets unmasked
 * gets a GSI routed to its message and an eventfd bound to that GSI (irqfd): an interrupt is
 * then one eventfd write from any thread. PVM makes irqfd on an MSI route as fast as
 * KVM_SIGNAL_MSI, while level lines through the IOAPIC have a long tail (shared/PVM.md).
 *
 * The guest owns the table contents: every address is checked to be an interrupt message
 * (0xFEExxxxx) before it reaches KVM, so a bad entry drops that vector's interrupts (logged
 * once) rather than failing the routing table for everyone. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hearth/le.h"
#include "bus/pci_internal.h"
#include "dev/machine.h"

#define ENTRY_SIZE 16
#define CTRL_MASKED 0x1
#define MSI_ADDR_PAGE 0xFEEull /* address >> 20 of every interrupt message */

struct msix_vector {
	uint8_t entry[ENTRY_SIZE]; /* addr lo, addr hi, data, vector control: little-endian */
	bool pending;
	bool route_stale; /* entry changed since the route was set */
	int gsi;	  /* -1 until routed */
	int efd;	  /* irqfd bound to gsi, -1 without */
};

struct msix {
	struct hearth_vm *vm;
	const char *who; /* device id, for log lines */
	unsigned nvec;
	bool enabled, masked;
	int bad_addr_logged, route_logged;
	struct msix_vector v[];
};

/* Writable bits of each entry byte: the address is dword aligned (bits 1:0 read 0), only bit
 * 0 of vector control exists. */
static const uint8_t entry_wmask[ENTRY_SIZE] = {0xFC, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
						0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00};

static uint64_t msg_addr(const struct msix_vector *v)
{
	return le_get32(v->entry) | (uint64_t)le_get32(v->entry + 4) << 32;
}

static uint32_t msg_data(const struct msix_vector *v)
{
	return le_get32(v->entry + 8);
}

static bool addr_ok(const struct msix_vector *v)
{
	return msg_addr(v) >> 20 == MSI_ADDR_PAGE;
}

static bool vec_masked(const struct msix_vector *v)
{
	return v->entry[12] & CTRL_MASKED;
}

static void vec_init(struct msix_vector *v)
{
	memset(v->entry, 0, sizeof(v->entry));
	v->entry[12] = CTRL_MASKED;
	v->pending = false;
	v->route_stale = true;
}

struct msix *msix_new(struct hearth_vm *vm, const char *who, unsigned nvec)
{
	struct msix *m = calloc(1, sizeof(*m) + nvec * sizeof(m->v[0]));

	if (!m)
		return NULL;
	m->vm = vm;
	m->who = who;
	m->nvec = nvec;
	for (unsigned i = 0; i < nvec; i++) {
		vec_init(&m->v[i]);
		m->v[i].gsi = m->v[i].efd = -1;
	}
	return m;
}

static void unroute(struct msix *m, struct msix_vector *v)
{
	struct hearth_vm *vm = m->vm;

	if (v->efd >= 0) {
		if (vm->irqfd && v->gsi >= 0)
			vm->irqfd(vm, v->efd, (unsigned)v->gsi, false);
		close(v->efd);
		v->efd = -1;
	}
	if (v->gsi >= 0 && vm->msi_unroute)
		vm->msi_unroute(vm, v->gsi);
	v->gsi = -1;
	v->route_stale = true;
}

void msix_free(struct msix *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < m->nvec; i++)
		unroute(m, &m->v[i]);
	free(m);
}

void msix_reset(struct msix *m)
{
	m->enabled = m->masked = false;
	/* routes and irqfds stay allocated: the next driver reuses them */
	for (unsigned i = 0; i < m->nvec; i++)
		vec_init(&m->v[i]);
}

/* Make the vector's GSI carry its current message; false when it cannot (then the message
 * goes out through signal_msi, if the platform has it). */
static bool commit_route(struct msix *m, struct msix_vector *v)
{
	struct hearth_vm *vm = m->vm;

	if (!v->route_stale && v->efd >= 0)
		return true;
	if (!vm->msi_route || !vm->irqfd || !addr_ok(v))
		return false;
	int gsi = vm->msi_route(vm, v->gsi, msg_addr(v), msg_data(v));
	if (gsi < 0) {
		hearth_log_once(m->route_logged, "device '%s': MSI-X route refused: %s", m->who,
				hearth_err_msg());
		return false;
	}
	v->gsi = gsi;
	if (v->efd < 0) {
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (efd < 0 || vm->irqfd(vm, efd, (unsigned)gsi, true) < 0) {
			hearth_log_once(m->route_logged, "device '%s': MSI-X irqfd: %s", m->who,
					efd < 0 ? strerror(errno) : hearth_err_msg());
			if (efd >= 0)
				close(efd);
			return false;
		}
		v->efd = efd;
	}
	v->route_stale = false;
	return true;
}

static void deliver(struct msix *m, struct msix_vector *v)
{
	uint64_t one = 1;

	if (!addr_ok(v)) {
		hearth_log_once(m->bad_addr_logged,
				"device '%s': MSI-X message address %#llx is not an interrupt "
				"address; dropped",
				m->who, (unsigned long long)msg_addr(v));
		return;
	}
	if (commit_route(m, v)) {
		if (write(v->efd, &one, sizeof(one)) == sizeof(one))
			return;
	}
	if (m->vm->signal_msi)
		m->vm->signal_msi(m->vm, msg_addr(v), msg_data(v));
}

/* A vector may have become deliverable: route it (on the vCPU that unmasks, not on the
 * path that notifies) and send what waited. */
static void unmasked(struct msix *m, struct msix_vector *v)
{
	if (!m->enabled || m->masked || vec_masked(v))
		return;
	commit_route(m, v);
	if (v->pending) {
		v->pending = false;
		deliver(m, v);
	}
}

static uint64_t size_mask(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

uint64_t msix_table_read(struct msix *m, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size && i < 8; i++) {
		uint64_t o = off + i;
		if (o / ENTRY_SIZE < m->nvec)
			v |= (uint64_t)m->v[o / ENTRY_SIZE].entry[o % ENTRY_SIZE] << (8 * i);
	}
	return v & size_mask(size);
}

void msix_table_write(struct msix *m, uint64_t off, uint64_t value, unsigned size)
{
	/* an 8-byte write may span two entries: remember each touched one */
	unsigned touched[2], ntouched = 0;

	for (unsigned i = 0; i < size && i < 8; i++) {
		uint64_t o = off + i;
		unsigned n = (unsigned)(o / ENTRY_SIZE), b = o % ENTRY_SIZE;
		if (n >= m->nvec)
			continue;
		struct msix_vector *v = &m->v[n];
		uint8_t byte = (uint8_t)(value >> (8 * i));
		uint8_t nb = (uint8_t)((v->entry[b] & ~entry_wmask[b]) | (byte & entry_wmask[b]));
		if (b < 12 && nb != v->entry[b])
			v->route_stale = true;
		v->entry[b] = nb;
		if (!ntouched || touched[ntouched - 1] != n)
			touched[ntouched++] = n;
	}
	for (unsigned i = 0; i < ntouched; i++)
		unmasked(m, &m->v[touched[i]]);
}

uint64_t msix_pba_read(struct msix *m, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size && i < 8; i++) {
		uint64_t bit = (off + i) * 8;
		uint8_t byte = 0;
		for (unsigned b = 0; b < 8; b++)
			if (bit + b < m->nvec && m->v[bit + b].pending)
				byte |= (uint8_t)(1u << b);
		v |= (uint64_t)byte << (8 * i);
	}
	return v & size_mask(size);
}

void msix_control(struct msix *m, bool enabled, bool masked)
{
	m->enabled = enabled;
	m->masked = masked;
	for (unsigned i = 0; i < m->nvec; i++)
		unmasked(m, &m->v[i]);
}

int msix_notify(struct msix *m, unsigned vector)
{
	if (!m || !m->enabled || vector >= m->nvec)
		return -1;
	struct msix_vector *v = &m->v[vector];
	if (m->masked || vec_masked(v))
		v->pending = true;
	else
		deliver(m, v);
	return 0;
}

void msix_get_table(const struct msix *m, uint8_t *table, uint8_t *pending)
{
	for (unsigned i = 0; i < m->nvec; i++) {
		memcpy(table + i * ENTRY_SIZE, m->v[i].entry, ENTRY_SIZE);
		pending[i] = m->v[i].pending;
	}
}

void msix_set_table(struct msix *m, const uint8_t *table, const uint8_t *pending)
{
	for (unsigned i = 0; i < m->nvec; i++) {
		struct msix_vector *v = &m->v[i];
		for (unsigned b = 0; b < ENTRY_SIZE; b++)
			v->entry[b] = (uint8_t)((v->entry[b] & ~entry_wmask[b]) |
						(table[i * ENTRY_SIZE + b] & entry_wmask[b]));
		v->pending = pending[i] != 0;
		v->route_stale = true;
	}
}

bool msix_is_enabled(const struct msix *m)
{
	return m && m->enabled;
}

unsigned msix_nvec(const struct msix *m)
{
	return m ? m->nvec : 0;
}
