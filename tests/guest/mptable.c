/*
 * Intel MP specification 1.4 tables: the only CPU and interrupt-routing
 * description hearth gives the guest (no ACPI yet).  Parsed once and cached.
 */
#include "testos.h"

static struct mp_info mp;
static bool parsed;

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

static uint32_t rd32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

/* A floating pointer is "_MP_" on a 16-byte boundary with a valid checksum. */
static const uint8_t *scan(uint32_t start, uint32_t len)
{
	for (uint32_t a = start; a + 16 <= start + len; a += 16) {
		const uint8_t *p = (const uint8_t *)(uintptr_t)a;
		if (memcmp(p, "_MP_", 4))
			continue;
		if (p[8] == 0 || sum8(p, 16u * p[8])) {
			if (!mp.error)
				mp.error = "floating pointer with bad checksum or length";
			continue;
		}
		return p;
	}
	return NULL;
}

static const uint8_t *find_fp(void)
{
	uint32_t ebda = (uint32_t)rd16(phys(0x40E)) << 4;
	uint32_t base_kib = rd16(phys(0x413));
	const uint8_t *p = NULL;
	if (ebda >= 0x80000 && ebda < 0xA0000)
		p = scan(ebda, 1024);
	else if (base_kib >= 512 && base_kib <= 640)
		p = scan(base_kib * 1024 - 1024, 1024);
	return p ? p : scan(0xF0000, 0x10000);
}

static void parse_entries(const uint8_t *e, const uint8_t *end, unsigned count)
{
	int isa_bus = -1;
	uint32_t pci_buses[8] = {0}; /* bitmap of bus ids typed "PCI" */
	/* Bus entries come first in a valid table, but do not rely on it. */
	for (const uint8_t *p = e; p < end && *p <= 4; p += *p ? 8 : 20) {
		if (*p == 1 && !memcmp(p + 2, "ISA", 3))
			isa_bus = p[1];
		if (*p == 1 && !memcmp(p + 2, "PCI", 3))
			pci_buses[p[1] / 32] |= 1u << (p[1] % 32);
	}
	for (unsigned i = 0; i < count && e < end; i++) {
		switch (e[0]) {
		case 0:
			if (e + 20 > end)
				return;
			if (mp.nr_cpus < MAX_CPUS) {
				mp.cpus[mp.nr_cpus].apic_id = e[1];
				mp.cpus[mp.nr_cpus].flags = e[3];
			}
			mp.nr_cpus++;
			mp.nr_enabled += e[3] & MP_CPU_EN;
			e += 20;
			continue;
		case 2:
			if (!mp.nr_ioapics++) {
				mp.ioapic_id = e[1];
				mp.ioapic_addr = rd32(e + 4);
			}
			break;
		case 3:
			if (e[1] == 0 && e[4] == isa_bus && e[5] < 16 &&
			    (e[6] == mp.ioapic_id || e[6] == 0xFF))
				mp.isa_irq_pin[e[5]] = e[7];
			if (e[1] == 0 && (pci_buses[e[4] / 32] & (1u << (e[4] % 32))) &&
			    (e[6] == mp.ioapic_id || e[6] == 0xFF) &&
			    mp.nr_pci_irqs < ARRAY_SIZE(mp.pci_irqs)) {
				struct mp_pci_irq *q = &mp.pci_irqs[mp.nr_pci_irqs++];
				q->bus = e[4];
				q->src = e[5];
				q->pin = e[7];
				q->flags = (uint16_t)(e[2] | e[3] << 8);
			}
			break;
		case 1:
		case 4:
			break;
		default:
			if (!mp.error)
				mp.error = "unknown entry type in base table";
			return;
		}
		e += 8;
	}
}

static void parse(void)
{
	for (int i = 0; i < 16; i++)
		mp.isa_irq_pin[i] = -1;
	const uint8_t *fp = find_fp();
	if (!fp) {
		if (!mp.error)
			mp.error = "no MP floating pointer";
		return;
	}
	mp.fp_addr = (uintptr_t)fp;
	if (fp[11]) {
		mp.error = "MP default configuration (no table) is not supported";
		return;
	}
	mp.cfg_addr = rd32(fp + 4);
	const uint8_t *c = (const uint8_t *)(uintptr_t)mp.cfg_addr;
	if (!mp.cfg_addr || memcmp(c, "PCMP", 4)) {
		mp.error = "configuration table missing or without PCMP signature";
		return;
	}
	mp.cfg_len = rd16(c + 4);
	if (mp.cfg_len < 44 || sum8(c, mp.cfg_len)) {
		mp.error = "configuration table checksum or length invalid";
		return;
	}
	uint16_t ext_len = rd16(c + 40);
	if (ext_len && (uint8_t)(sum8(c + mp.cfg_len, ext_len) + c[42]))
		mp.error = "extended table checksum invalid";
	memcpy(mp.oem, c + 8, 8);
	memcpy(mp.product, c + 16, 12);
	mp.lapic_addr = rd32(c + 36);
	mp.found = true;
	parse_entries(c + 44, c + mp.cfg_len, rd16(c + 34));
}

const struct mp_info *mp_get(void)
{
	if (!parsed) {
		parse();
		parsed = true;
	}
	return &mp;
}

int mp_isa_pin(unsigned irq)
{
	const struct mp_info *m = mp_get();
	return irq < 16 && m->isa_irq_pin[irq] >= 0 ? m->isa_irq_pin[irq] : (int)irq;
}

/* IOAPIC pin for INTx line intpin (1 = INTA) of device dev on PCI bus `bus`:
 * the MP source IRQ is dev << 2 | (intpin - 1).  -1 when the table has none. */
int mp_pci_pin(unsigned bus, unsigned dev, unsigned intpin, uint16_t *flags)
{
	const struct mp_info *m = mp_get();
	for (unsigned i = 0; i < m->nr_pci_irqs; i++) {
		const struct mp_pci_irq *q = &m->pci_irqs[i];
		if (q->bus == bus && q->src == ((dev << 2) | ((intpin - 1) & 3))) {
			if (flags)
				*flags = q->flags;
			return q->pin;
		}
	}
	return -1;
}
