#include "config/vmconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "hearth/device.h"

#define DEFAULT_MEMORY (256ull << 20)
#define MIN_MEMORY (2ull << 20)
#define MAX_MEMORY (1ull << 40)
#define MAX_CPUS 64

struct json_object *vmconfig_new_tree(void)
{
	struct json_object *t = json_object_new_object();

	json_object_object_add(t, "devices", json_object_new_array());
	return t;
}

int vmconfig_merge_file(struct json_object *tree, const char *path)
{
	struct json_object *file = json_object_from_file(path);

	if (!file)
		return hearth_err("%s: %s", path, json_util_get_last_err());
	if (!json_object_is_type(file, json_type_object)) {
		json_object_put(file);
		return hearth_err("%s: the top level must be an object", path);
	}
	json_object_object_foreach(file, key, val)
	{
		if (strcmp(key, "devices") == 0 && json_object_is_type(val, json_type_array)) {
			struct json_object *devs;
			json_object_object_get_ex(tree, "devices", &devs);
			for (size_t i = 0; i < json_object_array_length(val); i++)
				json_object_array_add(
					devs, json_object_get(json_object_array_get_idx(val, i)));
		} else {
			json_object_object_add(tree, key, json_object_get(val));
		}
	}
	json_object_put(file);
	return 0;
}

/* Adds tok and the rest of its strtok_r list (*save) to obj as "key=value" string members;
 * opt and spec name the command-line option in errors. */
static int add_key_values(struct json_object *obj, char *tok, char **save, const char *opt,
			  const char *spec)
{
	for (; tok; tok = strtok_r(NULL, ",", save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok)
			return hearth_err("%s '%s': '%s' is not key=value", opt, spec, tok);
		*eq = 0;
		if (json_object_object_get_ex(obj, tok, NULL))
			return hearth_err("%s '%s': key '%s' given twice", opt, spec, tok);
		json_object_object_add(obj, tok, json_object_new_string(eq + 1));
	}
	return 0;
}

/* "CLASS,k=v,k=v" → {"class": CLASS, "k": "v", ...}; values stay strings, the device's
 * getters parse them. */
struct json_object *vmconfig_device_from_spec(const char *spec)
{
	char *copy = strdup(spec), *save = NULL;
	struct json_object *dev = json_object_new_object();
	char *tok = strtok_r(copy, ",", &save);

	if (!tok || strchr(tok, '=')) {
		hearth_err("--device '%s': expected CLASS[,key=value...]", spec);
		goto fail;
	}
	json_object_object_add(dev, "class", json_object_new_string(tok));
	if (add_key_values(dev, strtok_r(NULL, ",", &save), &save, "--device", spec) < 0)
		goto fail;
	free(copy);
	return dev;
fail:
	free(copy);
	json_object_put(dev);
	return NULL;
}

/* A char backend spec (serial, console): "stdio", "file:P", "socket:P", "pty". */
static struct json_object *char_backend(const char *key, const char *spec, const char *id,
					const char *frontend, const char *where)
{
	struct json_object *b = json_object_new_object();
	const char *cls = NULL, *path = NULL;

	if (strcmp(spec, "stdio") == 0)
		cls = "char-stdio";
	else if (strcmp(spec, "pty") == 0)
		cls = "char-pty";
	else if (strncmp(spec, "file:", 5) == 0)
		cls = "char-file", path = spec + 5;
	else if (strncmp(spec, "socket:", 7) == 0)
		cls = "char-socket", path = spec + 7;
	if (!cls || (path && !*path)) {
		json_object_put(b);
		hearth_err("%s: %s '%s': expected stdio, file:PATH, socket:PATH, pty or none",
			   where, key, spec);
		return NULL;
	}
	json_object_object_add(b, "class", json_object_new_string(cls));
	json_object_object_add(b, "id", json_object_new_string(id));
	json_object_object_add(b, "frontend", json_object_new_string(frontend));
	if (path)
		json_object_object_add(b, "path", json_object_new_string(path));
	return b;
}

/* Copy key from src to dst when present. */
static void copy_key(struct json_object *dst, struct json_object *src, const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(src, key, &v))
		json_object_object_add(dst, key, json_object_get(v));
}

