/*
 * Ring-3 side of the test OS.  Everything here runs natively under PVM; only
 * port and MMIO accesses leave the guest (~25 us each), so drivers keep the
 * number of accesses low rather than the number of instructions.
 */
#ifndef TESTOS_H
#define TESTOS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NORETURN __attribute__((noreturn))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- port, MMIO, CPU ---- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint8_t mmio_read8(uintptr_t a)
{
	return *(volatile uint8_t *)a;
}

static inline uint16_t mmio_read16(uintptr_t a)
{
	return *(volatile uint16_t *)a;
}

static inline uint32_t mmio_read32(uintptr_t a)
{
	return *(volatile uint32_t *)a;
}

static inline void mmio_write8(uintptr_t a, uint8_t v)
{
	*(volatile uint8_t *)a = v;
}

static inline void mmio_write16(uintptr_t a, uint16_t v)
{
	*(volatile uint16_t *)a = v;
}

static inline void mmio_write32(uintptr_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}

/* Physical memory is identity mapped; this hides constant low addresses
 * (BDA, EBDA) from GCC's null-pointer arithmetic warnings. */
static inline const void *phys(uintptr_t addr)
{
	__asm__("" : "+r"(addr));
	return (const void *)addr;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

/* ---- symbols from boot.S / tables.S ---- */

extern volatile uint64_t irq_count[256];
extern volatile uint64_t fault_info[8];
extern uint64_t gdt[];
extern uint8_t tss_array[];
extern uint8_t iobitmap[];
extern volatile uint64_t ap_boot[4];
extern const uint8_t ap_tramp[], ap_tramp_end[];
extern const uint8_t image_start[], image_end[];

/* ---- lib.c ---- */

void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
bool parse_u64(const char *s, const char *end, uint64_t *out);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) PRINTF(3, 4);

/* ---- time.c: TSC-based delays and durations ---- */

uint64_t tsc_per_ms(void);
const char *tsc_freq_source(void);
uint64_t deadline_ms(uint64_t ms);
bool expired(uint64_t deadline);
void delay_us(uint64_t us);
uint64_t cycles_to_us(uint64_t cycles);

/* ---- serial.c: COM1 console ---- */

#define COM1 0x3F8
void serial_early_init(void);
void serial_init(void);
void serial_write(const char *s, size_t n);
void kprintf(const char *fmt, ...) PRINTF(1, 2);

/* ---- main.c; user_main and fault_report are entered from boot.S ---- */

NORETURN void user_main(uint32_t mbi_addr, uint32_t magic);
NORETURN void fault_report(void);
NORETURN void debug_exit(uint8_t code);
NORETURN void i8042_reset(void);
extern uint32_t boot_magic;

/* ---- cmdline.c ---- */

void cmdline_init(const char *s);
const char *cmdline_raw(void);
const char *cmdline_get(const char *key); /* "key=v" -> "v", bare "key" -> "" */
bool cmdline_u64(const char *key, uint64_t *out);
bool cmdline_list_has(const char *key, const char *item);

/* ---- multiboot.c ---- */

struct mb_module {
	uint32_t start, end, string, reserved;
};

struct mb_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name;
};

#define MB_INFO_MEM (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODS (1u << 3)
#define MB_INFO_MMAP (1u << 6)
#define MB_INFO_LOADER (1u << 9)

extern const struct mb_info *mbi;
const char *mb_cmdline(void);
const char *mb_loader_name(void);
typedef void (*mb_mmap_fn)(uint64_t addr, uint64_t len, uint32_t type, void *arg);
int mb_mmap_walk(mb_mmap_fn fn, void *arg);
const char *mb_mmap_type(uint32_t type);
const struct mb_module *mb_module(uint32_t i);
bool mb_range_reserved(uint64_t start, uint64_t end);
bool on_hearth(void);

/* ---- tap.c ---- */

struct testcase {
	const char *name;
	void (*run)(void);
	bool named_only; /* needs devices a plain "test" run has no reason to add */
};

int tap_run(const char *list);
bool tap_check(bool cond, const char *fmt, ...) PRINTF(2, 3);
void tap_note(const char *fmt, ...) PRINTF(1, 2);
void tap_skip(const char *reason);

void test_multiboot(void);
void test_uart(void);
void test_uart_irq(void);
void test_cmos(void);
void test_testdev(void);
void test_unhooked(void);
void test_hooks(void);
void test_hostile(void);
extern uint32_t early_cpuid[4]; /* boot.S: CPUID 0x40000100 at entry */
void test_smp(void);

/* ---- uart.c ---- */

const char *uart_type(void);

/* ---- apic.c ---- */

