/* A VM without KVM for unit tests: the device framework with RAM in a heap buffer, IRQ
 * lines and stop requests recorded instead of delivered. */
#pragma once

#include <stdint.h>

#include "config/cfg.h"
#include "dev/machine.h"
#include "vm/loop.h"

#define FAKEVM_MSI_GSI_BASE 24
#define FAKEVM_MSI_ROUTES 64
#define FAKEVM_IRQFDS 64
#define FAKEVM_MSI_LOG 256
#define FAKEVM_IOEVENTFDS 64

struct fakevm_msi {
	uint64_t addr;
	uint32_t data;
};

struct fakevm_ioeventfd {
	bool pio, datamatch;
	uint64_t addr, data;
	unsigned len;
	int fd;
};

struct fakevm {
	struct hearth_vm vm;
	uint8_t *ram;
	int irq_level[32];  /* last level per GSI */
	int irq_raises[32]; /* 0->1 transitions per GSI */
	int stop_requested; /* number of stop requests */
	int stop_status;    /* last status requested */

	/* MSI: routes (GSI FAKEVM_MSI_GSI_BASE + i), irqfds bound to them, and every message
	 * delivered so far (through signal_msi, or an irqfd seen by fakevm_msi_poll). */
	struct {
		bool used;
		struct fakevm_msi msg;
	} msi_route[FAKEVM_MSI_ROUTES];
	unsigned route_calls; /* successful msi_route calls */
	struct {
		int fd;
		unsigned gsi;
	} irqfd[FAKEVM_IRQFDS];
	unsigned nirqfd;
	struct fakevm_msi msi[FAKEVM_MSI_LOG];
	unsigned nmsi;
	bool fail_msi_route, fail_ioeventfd; /* make the platform refuse */
	/* ioeventfds currently assigned */
	struct fakevm_ioeventfd iofd[FAKEVM_IOEVENTFDS];
	unsigned niofd;
};

/* RAM of ram_size bytes at guest physical 0; an event loop that is not started (drive it
 * with loop_run_once). */
struct fakevm *fakevm_new(uint64_t ram_size);
void fakevm_free(struct fakevm *f);
struct fakevm *fakevm_of(struct hearth_vm *vm);

/* Read every irqfd, logging one message per signal into f->msi; returns f->nmsi. */
unsigned fakevm_msi_poll(struct fakevm *f);
/* What KVM does with a guest write that an ioeventfd matches: signal the eventfd. True when
 * one matched (the write then never reaches the buses). */
bool fakevm_ioeventfd_write(struct fakevm *f, bool pio, uint64_t addr, unsigned len,
			    uint64_t value);
/* A guest write as KVM would route it: an ioeventfd when one matches, else the bus. */
void fakevm_guest_write(struct fakevm *f, bool pio, uint64_t addr, uint64_t value, unsigned len);

/* Build a device from a JSON text such as "{\"port\": 1016}"; NULL json = no keys. */
struct hearth_dev *fakevm_dev(struct fakevm *f, const char *cls, const char *id, const char *json);