/* A disk is a virtio-blk frontend and a blk-file backend joined by the disk's id. */
static int add_disks(struct json_object *tree, struct json_object *all, const char *where)
{
	static const char *const keys[] = {"path", "readonly", "direct", "id", "queues"};
	struct json_object *disks, *v;

	if (!json_object_object_get_ex(tree, "disks", &disks))
		return 0;
	if (!json_object_is_type(disks, json_type_array))
		return hearth_err("%s: key 'disks': expected an array", where);
	for (size_t i = 0; i < json_object_array_length(disks); i++) {
		struct json_object *d = json_object_array_get_idx(disks, i);
		char id[HEARTH_NAME_MAX + 1], be_id[HEARTH_NAME_MAX + 8];

		if (!json_object_is_type(d, json_type_object) ||
		    !json_object_object_get_ex(d, "path", &v) ||
		    !json_object_is_type(v, json_type_string))
			return hearth_err("%s: disks[%zu]: expected an object with a 'path' string",
					  where, i);
		json_object_object_foreach(d, k, val)
		{
			bool known = false;
			(void)val;
			for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]) && !known; j++)
				known = strcmp(k, keys[j]) == 0;
			if (!known)
				return hearth_err("%s: disks[%zu]: unknown key '%s'", where, i, k);
		}
		if (json_object_object_get_ex(d, "id", &v)) {
			if (!json_object_is_type(v, json_type_string) ||
			    strlen(json_object_get_string(v)) > HEARTH_NAME_MAX)
				return hearth_err("%s: disks[%zu]: key 'id': expected a device id",
						  where, i);
			snprintf(id, sizeof(id), "%s", json_object_get_string(v));
		} else {
			snprintf(id, sizeof(id), "disk%zu", i);
		}
		snprintf(be_id, sizeof(be_id), "%s-file", id);
		struct json_object *fe = json_object_new_object(), *be = json_object_new_object();
		json_object_object_add(fe, "class", json_object_new_string("virtio-blk"));
		json_object_object_add(fe, "id", json_object_new_string(id));
		copy_key(fe, d, "queues");
		json_object_object_add(be, "class", json_object_new_string("blk-file"));
		json_object_object_add(be, "id", json_object_new_string(be_id));
		json_object_object_add(be, "frontend", json_object_new_string(id));
		copy_key(be, d, "path");
		copy_key(be, d, "readonly");
		copy_key(be, d, "direct");
		json_object_array_add(all, fe);
		json_object_array_add(all, be);
	}
	return 0;
}

/* "path=F,readonly=on,..." → {"path": "F", "readonly": "on", ...} */
struct json_object *vmconfig_disk_from_spec(const char *spec)
{
	char *copy = strdup(spec), *save = NULL;
	struct json_object *disk = json_object_new_object();

	if (add_key_values(disk, strtok_r(copy, ",", &save), &save, "--disk", spec) < 0)
		goto fail;
	free(copy);
	return disk;
fail:
	free(copy);
	json_object_put(disk);
	return NULL;
}

static struct json_object *fixed_device(const char *cls, const char *id)
{
	struct json_object *d = json_object_new_object();

	json_object_object_add(d, "class", json_object_new_string(cls));
	json_object_object_add(d, "id", json_object_new_string(id));
	return d;
}

/* Ids for devices that give none: the class name, then class name + 1, 2, ... */
static int assign_ids(struct json_object *devs, const char *where)
{
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i), *cls, *id;
		if (!json_object_is_type(d, json_type_object))
			return hearth_err("%s: devices[%zu]: expected an object", where, i);
		if (!json_object_object_get_ex(d, "class", &cls) ||
		    !json_object_is_type(cls, json_type_string))
			return hearth_err("%s: devices[%zu]: key 'class' (a string) is required",
					  where, i);
		if (json_object_object_get_ex(d, "id", &id)) {
			if (!json_object_is_type(id, json_type_string))
				return hearth_err("%s: devices[%zu]: key 'id': expected a string",
						  where, i);
			continue;
		}
		const char *base = json_object_get_string(cls);
		char cand[HEARTH_NAME_MAX + 16];
		for (unsigned n = 0;; n++) {
			bool taken = false;
			if (n)
				snprintf(cand, sizeof(cand), "%s%u", base, n);
			else
				snprintf(cand, sizeof(cand), "%s", base);
			for (size_t j = 0; j < json_object_array_length(devs) && !taken; j++) {
				struct json_object *o;
				if (json_object_object_get_ex(json_object_array_get_idx(devs, j),
							      "id", &o))
					taken = strcmp(json_object_get_string(o), cand) == 0;
			}
			if (!taken)
				break;
		}
		json_object_object_add(d, "id", json_object_new_string(cand));
	}
	return 0;
}

static int get_string(struct json_object *tree, const char *key, const char *where,
		      const char **out)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(tree, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return hearth_err("%s: key '%s': expected a string, got %s", where, key,
				  json_type_to_name(json_object_get_type(v)));
	*out = json_object_get_string(v);
	return 0;
}

static int parse_modules(struct json_object *tree, const char *where, struct vm_config *cfg)
{
	struct json_object *mods;

	if (!json_object_object_get_ex(tree, "modules", &mods))
		return 0;
	if (!json_object_is_type(mods, json_type_array))
		return hearth_err("%s: key 'modules': expected an array", where);
	size_t n = json_object_array_length(mods);
	cfg->modules = calloc(n ? n : 1, sizeof(*cfg->modules));
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(mods, i), *p, *s;
		if (!json_object_is_type(m, json_type_object) ||
		    !json_object_object_get_ex(m, "path", &p) ||
		    !json_object_is_type(p, json_type_string))
			return hearth_err("%s: modules[%zu]: expected {\"path\": ..., \"string\": "
					  "...}",
					  where, i);
		json_object_object_foreach(m, k, v)
		{
			(void)v;
			if (strcmp(k, "path") && strcmp(k, "string"))
				return hearth_err("%s: modules[%zu]: unknown key '%s'", where, i,
						  k);
		}
		cfg->modules[i].path = json_object_get_string(p);
		cfg->modules[i].string = cfg->modules[i].path;
		if (json_object_object_get_ex(m, "string", &s)) {
			if (!json_object_is_type(s, json_type_string))
				return hearth_err("%s: modules[%zu]: key 'string': expected a "
						  "string",
						  where, i);
			cfg->modules[i].string = json_object_get_string(s);
		}
	}
	cfg->nmodules = n;
	return 0;
}