#define IOAPIC_DEFAULT 0xFEC00000u
uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t v);
uint8_t lapic_id(void);
void lapic_enable(void);
bool lapic_ipi(uint8_t apic_id, uint32_t icr_low);
uint32_t ioapic_read(uint32_t base, uint32_t reg);
void ioapic_write(uint32_t base, uint32_t reg, uint32_t v);
void ioapic_route(uint32_t base, unsigned pin, uint8_t vector, uint8_t dest, bool masked);

/* ---- cmos.c ---- */

struct rtc_time {
	unsigned sec, min, hour, mday, mon, year, wday;
	uint8_t reg_b;
};

uint8_t cmos_read(uint8_t reg);
bool rtc_read(struct rtc_time *t);
uint64_t rtc_to_unix(const struct rtc_time *t);

/* ---- mptable.c ---- */

struct mp_cpu {
	uint8_t apic_id, flags;
};

#define MP_CPU_EN 1
#define MP_CPU_BP 2

struct mp_info {
	bool found;
	const char *error; /* first problem found, NULL if none */
	uint32_t fp_addr, cfg_addr, cfg_len;
	char oem[9], product[13];
	uint32_t lapic_addr;
	unsigned nr_cpus, nr_enabled;
	struct mp_cpu cpus[MAX_CPUS];
	unsigned nr_ioapics;
	uint32_t ioapic_addr;
	uint8_t ioapic_id;
	int isa_irq_pin[16]; /* IOAPIC pin per ISA IRQ, -1 if the table has none */
	unsigned nr_pci_irqs;
	struct mp_pci_irq {
		uint8_t bus, src, pin; /* src: device << 2 | (INTx pin - 1) */
		uint16_t flags;	       /* polarity bits 1:0, trigger bits 3:2 */
	} pci_irqs[64];
};

const struct mp_info *mp_get(void);
int mp_isa_pin(unsigned irq);
int mp_pci_pin(unsigned bus, unsigned dev, unsigned intpin, uint16_t *flags);

/* ---- smp.c ---- */

struct cpu_state {
	volatile uint32_t online;
	volatile uint32_t apic_id;
	uint8_t expected_apic;
	bool ipi_ok;
	uint64_t tsc_start, tsc_online;
};

extern struct cpu_state cpus[MAX_CPUS];
extern unsigned nr_cpu_slots; /* cpus[0] is the BSP */
int smp_start_aps(const struct mp_info *mp);
NORETURN void ap_main(unsigned idx);

/* ---- testdev.c ---- */

#define TESTDEV_PORT 0x700
#define TESTDEV_MMIO 0xD0000000u
#define TESTDEV_ID 0x48525448u
bool testdev_present(void);

/* ---- alloc.c: page-granular bump allocator for DMA memory (identity mapped) ---- */

void *page_alloc(size_t bytes); /* zeroed, 4 KiB aligned; NULL when RAM runs out */

/* ---- pci.c: bus 0 through configuration mechanism #1 ---- */

#define PCI_MAX_FUNCS 64
#define PCI_CMD_IO 0x1
#define PCI_CMD_MEM 0x2
#define PCI_CMD_MASTER 0x4
#define PCI_CMD_INTX_DISABLE 0x400
#define PCI_CAP_MSIX 0x11
#define PCI_CAP_VENDOR 0x09

struct pci_bar {
	uint64_t base, size; /* size 0: no BAR */
	bool io, mem64, prefetch;
	bool moved; /* the test OS (re)assigned it */
};

struct pci_func {
	uint8_t dev, fn; /* bus 0 only */
	uint16_t vendor, device;
	uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
	uint8_t header, irq_pin, irq_line;
	struct pci_bar bar[6];
};

uint32_t pci_cfg_read(const struct pci_func *f, unsigned off, unsigned size);
void pci_cfg_write(const struct pci_func *f, unsigned off, unsigned size, uint32_t v);
uint32_t pci_cfg_read_bdf(unsigned dev, unsigned fn, unsigned off, unsigned size);
void pci_cfg_write_bdf(unsigned dev, unsigned fn, unsigned off, unsigned size, uint32_t v);
unsigned pci_scan(const struct pci_func **list); /* once; BARs sized and assigned */
const struct pci_func *pci_find(uint16_t vendor, uint16_t device, unsigned nth);
unsigned pci_cap_next(const struct pci_func *f, unsigned prev, uint8_t id); /* 0: none */
void pci_enable(const struct pci_func *f, uint16_t bits);
void test_pci(void);

/* ---- virtio.c: modern virtio-pci transport and split virtqueues ---- */

#define VIRTIO_VENDOR 0x1AF4
#define VIRTIO_PCI_DEVICE(id) (0x1040 + (id))
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1 (1ull << 32)
#define VIRTIO_NO_VECTOR 0xFFFF
#define VIRTIO_S_NEEDS_RESET 64
#define VQ_MAX 256

