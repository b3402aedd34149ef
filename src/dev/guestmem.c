#include "hearth/guestmem.h"

#include <string.h>

#include "dev/machine.h"

void *hearth_gpa_ptr(struct hearth_vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < vm->nram; i++) {
		const struct hearth_ram_slot *s = &vm->ram[i];
		/* written so that no sum can wrap: gpa - s->gpa only once gpa >= s->gpa */
		if (gpa >= s->gpa && gpa - s->gpa < s->size && len <= s->size - (gpa - s->gpa))
			return s->hva + (gpa - s->gpa);
	}
	return NULL;
}

int hearth_gpa_read(struct hearth_vm *vm, uint64_t gpa, void *buf, size_t len)
{
	const void *p = hearth_gpa_ptr(vm, gpa, len);

	if (!p)
		return -1;
	memcpy(buf, p, len);
	return 0;
}

int hearth_gpa_write(struct hearth_vm *vm, uint64_t gpa, const void *buf, size_t len)
{
	void *p = hearth_gpa_ptr(vm, gpa, len);

	if (!p)
		return -1;
	memcpy(p, buf, len);
	return 0;
}