static const char *const top_keys[] = {
	"cpus",	    "memory", "kernel",	 "cmdline", "modules",
	"firmware", "serial", "console", "disks",   "devices",
};

int vmconfig_finish(struct json_object *tree, const char *where, struct vm_config *cfg)
{
	struct hearth_cfg *top = NULL;
	struct json_object *devs, *all;
	const char *serial = NULL, *console = NULL;
	uint64_t cpus;

	memset(cfg, 0, sizeof(*cfg));
	cfg->root = json_object_get(tree);
	json_object_object_foreach(tree, key, val)
	{
		bool known = false;
		(void)val;
		for (size_t i = 0; i < sizeof(top_keys) / sizeof(top_keys[0]) && !known; i++)
			known = strcmp(key, top_keys[i]) == 0;
		if (!known)
			return hearth_err("%s: unknown key '%s'", where, key);
	}
	top = cfg_new(tree, where);
	if (hearth_cfg_u64(top, "cpus", 1, 1, MAX_CPUS, &cpus) < 0 ||
	    hearth_cfg_size(top, "memory", DEFAULT_MEMORY, MIN_MEMORY, MAX_MEMORY, &cfg->memory) <
		    0) {
		cfg_free(top);
		return -1;
	}
	cfg_free(top);
	cfg->cpus = (unsigned)cpus;
	if (cfg->memory & 0xfff)
		return hearth_err("%s: key 'memory': %llu is not a multiple of 4 KiB", where,
				  (unsigned long long)cfg->memory);
	if (get_string(tree, "kernel", where, &cfg->kernel) < 0 ||
	    get_string(tree, "cmdline", where, &cfg->cmdline) < 0 ||
	    get_string(tree, "firmware", where, &cfg->firmware) < 0 ||
	    get_string(tree, "serial", where, &serial) < 0 ||
	    get_string(tree, "console", where, &console) < 0 || parse_modules(tree, where, cfg) < 0)
		return -1;
	if (cfg->kernel && cfg->firmware)
		return hearth_err("%s: 'kernel' and 'firmware' exclude each other", where);
	if (!cfg->kernel && (cfg->cmdline || cfg->nmodules))
		return hearth_err("%s: 'cmdline' and 'modules' need a 'kernel'", where);
	if (!json_object_object_get_ex(tree, "devices", &devs) ||
	    !json_object_is_type(devs, json_type_array))
		return hearth_err("%s: key 'devices': expected an array", where);

	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i), *cls;
		if (!json_object_is_type(d, json_type_object) ||
		    !json_object_object_get_ex(d, "class", &cls) ||
		    !json_object_is_type(cls, json_type_string))
			return hearth_err("%s: devices[%zu]: expected an object with a 'class' "
					  "string",
					  where, i);
	}
	/* The PC's fixed devices come first so their ids are reserved and their ports taken
	 * before configured devices ask for theirs. */
	all = json_object_new_array();
	json_object_array_add(all, fixed_device("uart8250", "com1"));
	json_object_array_add(all, fixed_device("i8042", "i8042"));
	json_object_array_add(all, fixed_device("cmos", "cmos"));
	json_object_array_add(all, fixed_device("port80", "port80"));
	json_object_array_add(all, fixed_device("pci-host", "pci0"));
	/* one terminal, one owner: a stdio console takes stdio from the serial default */
	if (console && !strcmp(console, "stdio")) {
		if (serial && !strcmp(serial, "stdio")) {
			json_object_put(all);
			return hearth_err("%s: 'serial' and 'console' cannot both be stdio", where);
		}
		if (!serial)
			serial = "none";
	}
	if (!serial)
		serial = "stdio";
	if (strcmp(serial, "none") != 0) {
		struct json_object *b = char_backend("serial", serial, "serial0", "com1", where);
		if (!b) {
			json_object_put(all);
			return -1;
		}
		json_object_array_add(all, b);
	}
	if (console && strcmp(console, "none") != 0) {
		struct json_object *b =
			char_backend("console", console, "console0-out", "console0", where);
		if (!b) {
			json_object_put(all);
			return -1;
		}
		json_object_array_add(all, fixed_device("virtio-console", "console0"));
		json_object_array_add(all, b);
	}
	if (add_disks(tree, all, where) < 0) {
		json_object_put(all);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(devs); i++)
		json_object_array_add(all, json_object_get(json_object_array_get_idx(devs, i)));
	cfg->devices = all;
	if (assign_ids(all, where) < 0)
		return -1;
	return 0;
}

void vmconfig_free(struct vm_config *cfg)
{
	free(cfg->modules);
	json_object_put(cfg->devices);
	json_object_put(cfg->root);
	memset(cfg, 0, sizeof(*cfg));
}