enum virtio_irq { VIRTIO_IRQ_NONE, VIRTIO_IRQ_MSIX, VIRTIO_IRQ_INTX };

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct vq_seg {
	const void *addr;
	uint32_t len;
};

struct virtq {
	struct virtio_dev *vd;
	uint16_t index, size, nfree, free_head;
	uint16_t avail_idx, last_used;
	volatile struct vq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint8_t *used;	  /* flags, idx, ring[size] {id, len}, avail_event */
	uintptr_t notify;
	uint16_t vector;
	bool event_idx, quiet;
	void *mem;
	size_t mem_len;
	uint64_t kicks, notifies;
	void *cookie[VQ_MAX];
	uint16_t chain_len[VQ_MAX];
};

struct virtio_dev {
	const struct pci_func *pci;
	uintptr_t common, isr, devcfg, notify_base;
	uint32_t notify_mul, devcfg_len;
	uint64_t offered, features;
	enum virtio_irq irq;
	unsigned msix_cap, msix_n;
	uintptr_t msix_table, msix_pba;
	uint8_t vector_base;
	int ioapic_pin;
	const char *error;
};

bool virtio_open(struct virtio_dev *vd, const struct pci_func *f);
bool virtio_start(struct virtio_dev *vd, uint64_t wanted, enum virtio_irq irq, uint8_t vector_base);
bool virtq_setup(struct virtio_dev *vd, struct virtq *q, uint16_t index, uint16_t max_size);
bool virtio_driver_ok(struct virtio_dev *vd);
bool virtio_try_features(struct virtio_dev *vd, uint64_t features);
bool virtio_reset(struct virtio_dev *vd);
uint8_t virtio_status(const struct virtio_dev *vd);
uint8_t virtio_isr(const struct virtio_dev *vd);
uint16_t virtio_num_queues(const struct virtio_dev *vd);
uint64_t virtio_cfg_read(const struct virtio_dev *vd, unsigned off, unsigned size);
void virtio_msix_mask(const struct virtio_dev *vd, unsigned entry, bool masked);
bool virtio_msix_pending(const struct virtio_dev *vd, unsigned entry);
int virtq_add(struct virtq *q, const struct vq_seg *segs, unsigned nout, unsigned nin,
	      void *cookie);
int virtq_add_indirect(struct virtq *q, const struct vq_seg *segs, unsigned nout, unsigned nin,
		       void *cookie, struct vq_desc *table);
void virtq_kick(struct virtq *q);
bool virtq_get(struct virtq *q, void **cookie, uint32_t *len);
bool virtq_ready(const struct virtq *q); /* a used entry is waiting */
void virtq_quiet(struct virtq *q);	 /* ask the device for no interrupts (we poll) */
bool virtq_wait(struct virtq *q, void **cookie, uint32_t *len, uint64_t ms);
void virtq_idle(struct virtq *q); /* hlt until the queue's interrupt (MSI-X or INTx) */
void test_virtio_irq(void);

/* ---- virtio_blk.c ---- */

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VBLK_TIMEOUT 0xFF /* not a device status: no completion in time */

struct vblk_req {
	uint32_t type, reserved;
	uint64_t sector;
	volatile uint8_t status;
	uint8_t pad[7];
	uint64_t tag;
};

#define VBLK_MAX_QUEUES 4
#define VBLK_IND_MAX 16 /* descriptors per indirect table */

struct vblk {
	struct virtio_dev vd;
	struct virtq q;			      /* queue 0 */
	struct virtq xq[VBLK_MAX_QUEUES - 1]; /* 1.. with VIRTIO_BLK_F_MQ */
	unsigned nq;
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max, seg_max, blk_size;
	struct vblk_req *req; /* one per slot: header and status, DMA memory */
	struct vq_desc *ind;  /* VBLK_IND_MAX indirect descriptors per slot */
	unsigned nreq;
};

bool vblk_open(struct vblk *b, enum virtio_irq irq, uint8_t vector_base, uint64_t drop_features);
int vblk_submit(struct vblk *b, unsigned slot, uint32_t type, uint64_t sector, void *buf,
		uint32_t len);
/* Scattered data on any queue, through an indirect table if asked. */
int vblk_submit_segs(struct vblk *b, struct virtq *q, unsigned slot, uint32_t type, uint64_t sector,
		     const struct vq_seg *data, unsigned ndata, bool indirect);
uint8_t vblk_sync(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len);
uint64_t blk_pattern(uint64_t byte_offset); /* the host's image: one word per 8 bytes */
void test_virtio_blk(void);
NORETURN void blk_bench_main(const char *spec);

/* ---- virtio_console.c, virtio_rng.c ---- */

void test_virtio_console(void);
void test_virtio_rng(void);

/* ---- bench.c / demo.c ---- */

NORETURN void bench_main(const char *spec);
NORETURN void demo_main(void);

#endif
