/* `hearth devices` and GET /devices: one walk over the device table, the buses, the hook
 * tables and the frontends, rendered as text or JSON. */
#include <stdio.h>

#include "dev/inventory.h"

static void walk_ranges(struct hearth_iobus *bus, struct hearth_dev *d, enum inv_kind kind,
			const struct inv_visitor *v, void *opaque)
{
	pthread_rwlock_rdlock(&bus->lock);
	for (unsigned i = 0; i < bus->n; i++) {
		const struct hearth_io_range *r = &bus->r[i];
		if (r->owner != d)
			continue;
		struct inv_item it = {.kind = kind, .start = r->base, .end = r->base + r->len - 1};
		v->item(opaque, &it);
	}
	pthread_rwlock_unlock(&bus->lock);
}

static void walk_hooks(struct hearth_vm *m, struct hearth_dev *d, const struct inv_visitor *v,
		       void *opaque)
{
	pthread_mutex_lock(&m->hooks_lock);
	for (unsigned i = 0; i < m->msrs.n; i++) {
		if (m->msrs.v[i].owner != d)
			continue;
		struct inv_item it = {.kind = INV_MSR, .start = m->msrs.v[i].msr};
		v->item(opaque, &it);
	}
	for (unsigned i = 0; i < m->cpuids.n; i++) {
		const struct hearth_cpuid_hook *h = &m->cpuids.v[i];
		if (h->owner != d)
			continue;
		struct inv_item it = {.kind = INV_CPUID, .leaf = h->leaf, .subleaf = h->subleaf};
		v->item(opaque, &it);
	}
	for (unsigned i = 0; i < m->hcalls.n; i++) {
		if (m->hcalls.v[i].owner != d)
			continue;
		struct inv_item it = {.kind = INV_HYPERCALL, .start = m->hcalls.v[i].nr};
		v->item(opaque, &it);
	}
	pthread_mutex_unlock(&m->hooks_lock);
}

void machine_walk(struct hearth_vm *m, const struct inv_visitor *v, void *opaque)
{
	for (struct hearth_dev *d = m->devs; d; d = d->next) {
		v->device(opaque, d);
		walk_ranges(&m->pio, d, INV_PORT, v, opaque);
		walk_ranges(&m->mmio, d, INV_MMIO, v, opaque);
		walk_hooks(m, d, v, opaque);
		/* the frontend list is fixed once the devices are built */
		for (struct hearth_frontend *f = m->frontends; f; f = f->next) {
			struct inv_item it = {.fe_type = hearth_fe_type_name(f->type)};
			if (f->dev == d) {
				it.kind = INV_FRONTEND;
				it.peer = f->backend ? f->backend->id : NULL;
			} else if (f->backend == d) {
				it.kind = INV_BACKEND;
				it.peer = f->dev->id;
			} else {
				continue;
			}
			v->item(opaque, &it);
		}
		if (d->cls->describe) {
			char buf[256] = "";
			/* a running VM changes device state under this lock */
			hearth_dev_lock(d);
			d->cls->describe(d, buf, sizeof(buf));
			hearth_dev_unlock(d);
			if (buf[0])
				v->info(opaque, buf);
		}
	}
}

/* ---- text ---- */

static void text_device(void *opaque, struct hearth_dev *d)
{
	fprintf(opaque, "%-12s %s\n", d->id, d->cls->name);
}

static void text_item(void *opaque, const struct inv_item *it)
{
	FILE *out = opaque;

	switch (it->kind) {
	case INV_PORT:
		fprintf(out, "    port  %#06llx-%#06llx\n", (unsigned long long)it->start,
			(unsigned long long)it->end);
		break;
	case INV_MMIO:
		fprintf(out, "    mmio  %#llx-%#llx\n", (unsigned long long)it->start,
			(unsigned long long)it->end);
		break;
	case INV_MSR:
		fprintf(out, "    msr   %#x\n", (unsigned)it->start);
		break;
	case INV_CPUID:
		if (it->subleaf == HEARTH_CPUID_ANY)
			fprintf(out, "    cpuid %#x\n", it->leaf);
		else
			fprintf(out, "    cpuid %#x.%u\n", it->leaf, it->subleaf);
		break;
	case INV_HYPERCALL:
		fprintf(out, "    hypercall %u\n", (unsigned)it->start);
		break;
	case INV_FRONTEND:
		fprintf(out, "    %s frontend, backend: %s\n", it->fe_type,
			it->peer ? it->peer : "(none)");
		break;
	case INV_BACKEND:
		fprintf(out, "    %s backend of '%s'\n", it->fe_type, it->peer);
		break;
	}
}

