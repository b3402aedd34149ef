/* Intel MultiProcessor Specification 1.4 tables: the floating pointer structure and the
 * configuration table, written into the BIOS area (0xF0000) so that a guest scanning
 * 0xF0000-0xFFFFF finds its CPUs, the IOAPIC and how ISA interrupts reach it.
 *
 * ISA IRQ -> IOAPIC pin (the VM layer's GSI routing must match):
 *   IRQ 0 (PIT) -> pin 2;  IRQ 1, 3..15 -> pin n;  IRQ 2 (PIC cascade) has no entry.
 * KVM's default routing sends GSI 0 to IOAPIC pin 0, so the VM layer installs its own
 * (KVM_SET_GSI_ROUTING): mptable_isa_irq_pin() gives the pin for each ISA IRQ. */
#pragma once

#include <stdint.h>

struct hearth_vm;

#define MPTABLE_FLOAT_ADDR 0xF0000u  /* floating pointer: 16 bytes, 16-byte aligned */
#define MPTABLE_CONFIG_ADDR 0xF0010u /* configuration table right after it */
#define MPTABLE_AREA_END 0x100000u

#define MPTABLE_SPEC_REV 4
#define MPTABLE_LAPIC_ADDR 0xFEE00000u
#define MPTABLE_LAPIC_VERSION 0x14 /* what KVM's local APIC reports */
#define MPTABLE_IOAPIC_ADDR 0xFEC00000u
#define MPTABLE_IOAPIC_VERSION 0x11
#define MPTABLE_IOAPIC_PINS 24

/* ncpus 1..254: APIC ids 0..ncpus-1, the IOAPIC takes id ncpus, and 0xFF means "all local
 * APICs" in local interrupt entries. */
#define MPTABLE_MAX_CPUS 254

#define MPTABLE_MAX_BUSES 16
#define MPTABLE_MAX_IRQS 256

/* Entry types, in the order the table must list them. */
enum {
	MP_ENTRY_PROCESSOR = 0,
	MP_ENTRY_BUS = 1,
	MP_ENTRY_IOAPIC = 2,
	MP_ENTRY_IO_INTERRUPT = 3,
	MP_ENTRY_LOCAL_INTERRUPT = 4,
};

/* Interrupt types of I/O and local interrupt entries. */
enum {
	MP_INT = 0,
	MP_NMI = 1,
	MP_SMI = 2,
	MP_EXTINT = 3,
};

/* Interrupt entry flags: polarity in bits 0-1, trigger mode in bits 2-3; 0 = as the bus says
 * (ISA: edge, active high). PCI interrupts are level triggered, active low. */
#define MP_IRQ_CONFORMS 0x0
#define MP_IRQ_ACTIVE_HIGH 0x1
#define MP_IRQ_ACTIVE_LOW 0x3
#define MP_IRQ_EDGE 0x4
#define MP_IRQ_LEVEL 0xC
#define MP_IRQ_PCI (MP_IRQ_ACTIVE_LOW | MP_IRQ_LEVEL)

/* PCI bus n must be MP bus n (Linux matches interrupt entries by bus id == PCI bus number),
 * so the ISA bus comes after PCI bus 0. */
#define MPTABLE_ISA_BUS 1

struct mptable_irq {
	uint8_t type; /* MP_INT, MP_NMI, ... */
	uint16_t flags;
	uint8_t bus, bus_irq; /* PCI: bus_irq = device << 2 | (pin - 1), INTA = 0 */
	uint8_t pin;	      /* IOAPIC input */
};

/* A table under construction: mptable_init() gives the CPUs, the ISA bus and its interrupts,
 * the IOAPIC and the local interrupts; add PCI buses and their interrupts before writing. */
struct mptable {
	unsigned ncpus;
	uint32_t cpu_signature, cpu_features; /* CPUID leaf 1 EAX and EDX, may be 0 */
	struct {
		uint8_t id;
		char type[7]; /* 6 characters, space padded: "ISA   ", "PCI   " */
	} bus[MPTABLE_MAX_BUSES];
	unsigned nbus;
	struct mptable_irq irq[MPTABLE_MAX_IRQS];
	unsigned nirq;
};

/* The IOAPIC pin of an ISA IRQ, or -1 when it has none (IRQ 2, or irq > 15). */
int mptable_isa_irq_pin(unsigned irq);

/* 0 or -1 with a message when ncpus is 0 or above MPTABLE_MAX_CPUS. */
int mptable_init(struct mptable *t, unsigned ncpus, uint32_t cpu_signature, uint32_t cpu_features);
/* type is up to 6 characters ("PCI"); ids are unique. 0 or -1 with a message. */
int mptable_add_bus(struct mptable *t, uint8_t id, const char *type);
/* An I/O interrupt entry to the IOAPIC; bus must have been added, pin < 24. */
int mptable_add_irq(struct mptable *t, const struct mptable_irq *irq);

/* Bytes the configuration table will take. */
uint32_t mptable_config_size(const struct mptable *t);
/* Write the floating pointer and the configuration table into guest RAM at
 * MPTABLE_FLOAT_ADDR. 0 or -1 with a message (no RAM there, table too large). */
int mptable_write(struct hearth_vm *vm, const struct mptable *t);

/* The usual machine: mptable_init() with no CPU signature or feature flags (guests read CPUID
 * themselves), then mptable_write(). Use the builder to give them or to add PCI buses. */
int mptable_build(struct hearth_vm *vm, unsigned ncpus);
