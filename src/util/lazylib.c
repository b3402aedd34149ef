#include "util/lazylib.h"

#include <dlfcn.h>

#include "hearth/error.h"

int lazylib_open(const char *soname, const char *const names[], void **slots, size_t n)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

	if (!h)
		return hearth_err("cannot load %s: %s", soname, dlerror());
	for (size_t i = 0; i < n; i++) {
		slots[i] = dlsym(h, names[i]);
		if (!slots[i])
			return hearth_err("%s has no %s", soname, names[i]);
	}
	/* the handle stays open for the life of the process, as a linked library would */
	return 0;
}
