/* `hearth devices`: every device with its class, id and each resource it owns. */
#include <stdio.h>

#include "dev/inventory.h"

static void print_ranges(FILE *out, struct hearth_iobus *bus, struct hearth_dev *d, const char *fmt)
{
	pthread_rwlock_rdlock(&bus->lock);
	for (unsigned i = 0; i < bus->n; i++) {
		const struct hearth_io_range *r = &bus->r[i];
		if (r->owner != d)
			continue;
		fprintf(out, fmt, (unsigned long long)r->base,
			(unsigned long long)(r->base + r->len - 1));
	}
	pthread_rwlock_unlock(&bus->lock);
}

void machine_print(struct hearth_vm *m, FILE *out)
{
	for (struct hearth_dev *d = m->devs; d; d = d->next) {
		fprintf(out, "%-12s %s\n", d->id, d->cls->name);
		print_ranges(out, &m->pio, d, "    port  %#06llx-%#06llx\n");
		print_ranges(out, &m->mmio, d, "    mmio  %#llx-%#llx\n");
		pthread_mutex_lock(&m->hooks_lock);
		for (unsigned i = 0; i < m->msrs.n; i++)
			if (m->msrs.v[i].owner == d)
				fprintf(out, "    msr   %#x\n", m->msrs.v[i].msr);
		for (unsigned i = 0; i < m->cpuids.n; i++) {
			const struct hearth_cpuid_hook *h = &m->cpuids.v[i];
			if (h->owner != d)
				continue;
			if (h->subleaf == HEARTH_CPUID_ANY)
				fprintf(out, "    cpuid %#x\n", h->leaf);
			else
				fprintf(out, "    cpuid %#x.%u\n", h->leaf, h->subleaf);
		}
		for (unsigned i = 0; i < m->hcalls.n; i++)
			if (m->hcalls.v[i].owner == d)
				fprintf(out, "    hypercall %u\n", m->hcalls.v[i].nr);
		pthread_mutex_unlock(&m->hooks_lock);
		for (struct hearth_frontend *f = m->frontends; f; f = f->next) {
			if (f->dev == d)
				fprintf(out, "    %s frontend, backend: %s\n",
					hearth_fe_type_name(f->type),
					f->backend ? f->backend->id : "(none)");
			else if (f->backend == d)
				fprintf(out, "    %s backend of '%s'\n",
					hearth_fe_type_name(f->type), f->dev->id);
		}
		if (d->cls->describe) {
			char buf[256] = "";
			d->cls->describe(d, buf, sizeof(buf));
			if (buf[0])
				fprintf(out, "    %s\n", buf);
		}
	}
}

void classes_print(FILE *out)
{
	for (size_t i = 0; i < hearth_class_count(); i++) {
		const struct hearth_dev_class *c = hearth_class_at(i);
		fprintf(out, "%-16s %s\n", c->name, c->summary ? c->summary : "");
	}
}
