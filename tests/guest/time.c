/*
 * Time from the TSC, which ring 3 reads natively.  The frequency comes from
 * the hypervisor CPUID leaf 0x40000010 or leaf 0x15/0x16 when offered, else
 * from the LAPIC timer, which KVM's in-kernel LAPIC clocks at 1 GHz; 2 GHz is
 * the last resort.  Only reported durations and timeouts depend on it.
 */
#include "testos.h"

#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3E0

static uint64_t per_ms;
static const char *source = "assumed";

/* About 1 ms of LAPIC timer ticks (masked one-shot, divide by 1). */
static uint64_t lapic_calibrate(void)
{
	lapic_write(LAPIC_TIMER_DIV, 0xB);
	lapic_write(LAPIC_LVT_TIMER, (1u << 16) | 0xFE);
	lapic_write(LAPIC_TIMER_INIT, 0xFFFFFFFF);
	uint64_t t0 = rdtsc();
	uint32_t c0 = lapic_read(LAPIC_TIMER_CUR);
	while (rdtsc() - t0 < 2000000)
		cpu_relax();
	uint32_t c1 = lapic_read(LAPIC_TIMER_CUR);
	uint64_t t1 = rdtsc();
	lapic_write(LAPIC_TIMER_INIT, 0);
	if (c1 >= c0 || c0 - c1 < 100000)
		return 0;
	uint64_t khz = (t1 - t0) * 1000000 / (c0 - c1);
	return khz >= 500000 && khz <= 10000000 ? khz : 0;
}

static void tsc_calibrate(void)
{
	uint32_t r[4];
	per_ms = 2000000;
	source = "assumed";
	cpuid(1, 0, r);
	if (r[2] & (1u << 31)) {
		cpuid(0x40000000, 0, r);
		if (r[0] >= 0x40000010) {
			cpuid(0x40000010, 0, r);
			if (r[0]) {
				per_ms = r[0];
				source = "cpuid 0x40000010";
				return;
			}
		}
	}
	cpuid(0, 0, r);
	uint32_t max = r[0];
	if (max >= 0x15) {
		cpuid(0x15, 0, r);
		if (r[0] && r[1] && r[2]) {
			per_ms = (uint64_t)r[2] * r[1] / r[0] / 1000;
			source = "cpuid 0x15";
			return;
		}
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, r);
		if (r[0]) {
			per_ms = (uint64_t)r[0] * 1000;
			source = "cpuid 0x16";
			return;
		}
	}
	uint64_t khz = lapic_calibrate();
	if (khz) {
		per_ms = khz;
		source = "LAPIC timer";
	}
}

uint64_t tsc_per_ms(void)
{
	if (!per_ms)
		tsc_calibrate();
	return per_ms;
}

const char *tsc_freq_source(void)
{
	tsc_per_ms();
	return source;
}

uint64_t deadline_ms(uint64_t ms)
{
	return rdtsc() + ms * tsc_per_ms();
}

bool expired(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}

void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + us * tsc_per_ms() / 1000;
	while (!expired(end))
		cpu_relax();
}

uint64_t cycles_to_us(uint64_t cycles)
{
	return cycles * 1000 / tsc_per_ms();
}
