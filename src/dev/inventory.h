/* What a VM is made of: every device with its class, id, resources, frontend links and
 * description. One walk feeds both `hearth devices` (text) and the control API (JSON), so
 * the two can never disagree. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>

#include "dev/machine.h"

enum inv_kind {
	INV_PORT,      /* start..end, inclusive */
	INV_MMIO,      /* start..end, inclusive */
	INV_MSR,       /* start */
	INV_CPUID,     /* leaf, subleaf (HEARTH_CPUID_ANY: every subleaf) */
	INV_HYPERCALL, /* start = number */
	INV_FRONTEND,  /* fe_type; peer = the connected backend's id, or NULL */
	INV_BACKEND,   /* fe_type; peer = the frontend device's id */
};

struct inv_item {
	enum inv_kind kind;
	uint64_t start, end;
	uint32_t leaf, subleaf;
	const char *fe_type, *peer;
};

struct inv_visitor {
	void (*device)(void *opaque, struct hearth_dev *d);
	/* each of the device's resources and links, after its device() call */
	void (*item)(void *opaque, const struct inv_item *it);
	/* the class's describe text, when it has one and it is not empty */
	void (*info)(void *opaque, const char *text);
};

/* Safe while the VM runs: bus and hook tables are read under their locks, describe under
 * the device's lock. Callbacks may run with those held: they must not call back in. */
void machine_walk(struct hearth_vm *m, const struct inv_visitor *v, void *opaque);

void machine_print(struct hearth_vm *m, FILE *out);
/* A JSON array of {"id", "class", "resources": [...], "frontends": [...],
 * "backend_for": [...], "info"} (docs/api.md); NULL when out of memory. */
struct json_object *machine_json(struct hearth_vm *m);
void classes_print(FILE *out);
