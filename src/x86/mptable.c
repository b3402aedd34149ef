#include "hearth/le.h"
#include "x86/mptable.h"

#include <stdlib.h>
#include <string.h>

#include "hearth/error.h"
#include "hearth/guestmem.h"

#define FLOAT_SIZE 16
#define HEADER_SIZE 44
#define PROCESSOR_SIZE 20
#define SMALL_ENTRY_SIZE 8 /* bus, IOAPIC, interrupt entries */
#define LOCAL_IRQS 2	   /* ExtINT -> LINT0, NMI -> LINT1 */

#define CPU_ENABLED 0x1
#define CPU_BSP 0x2
#define IOAPIC_ENABLED 0x1
#define ALL_LAPICS 0xFF

/* the byte that makes the whole structure sum to zero */
static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

int mptable_isa_irq_pin(unsigned irq)
{
	if (irq == 0)
		return 2; /* the PIT, wired to pin 2 on PCs */
	if (irq == 2 || irq > 15)
		return -1;
	return (int)irq;
}

int mptable_init(struct mptable *t, unsigned ncpus, uint32_t cpu_signature, uint32_t cpu_features)
{
	memset(t, 0, sizeof(*t));
	if (ncpus == 0 || ncpus > MPTABLE_MAX_CPUS)
		return hearth_err("MP table: %u CPUs requested, 1 to %d are supported (APIC ids "
				  "0..n-1 and the IOAPIC id n must stay below 255)",
				  ncpus, MPTABLE_MAX_CPUS);
	t->ncpus = ncpus;
	t->cpu_signature = cpu_signature;
	t->cpu_features = cpu_features;
	if (mptable_add_bus(t, MPTABLE_ISA_BUS, "ISA"))
		return -1;
	for (unsigned irq = 0; irq < 16; irq++) {
		int pin = mptable_isa_irq_pin(irq);
		struct mptable_irq e = {MP_INT, MP_IRQ_CONFORMS, MPTABLE_ISA_BUS, (uint8_t)irq,
					(uint8_t)pin};

		if (pin >= 0 && mptable_add_irq(t, &e))
			return -1;
	}
	return 0;
}

int mptable_add_bus(struct mptable *t, uint8_t id, const char *type)
{
	size_t len = strlen(type);

	if (len == 0 || len > 6)
		return hearth_err("MP table: bus type \"%s\" must be 1 to 6 characters", type);
	for (unsigned i = 0; i < t->nbus; i++)
		if (t->bus[i].id == id)
			return hearth_err("MP table: bus id %u is already used", id);
	if (t->nbus == MPTABLE_MAX_BUSES)
		return hearth_err("MP table: more than %d buses", MPTABLE_MAX_BUSES);
	t->bus[t->nbus].id = id;
	memset(t->bus[t->nbus].type, ' ', 6);
	memcpy(t->bus[t->nbus].type, type, len);
	t->bus[t->nbus].type[6] = 0;
	t->nbus++;
	return 0;
}

int mptable_add_irq(struct mptable *t, const struct mptable_irq *irq)
{
	unsigned i;

	for (i = 0; i < t->nbus && t->bus[i].id != irq->bus; i++)
		;
	if (i == t->nbus)
		return hearth_err("MP table: interrupt entry names bus %u, which was not added",
				  irq->bus);
	if (irq->pin >= MPTABLE_IOAPIC_PINS)
		return hearth_err("MP table: IOAPIC pin %u does not exist (0..%d)", irq->pin,
				  MPTABLE_IOAPIC_PINS - 1);
	if (irq->type > MP_EXTINT || irq->flags & ~0xFu)
		return hearth_err("MP table: bad interrupt type %u or flags %#x", irq->type,
				  irq->flags);
	if (t->nirq == MPTABLE_MAX_IRQS)
		return hearth_err("MP table: more than %d interrupt entries", MPTABLE_MAX_IRQS);
	t->irq[t->nirq++] = *irq;
	return 0;
}

static unsigned entry_count(const struct mptable *t)
{
	return t->ncpus + t->nbus + 1 + t->nirq + LOCAL_IRQS;
}

uint32_t mptable_config_size(const struct mptable *t)
{
	return HEADER_SIZE + t->ncpus * PROCESSOR_SIZE +
	       (t->nbus + 1 + t->nirq + LOCAL_IRQS) * SMALL_ENTRY_SIZE;
}

static uint8_t *put_small(uint8_t *p, uint8_t type, uint8_t a, uint16_t flags, uint8_t bus,
			  uint8_t bus_irq, uint8_t dst, uint8_t pin)
{
	p[0] = type;
	p[1] = a;
	le_put16(p + 2, flags);
	p[4] = bus;
	p[5] = bus_irq;
	p[6] = dst;
	p[7] = pin;
	return p + SMALL_ENTRY_SIZE;
}

