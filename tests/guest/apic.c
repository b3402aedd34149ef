/*
 * Local APIC and IOAPIC through their MMIO windows, which the page tables map
 * user-accessible and uncached; ring 3 programs them directly.
 */
#include "testos.h"

#define LAPIC_ID 0x20
#define LAPIC_TPR 0x80
#define LAPIC_SVR 0xF0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_BUSY (1u << 12)

uint32_t lapic_read(uint32_t reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}

void lapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(LAPIC_BASE + reg, v);
}

uint8_t lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

/* Software-enable with spurious vector 0xFF (counted like any IRQ). */
void lapic_enable(void)
{
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, 0x1FF);
}

bool lapic_ipi(uint8_t apic_id, uint32_t icr_low)
{
	lapic_write(LAPIC_ICR_HI, (uint32_t)apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr_low);
	uint64_t end = deadline_ms(10);
	while (lapic_read(LAPIC_ICR_LO) & ICR_BUSY)
		if (expired(end))
			return false;
	return true;
}

uint32_t ioapic_read(uint32_t base, uint32_t reg)
{
	mmio_write32(base, reg);
	return mmio_read32(base + 0x10);
}

void ioapic_write(uint32_t base, uint32_t reg, uint32_t v)
{
	mmio_write32(base, reg);
	mmio_write32(base + 0x10, v);
}

/* Fixed delivery, physical destination, edge, active high. */
void ioapic_route(uint32_t base, unsigned pin, uint8_t vector, uint8_t dest, bool masked)
{
	ioapic_write(base, 0x10 + 2 * pin, (1u << 16)); /* mask while changing */
	ioapic_write(base, 0x11 + 2 * pin, (uint32_t)dest << 24);
	ioapic_write(base, 0x10 + 2 * pin, vector | (masked ? 1u << 16 : 0));
}