static void text_info(void *opaque, const char *text)
{
	fprintf(opaque, "    %s\n", text);
}

void machine_print(struct hearth_vm *m, FILE *out)
{
	static const struct inv_visitor text = {text_device, text_item, text_info};

	machine_walk(m, &text, out);
}

/* ---- JSON ---- */

struct json_walk {
	struct json_object *all, *dev;
	bool oom;
};

/* json-c's constructors return NULL only when out of memory */
static void add(struct json_walk *w, struct json_object *obj, const char *key,
		struct json_object *val)
{
	if (!obj || !val || json_object_object_add(obj, key, val) < 0) {
		json_object_put(val);
		w->oom = true;
	}
}

static void append(struct json_walk *w, const char *list, struct json_object *val)
{
	struct json_object *arr;

	if (!w->dev || !val) {
		json_object_put(val);
		w->oom = true;
		return;
	}
	if (!json_object_object_get_ex(w->dev, list, &arr)) {
		w->oom = true;
		json_object_put(val);
		return;
	}
	if (json_object_array_add(arr, val) < 0) {
		json_object_put(val);
		w->oom = true;
	}
}

static void json_device(void *opaque, struct hearth_dev *d)
{
	struct json_walk *w = opaque;

	w->dev = json_object_new_object();
	if (!w->dev || json_object_array_add(w->all, w->dev) < 0) {
		json_object_put(w->dev);
		w->dev = NULL;
		w->oom = true;
		return;
	}
	add(w, w->dev, "id", json_object_new_string(d->id));
	add(w, w->dev, "class", json_object_new_string(d->cls->name));
	add(w, w->dev, "resources", json_object_new_array());
	add(w, w->dev, "frontends", json_object_new_array());
	add(w, w->dev, "backend_for", json_object_new_array());
}

static void json_item(void *opaque, const struct inv_item *it)
{
	static const char *const type[] = {
		[INV_PORT] = "port",   [INV_MMIO] = "mmio",	      [INV_MSR] = "msr",
		[INV_CPUID] = "cpuid", [INV_HYPERCALL] = "hypercall",
	};
	struct json_walk *w = opaque;
	struct json_object *o = json_object_new_object();

	if (!o) {
		w->oom = true;
		return;
	}
	switch (it->kind) {
	case INV_PORT:
	case INV_MMIO:
		add(w, o, "type", json_object_new_string(type[it->kind]));
		add(w, o, "start", json_object_new_uint64(it->start));
		add(w, o, "end", json_object_new_uint64(it->end));
		append(w, "resources", o);
		break;
	case INV_MSR:
	case INV_HYPERCALL:
		add(w, o, "type", json_object_new_string(type[it->kind]));
		add(w, o, it->kind == INV_MSR ? "msr" : "nr", json_object_new_uint64(it->start));
		append(w, "resources", o);
		break;
	case INV_CPUID:
		add(w, o, "type", json_object_new_string(type[it->kind]));
		add(w, o, "leaf", json_object_new_uint64(it->leaf));
		/* no subleaf key: the hook sees every subleaf */
		if (it->subleaf != HEARTH_CPUID_ANY)
			add(w, o, "subleaf", json_object_new_uint64(it->subleaf));
		append(w, "resources", o);
		break;
	case INV_FRONTEND:
		add(w, o, "type", json_object_new_string(it->fe_type));
		/* json null: no backend is connected */
		if (json_object_object_add(o, "backend",
					   it->peer ? json_object_new_string(it->peer) : NULL) < 0)
			w->oom = true;
		append(w, "frontends", o);
		break;
	case INV_BACKEND:
		add(w, o, "type", json_object_new_string(it->fe_type));
		add(w, o, "frontend", json_object_new_string(it->peer));
		append(w, "backend_for", o);
		break;
	}
}

static void json_info(void *opaque, const char *text)
{
	struct json_walk *w = opaque;

	add(w, w->dev, "info", json_object_new_string(text));
}

struct json_object *machine_json(struct hearth_vm *m)
{
	static const struct inv_visitor json = {json_device, json_item, json_info};
	struct json_walk w = {.all = json_object_new_array()};

	if (!w.all)
		return NULL;
	machine_walk(m, &json, &w);
	if (w.oom) {
		json_object_put(w.all);
		return NULL;
	}
	return w.all;
}

void classes_print(FILE *out)
{
	for (size_t i = 0; i < hearth_class_count(); i++) {
		const struct hearth_dev_class *c = hearth_class_at(i);
		fprintf(out, "%-16s %s\n", c->name, c->summary ? c->summary : "");
	}
}