int mptable_write(struct hearth_vm *vm, const struct mptable *t)
{
	uint32_t size = mptable_config_size(t);
	uint8_t fp[FLOAT_SIZE] = {'_', 'M', 'P', '_'};
	uint8_t ioapic_id = (uint8_t)t->ncpus;
	uint8_t *cfg, *p;
	int ret;

	if (t->ncpus == 0 || t->ncpus > MPTABLE_MAX_CPUS)
		return hearth_err("MP table: not initialised");
	if (size > MPTABLE_AREA_END - MPTABLE_CONFIG_ADDR)
		return hearth_err("MP table: %u bytes do not fit below 1 MiB", size);
	if (!hearth_gpa_ptr(vm, MPTABLE_FLOAT_ADDR,
			    MPTABLE_CONFIG_ADDR - MPTABLE_FLOAT_ADDR + size))
		return hearth_err("MP table: no guest RAM at %#x..%#x", MPTABLE_FLOAT_ADDR,
				  MPTABLE_CONFIG_ADDR + size);
	cfg = calloc(1, size);
	if (!cfg)
		return hearth_err("MP table: out of memory");

	memcpy(cfg, "PCMP", 4);
	le_put16(cfg + 4, (uint16_t)size);
	cfg[6] = MPTABLE_SPEC_REV;
	memcpy(cfg + 8, "HEARTH  ", 8);
	memcpy(cfg + 16, "hearth      ", 12);
	le_put16(cfg + 34, (uint16_t)entry_count(t));
	le_put32(cfg + 36, MPTABLE_LAPIC_ADDR);
	p = cfg + HEADER_SIZE;
	for (unsigned i = 0; i < t->ncpus; i++) {
		p[0] = MP_ENTRY_PROCESSOR;
		p[1] = (uint8_t)i;
		p[2] = MPTABLE_LAPIC_VERSION;
		p[3] = CPU_ENABLED | (i == 0 ? CPU_BSP : 0);
		le_put32(p + 4, t->cpu_signature);
		le_put32(p + 8, t->cpu_features);
		p += PROCESSOR_SIZE;
	}
	for (unsigned i = 0; i < t->nbus; i++) {
		p[0] = MP_ENTRY_BUS;
		p[1] = t->bus[i].id;
		memcpy(p + 2, t->bus[i].type, 6);
		p += SMALL_ENTRY_SIZE;
	}
	p[0] = MP_ENTRY_IOAPIC;
	p[1] = ioapic_id;
	p[2] = MPTABLE_IOAPIC_VERSION;
	p[3] = IOAPIC_ENABLED;
	le_put32(p + 4, MPTABLE_IOAPIC_ADDR);
	p += SMALL_ENTRY_SIZE;
	for (unsigned i = 0; i < t->nirq; i++) {
		const struct mptable_irq *e = &t->irq[i];

		p = put_small(p, MP_ENTRY_IO_INTERRUPT, e->type, e->flags, e->bus, e->bus_irq,
			      ioapic_id, e->pin);
	}
	/* virtual wire mode: the PIC reaches every CPU's LINT0, NMI comes in on LINT1 */
	p = put_small(p, MP_ENTRY_LOCAL_INTERRUPT, MP_EXTINT, MP_IRQ_CONFORMS, MPTABLE_ISA_BUS, 0,
		      ALL_LAPICS, 0);
	put_small(p, MP_ENTRY_LOCAL_INTERRUPT, MP_NMI, MP_IRQ_CONFORMS, MPTABLE_ISA_BUS, 0,
		  ALL_LAPICS, 1);
	cfg[7] = checksum(cfg, size);

	le_put32(fp + 4, MPTABLE_CONFIG_ADDR);
	fp[8] = FLOAT_SIZE / 16;
	fp[9] = MPTABLE_SPEC_REV;
	/* feature bytes stay 0: a configuration table is present, no IMCR (virtual wire) */
	fp[10] = checksum(fp, FLOAT_SIZE);

	ret = hearth_gpa_write(vm, MPTABLE_FLOAT_ADDR, fp, FLOAT_SIZE) ||
	      hearth_gpa_write(vm, MPTABLE_CONFIG_ADDR, cfg, size);
	free(cfg);
	return ret ? hearth_err("MP table: cannot write guest RAM") : 0;
}

int mptable_build(struct hearth_vm *vm, unsigned ncpus)
{
	struct mptable *t = malloc(sizeof(*t));
	int ret;

	if (!t)
		return hearth_err("MP table: out of memory");
	ret = mptable_init(t, ncpus, 0, 0);
	if (!ret)
		ret = mptable_write(vm, t);
	free(t);
	return ret;
}
