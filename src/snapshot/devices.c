/* The device walk of a checkpoint. Everything that can be checked without a device's own
 * code (ops present, classes match, no device missing on either side) is checked before the
 * first save or load op runs. */
#include <stdio.h>
#include <string.h>

#include "dev/machine.h"
#include "snapshot/devices.h"
#include "snapshot/store.h"

#define CKPT_DEVICE_VERSION 1 /* until the save op sets its own */

static void ctx_name(const struct hearth_dev *d, char *buf, size_t size)
{
	snprintf(buf, size, CKPT_DEVICE_PREFIX "%s", d->id);
}

static int check_ops(const struct hearth_dev *d)
{
	if (!d->cls->save)
		return hearth_err("device '%s' (%s) cannot be checkpointed: no save op", d->id,
				  d->cls->name);
	if (!d->cls->load)
		return hearth_err("device '%s' (%s) cannot be checkpointed: no load op", d->id,
				  d->cls->name);
	return 0;
}

int ckpt_save_devices(struct hearth_vm *vm, struct hearth_ckpt_writer *w)
{
	char name[CKPT_NAME_MAX + 1];

	for (struct hearth_dev *d = vm->devs; d; d = d->next)
		if (check_ops(d))
			return -1;
	for (struct hearth_dev *d = vm->devs; d; d = d->next) {
		struct hearth_ckpt *ck;
		int ret;

		ctx_name(d, name, sizeof(name));
		if (hearth_ckpt_open_ctx(w, name, CKPT_DEVICE_VERSION, 0, &ck) ||
		    hearth_ckpt_put_str(ck, "_class", d->cls->name))
			return -1;
		hearth_dev_lock(d);
		ret = d->cls->save(d, ck);
		hearth_dev_unlock(d);
		if (ret == 0)
			ret = hearth_ckpt_close_ctx(ck);
		if (ret)
			return hearth_err_prefix("saving device '%s' (%s)", d->id, d->cls->name);
	}
	return 0;
}

/* The framework's own field: read before the device's load op has accepted a version. */
static int read_class(struct hearth_ckpt *ck, char *buf, size_t size)
{
	bool accepted = ck->version_ok;
	int ret;

	ck->version_ok = true;
	ret = hearth_ckpt_get_str(ck, "_class", buf, size);
	ck->version_ok = accepted;
	if (ret == 0 && !hearth_name_valid(buf))
		ret = hearth_err("checkpoint context '%s': key '_class' is not a class name",
				 ck->name);
	return ret;
}

/* The context of device d, its class checked. */
static int device_ctx(struct hearth_ckpt_reader *r, struct hearth_dev *d, struct hearth_ckpt **out)
{
	char name[CKPT_NAME_MAX + 1], cls[CKPT_NAME_MAX + 1];
	struct hearth_ckpt *ck;

	ctx_name(d, name, sizeof(name));
	ck = ckpt_reader_take(r, name);
	if (!ck)
		return hearth_err("device '%s' (%s) is not in the checkpoint (no context '%s')",
				  d->id, d->cls->name, name);
	if (read_class(ck, cls, sizeof(cls)))
		return -1;
	if (strcmp(cls, d->cls->name) != 0)
		return hearth_err("device '%s' is a %s in this VM but a %s in the checkpoint",
				  d->id, d->cls->name, cls);
	*out = ck;
	return 0;
}

int ckpt_load_devices(struct hearth_vm *vm, struct hearth_ckpt_reader *r)
{
	const size_t plen = strlen(CKPT_DEVICE_PREFIX);
	struct hearth_ckpt *ck;

	for (struct hearth_dev *d = vm->devs; d; d = d->next)
		if (check_ops(d) || device_ctx(r, d, &ck))
			return -1;
	for (uint32_t i = 0; i < ckpt_reader_count(r); i++) {
		char cls[CKPT_NAME_MAX + 1];
		ck = ckpt_reader_at(r, i);
		if (ck->taken || strncmp(ck->name, CKPT_DEVICE_PREFIX, plen) != 0)
			continue;
		if (read_class(ck, cls, sizeof(cls)))
			return -1;
		return hearth_err("checkpoint has device '%s' (%s) that this VM does not have",
				  ck->name + plen, cls);
	}
	for (struct hearth_dev *d = vm->devs; d; d = d->next) {
		int ret;

		device_ctx(r, d, &ck); /* found above */
		hearth_dev_lock(d);
		ret = d->cls->load(d, ck);
		hearth_dev_unlock(d);
		if (ret == 0 && !ck->version_ok)
			ret = hearth_err("the load op did not accept a version of context '%s' "
					 "(hearth_ckpt_accept_versions)",
					 ck->name);
		if (ret == 0)
			ret = hearth_ckpt_close_ctx(ck);
		if (ret)
			return hearth_err_prefix("restoring device '%s' (%s)", d->id, d->cls->name);
	}
	return 0;
}
