/* Frontend registry: backends find their frontend by id and type. Unlike a lookup that
 * reports success on a miss, every failure here says which id and why. */
#include <stdlib.h>
#include <string.h>

#include "dev/machine.h"

const char *hearth_fe_type_name(enum hearth_fe_type type)
{
	switch (type) {
	case HEARTH_FE_BLK:
		return "blk";
	case HEARTH_FE_NET:
		return "net";
	case HEARTH_FE_CHAR:
		return "char";
	case HEARTH_FE_CONSOLE:
		return "console";
	}
	return "?";
}

int hearth_frontend_register(struct hearth_dev *dev, enum hearth_fe_type type, const void *ops,
			     void *opaque)
{
	struct hearth_vm *vm = dev->vm;
	struct hearth_frontend *f, **tail;

	for (f = vm->frontends; f; f = f->next)
		if (f->dev == dev)
			return hearth_err("device '%s' is already registered as a %s frontend",
					  dev->id, hearth_fe_type_name(f->type));
	f = calloc(1, sizeof(*f));
	if (!f)
		return hearth_err("device '%s': out of memory", dev->id);
	*f = (struct hearth_frontend){.dev = dev, .type = type, .ops = ops, .opaque = opaque};
	for (tail = &vm->frontends; *tail; tail = &(*tail)->next)
		;
	*tail = f;
	return 0;
}

int hearth_frontend_connect(struct hearth_dev *be, const char *fe_id, enum hearth_fe_type type,
			    const void **ops, void **opaque)
{
	struct hearth_frontend *f;

	if (!fe_id || !fe_id[0])
		return hearth_err("backend '%s' names no frontend", be->id);
	for (f = be->vm->frontends; f; f = f->next)
		if (strcmp(f->dev->id, fe_id) == 0)
			break;
	if (!f) {
		const struct hearth_dev *d = hearth_dev_find(be->vm, fe_id);
		return hearth_err(d ? "backend '%s': device '%s' is not a frontend"
				    : "backend '%s': no frontend '%s'",
				  be->id, fe_id);
	}
	if (f->type != type)
		return hearth_err("backend '%s': frontend '%s' is %s, not %s", be->id, fe_id,
				  hearth_fe_type_name(f->type), hearth_fe_type_name(type));
	if (f->backend)
		return hearth_err("backend '%s': frontend '%s' is already connected to '%s'",
				  be->id, fe_id, f->backend->id);
	f->backend = be;
	*ops = f->ops;
	*opaque = f->opaque;
	return 0;
}

void frontends_release_owner(struct hearth_vm *vm, struct hearth_dev *owner)
{
	for (struct hearth_frontend **p = &vm->frontends; *p;) {
		struct hearth_frontend *f = *p;
		if (f->backend == owner)
			f->backend = NULL;
		if (f->dev == owner) {
			*p = f->next;
			free(f);
		} else {
			p = &f->next;
		}
	}
}
