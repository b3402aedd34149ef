/* The class table, built once at start-up from the linker section every
 * HEARTH_DEVICE_CLASS adds to. */
#include <stdlib.h>
#include <string.h>

#include "dev/machine.h"

extern const struct hearth_dev_class *const __start_hearth_dev_classes[] __attribute__((weak));
extern const struct hearth_dev_class *const __stop_hearth_dev_classes[] __attribute__((weak));

static const struct hearth_dev_class **classes;
static size_t nclasses;
static bool built;

bool hearth_name_valid(const char *name)
{
	size_t n = 0;

	if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
		return false;
	for (; name[n]; n++) {
		char c = name[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
		if (!ok || n >= HEARTH_NAME_MAX)
			return false;
	}
	return true;
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const struct hearth_dev_class *const *)a)->name,
		      (*(const struct hearth_dev_class *const *)b)->name);
}

int hearth_classes_build(const struct hearth_dev_class *const *list, size_t n)
{
	const struct hearth_dev_class **t = calloc(n ? n : 1, sizeof(*t));

	if (!t)
		return hearth_err("out of memory building the device class table");
	for (size_t i = 0; i < n; i++) {
		if (!hearth_name_valid(list[i]->name) || !list[i]->init) {
			hearth_err("device class '%s' (%s): %s", list[i]->name ? list[i]->name : "",
				   list[i]->source,
				   list[i]->init ? "invalid name" : "no init function");
			free(t);
			return -1;
		}
		t[i] = list[i];
	}
	qsort(t, n, sizeof(*t), by_name);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(t[i - 1]->name, t[i]->name) == 0) {
			hearth_err("device class '%s' is registered twice: in %s and in %s",
				   t[i]->name, t[i - 1]->source, t[i]->source);
			free(t);
			return -1;
		}
	}
	free(classes);
	classes = t;
	nclasses = n;
	built = true;
	return 0;
}

int hearth_classes_init(void)
{
	if (built)
		return 0;
	return hearth_classes_build(
		__start_hearth_dev_classes,
		(size_t)(__stop_hearth_dev_classes - __start_hearth_dev_classes));
}

const struct hearth_dev_class *hearth_class_find(const char *name)
{
	size_t lo = 0, hi = nclasses;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, classes[mid]->name);
		if (c == 0)
			return classes[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t hearth_class_count(void)
{
	return nclasses;
}

const struct hearth_dev_class *hearth_class_at(size_t i)
{
	return i < nclasses ? classes[i] : NULL;
}
