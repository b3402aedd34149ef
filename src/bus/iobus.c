#include "bus/iobus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev/machine.h"

void iobus_init(struct hearth_iobus *bus, const char *name, uint64_t limit)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	bus->limit = limit;
	pthread_rwlock_init(&bus->lock, NULL);
}

void iobus_destroy(struct hearth_iobus *bus)
{
	free(bus->r);
	bus->r = NULL;
	bus->n = bus->cap = 0;
	pthread_rwlock_destroy(&bus->lock);
}

/* Index of the first range whose end is above addr. */
static unsigned lower_bound(const struct hearth_iobus *bus, uint64_t addr)
{
	unsigned lo = 0, hi = bus->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct hearth_io_range *r = &bus->r[mid];

		if (r->base + r->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int iobus_add(struct hearth_iobus *bus, const struct hearth_io_range *range)
{
	const char *who = hearth_dev_id(range->owner);
	int ret = -1;

	if (range->len == 0 || range->base >= bus->limit || range->len > bus->limit - range->base)
		return hearth_err("device '%s': %s range %#llx+%#llx is outside 0..%#llx", who,
				  bus->name, (unsigned long long)range->base,
				  (unsigned long long)range->len,
				  (unsigned long long)bus->limit - 1);
	pthread_rwlock_wrlock(&bus->lock);
	unsigned i = lower_bound(bus, range->base);
	if (i < bus->n && bus->r[i].base < range->base + range->len) {
		const struct hearth_io_range *o = &bus->r[i];
		hearth_err("device '%s': %s range %#llx-%#llx overlaps %#llx-%#llx owned by '%s'",
			   who, bus->name, (unsigned long long)range->base,
			   (unsigned long long)(range->base + range->len - 1),
			   (unsigned long long)o->base, (unsigned long long)(o->base + o->len - 1),
			   hearth_dev_id(o->owner));
		goto out;
	}
	if (bus->n == bus->cap) {
		unsigned cap = bus->cap ? bus->cap * 2 : 16;
		struct hearth_io_range *r = realloc(bus->r, cap * sizeof(*r));
		if (!r) {
			hearth_err("device '%s': out of memory hooking %s range", who, bus->name);
			goto out;
		}
		bus->r = r;
		bus->cap = cap;
	}
	memmove(&bus->r[i + 1], &bus->r[i], (bus->n - i) * sizeof(*bus->r));
	bus->r[i] = *range;
	bus->n++;
	ret = 0;
out:
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int iobus_remove(struct hearth_iobus *bus, struct hearth_dev *owner, uint64_t base)
{
	int ret = -1;

	pthread_rwlock_wrlock(&bus->lock);
	unsigned i = lower_bound(bus, base);
	if (i < bus->n && bus->r[i].base == base && bus->r[i].owner == owner) {
		memmove(&bus->r[i], &bus->r[i + 1], (bus->n - i - 1) * sizeof(*bus->r));
		bus->n--;
		ret = 0;
	} else {
		hearth_err("device '%s': no %s range of its own at %#llx", hearth_dev_id(owner),
			   bus->name, (unsigned long long)base);
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

unsigned iobus_remove_owner(struct hearth_iobus *bus, struct hearth_dev *owner)
{
	unsigned kept = 0, removed;

	pthread_rwlock_wrlock(&bus->lock);
	for (unsigned i = 0; i < bus->n; i++)
		if (bus->r[i].owner != owner)
			bus->r[kept++] = bus->r[i];
	removed = bus->n - kept;
	bus->n = kept;
	pthread_rwlock_unlock(&bus->lock);
	return removed;
}

bool iobus_find(struct hearth_iobus *bus, uint64_t addr, unsigned size, struct hearth_io_range *out)
{
	bool found = false;

	pthread_rwlock_rdlock(&bus->lock);
	unsigned i = lower_bound(bus, addr);
	if (i < bus->n) {
		const struct hearth_io_range *r = &bus->r[i];
		/* Only accesses wholly inside a range reach the device: callbacks may rely on
		 * offset + size <= len whatever the guest does. */
		if (addr >= r->base && size <= r->len && addr - r->base <= r->len - size) {
			*out = *r;
			found = true;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	return found;
}

static uint64_t size_mask(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

uint64_t iobus_read(struct hearth_iobus *bus, uint64_t addr, unsigned size)
{
	struct hearth_io_range r;
	uint64_t v = ~0ull;

	if (iobus_find(bus, addr, size, &r) && r.ops->read) {
		hearth_dev_lock(r.owner);
		v = r.ops->read(r.opaque, addr - r.base, size);
		hearth_dev_unlock(r.owner);
	}
	return v & size_mask(size);
}

void iobus_write(struct hearth_iobus *bus, uint64_t addr, uint64_t value, unsigned size)
{
	struct hearth_io_range r;

	if (iobus_find(bus, addr, size, &r) && r.ops->write) {
		hearth_dev_lock(r.owner);
		r.ops->write(r.opaque, addr - r.base, value & size_mask(size), size);
		hearth_dev_unlock(r.owner);
	}
}
