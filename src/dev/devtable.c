/* The VM's device table: ids are checked, never cut; a device that fails to build leaves
 * nothing behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "dev/machine.h"

const char *hearth_dev_id(const struct hearth_dev *dev)
{
	return dev ? dev->id : "(none)";
}

const struct hearth_dev_class *hearth_dev_class(const struct hearth_dev *dev)
{
	return dev->cls;
}

struct hearth_vm *hearth_dev_vm(const struct hearth_dev *dev)
{
	return dev->vm;
}

void *hearth_dev_priv(const struct hearth_dev *dev)
{
	return dev->priv;
}

void hearth_dev_set_priv(struct hearth_dev *dev, void *priv)
{
	dev->priv = priv;
}

void hearth_dev_lock(struct hearth_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
}

void hearth_dev_unlock(struct hearth_dev *dev)
{
	pthread_mutex_unlock(&dev->lock);
}

struct hearth_dev *hearth_dev_find(struct hearth_vm *vm, const char *id)
{
	for (struct hearth_dev *d = vm->devs; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

static void unlink_dev(struct hearth_vm *vm, struct hearth_dev *dev)
{
	for (struct hearth_dev **p = &vm->devs; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			return;
		}
	}
}

/* Release everything the device owns, then the device. */
static void destroy(struct hearth_dev *dev)
{
	struct hearth_vm *vm = dev->vm;

	iobus_remove_owner(&vm->pio, dev);
	iobus_remove_owner(&vm->mmio, dev);
	hooks_release_owner(vm, dev);
	frontends_release_owner(vm, dev);
	/* also after a failed init: free releases whatever init got as far as allocating */
	if (dev->cls->free)
		dev->cls->free(dev);
	unlink_dev(vm, dev);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

struct hearth_dev *hearth_dev_create(struct hearth_vm *vm, const char *cls_name, const char *id,
				     struct hearth_cfg *cfg)
{
	const struct hearth_dev_class *cls;
	struct hearth_dev *dev, **tail;

	if (hearth_classes_init() < 0)
		return NULL;
	cls = hearth_class_find(cls_name);
	if (!cls) {
		hearth_err(
			"device '%s': unknown device class '%s' (see `hearth devices --classes`)",
			id, cls_name);
		return NULL;
	}
	if (!hearth_name_valid(id)) {
		hearth_err("invalid device id '%s': use 1-%d characters of A-Z a-z 0-9 _ . -, "
			   "starting with a letter",
			   id, HEARTH_NAME_MAX);
		return NULL;
	}
	if (hearth_dev_find(vm, id)) {
		hearth_err("device id '%s' is already used by a %s device", id,
			   hearth_dev_find(vm, id)->cls->name);
		return NULL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		hearth_err("device '%s': out of memory", id);
		return NULL;
	}
	strcpy(dev->id, id); /* length checked by hearth_name_valid */
	dev->cls = cls;
	dev->vm = vm;
	pthread_mutex_init(&dev->lock, NULL);
	for (tail = &vm->devs; *tail; tail = &(*tail)->next)
		;
	*tail = dev;

	if (cls->init(dev, cfg) < 0) {
		char own[HEARTH_NAME_MAX + 16];
		snprintf(own, sizeof(own), "device '%s':", id);
		/* hook errors already name the device: name it once, with its class */
		if (strncmp(hearth_err_msg(), own, strlen(own)) == 0) {
			char rest[HEARTH_ERR_MAX];
			snprintf(rest, sizeof(rest), "%s", hearth_err_msg() + strlen(own));
			hearth_err("device '%s' (%s):%s", id, cls->name, rest);
		} else {
			hearth_err_prefix("device '%s' (%s)", id, cls->name);
		}
		destroy(dev);
		return NULL;
	}
	dev->inited = true;
	const char *unused = cfg ? cfg_first_unused(cfg) : NULL;
	if (unused) {
		hearth_err("device '%s' (%s): unknown key '%s'", id, cls->name, unused);
		destroy(dev);
		return NULL;
	}
	return dev;
}

int hearth_dev_remove(struct hearth_dev *dev)
{
	for (struct hearth_frontend *f = dev->vm->frontends; f; f = f->next)
		if (f->dev == dev && f->backend && f->backend != dev)
			return hearth_err("device '%s' cannot be removed: backend '%s' is "
					  "connected to it",
					  dev->id, f->backend->id);
	destroy(dev);
	return 0;
}

void hearth_devs_reset(struct hearth_vm *vm)
{
	for (struct hearth_dev *d = vm->devs; d; d = d->next) {
		if (d->cls->reset) {
			hearth_dev_lock(d);
			d->cls->reset(d);
			hearth_dev_unlock(d);
		}
	}
}

void machine_init(struct hearth_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	iobus_init(&vm->pio, "port", 0x10000);
	iobus_init(&vm->mmio, "mmio", UINT64_MAX);
	pthread_mutex_init(&vm->hooks_lock, NULL);
}

void machine_destroy(struct hearth_vm *vm)
{
	/* newest first: backends go before the frontends they joined */
	while (vm->devs) {
		struct hearth_dev *last = vm->devs;
		while (last->next)
			last = last->next;
		destroy(last);
	}
	iobus_destroy(&vm->pio);
	iobus_destroy(&vm->mmio);
	free(vm->msrs.v);
	free(vm->cpuids.v);
	free(vm->hcalls.v);
	memset(&vm->msrs, 0, sizeof(vm->msrs));
	memset(&vm->cpuids, 0, sizeof(vm->cpuids));
	memset(&vm->hcalls, 0, sizeof(vm->hcalls));
	pthread_mutex_destroy(&vm->hooks_lock);
}
