#include "fakevm.h"

#include <stddef.h>
#include <stdlib.h>

static void fake_irq(struct hearth_vm *vm, unsigned gsi, int level)
{
	struct fakevm *f = fakevm_of(vm);

	if (gsi >= 32)
		return;
	if (level && !f->irq_level[gsi])
		f->irq_raises[gsi]++;
	f->irq_level[gsi] = level;
}

static void fake_stop(struct hearth_vm *vm, int status)
{
	struct fakevm *f = fakevm_of(vm);

	f->stop_requested++;
	f->stop_status = status;
}

struct fakevm *fakevm_of(struct hearth_vm *vm)
{
	return (struct fakevm *)((char *)vm - offsetof(struct fakevm, vm));
}

struct fakevm *fakevm_new(uint64_t ram_size)
{
	struct fakevm *f = calloc(1, sizeof(*f));

	machine_init(&f->vm);
	f->ram = calloc(1, ram_size ? ram_size : 1);
	if (ram_size) {
		f->vm.ram[0] = (struct hearth_ram_slot){0, ram_size, f->ram};
		f->vm.nram = 1;
		f->vm.ram_size = ram_size;
	}
	f->vm.irq_line = fake_irq;
	f->vm.request_stop = fake_stop;
	f->vm.loop = loop_new();
	return f;
}

void fakevm_free(struct fakevm *f)
{
	machine_destroy(&f->vm);
	loop_free(f->vm.loop);
	free(f->ram);
	free(f);
}

struct hearth_dev *fakevm_dev(struct fakevm *f, const char *cls, const char *id, const char *json)
{
	struct json_object *obj = json ? json_tokener_parse(json) : NULL;
	struct hearth_cfg *cfg = cfg_new(obj, id);
	struct hearth_dev *d = hearth_dev_create(&f->vm, cls, id, cfg);

	cfg_free(cfg);
	json_object_put(obj);
	return d;
}
