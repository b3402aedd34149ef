/* One configuration tree for the whole VM, from a JSON file, flags, or both (flags win).
 * docs/config.md describes the format. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

struct vm_module {
	const char *path;
	const char *string;
};

struct vm_config {
	struct json_object *root; /* owns every string below */
	unsigned cpus;
	uint64_t memory;
	const char *kernel, *cmdline, *firmware;
	struct vm_module *modules;
	unsigned nmodules;
	/* every device to build, in order: the PC's fixed devices, the serial backend, then
	 * the configured ones; each an object with "class" and "id" */
	struct json_object *devices;
};

/* An empty tree with the defaults, to which flags and a file are added. */
struct json_object *vmconfig_new_tree(void);
/* Merge a JSON file's top level into tree (flags added later override). */
int vmconfig_merge_file(struct json_object *tree, const char *path);
/* Check every key and type; fills cfg (which keeps a reference to tree). */
int vmconfig_finish(struct json_object *tree, const char *where, struct vm_config *cfg);
void vmconfig_free(struct vm_config *cfg);
/* Parse "CLASS[,key=value...]" into a device object. */
struct json_object *vmconfig_device_from_spec(const char *spec);
/* Parse "path=FILE[,readonly=on][,direct=on][,id=ID][,queues=N]" into a disk object. */
struct json_object *vmconfig_disk_from_spec(const char *spec);
