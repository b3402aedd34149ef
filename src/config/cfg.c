#include "config/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/error.h"

#define CFG_MAX_KEYS 64

struct hearth_cfg {
	struct json_object *obj;
	char *where;
	const char *used[CFG_MAX_KEYS];
	unsigned nused;
};

struct hearth_cfg *cfg_new(struct json_object *obj, const char *where)
{
	struct hearth_cfg *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->where = strdup(where);
	if (!cfg->where) {
		free(cfg);
		return NULL;
	}
	cfg->obj = json_object_get(obj ? obj : json_object_new_object());
	if (!obj)
		json_object_put(cfg->obj); /* drop the extra reference of the fresh object */
	return cfg;
}

void cfg_free(struct hearth_cfg *cfg)
{
	if (!cfg)
		return;
	json_object_put(cfg->obj);
	free(cfg->where);
	free(cfg);
}

struct json_object *cfg_json(const struct hearth_cfg *cfg)
{
	return cfg->obj;
}

const char *hearth_cfg_where(const struct hearth_cfg *cfg)
{
	return cfg->where;
}

void cfg_mark_used(struct hearth_cfg *cfg, const char *key)
{
	for (unsigned i = 0; i < cfg->nused; i++)
		if (strcmp(cfg->used[i], key) == 0)
			return;
	if (cfg->nused < CFG_MAX_KEYS)
		cfg->used[cfg->nused++] = key;
}

const char *cfg_first_unused(struct hearth_cfg *cfg)
{
	json_object_object_foreach(cfg->obj, key, val)
	{
		bool used = false;
		(void)val;
		for (unsigned i = 0; i < cfg->nused && !used; i++)
			used = strcmp(cfg->used[i], key) == 0;
		if (!used)
			return key;
	}
	return NULL;
}

bool hearth_cfg_has(struct hearth_cfg *cfg, const char *key)
{
	cfg_mark_used(cfg, key);
	return json_object_object_get_ex(cfg->obj, key, NULL);
}

static struct json_object *lookup(struct hearth_cfg *cfg, const char *key)
{
	struct json_object *v = NULL;

	cfg_mark_used(cfg, key);
	json_object_object_get_ex(cfg->obj, key, &v);
	return v;
}

int cfg_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	int base = 10;

	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	/* base 10 or 0x only: strtoull's base 0 would read "010" as octal 8 */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		base = 16;
		if (!isxdigit((unsigned char)s[0]))
			return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case 0:
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -1;
	}
	if (*end && end[1] && !(toupper((unsigned char)end[1]) == 'B' && !end[2]) &&
	    !(toupper((unsigned char)end[1]) == 'I' && toupper((unsigned char)end[2]) == 'B' &&
	      !end[3]))
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

int hearth_cfg_str(struct hearth_cfg *cfg, const char *key, const char *def, const char **out)
{
	struct json_object *v = lookup(cfg, key);

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return hearth_err("%s: key '%s': expected a string, got %s", cfg->where, key,
				  json_type_to_name(json_object_get_type(v)));
	*out = json_object_get_string(v);
	return 0;
}

/* Shared by the integer getters: a JSON integer, or a string the parser accepts. */
static int get_number(struct hearth_cfg *cfg, const char *key, uint64_t def, uint64_t min,
		      uint64_t max, uint64_t *out, int (*parse)(const char *, uint64_t *),
		      const char *what)
{
	struct json_object *v = lookup(cfg, key);
	uint64_t x;

	if (!v) {
		*out = def;
		return 0;
	}
	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) < 0)
			return hearth_err("%s: key '%s': expected %s %llu..%llu, got %lld",
					  cfg->where, key, what, (unsigned long long)min,
					  (unsigned long long)max,
					  (long long)json_object_get_int64(v));
		x = json_object_get_uint64(v);
	} else if (json_object_is_type(v, json_type_string)) {
		if (parse(json_object_get_string(v), &x) < 0)
			return hearth_err("%s: key '%s': expected %s, got '%s'", cfg->where, key,
					  what, json_object_get_string(v));
	} else {
		return hearth_err("%s: key '%s': expected %s, got %s", cfg->where, key, what,
				  json_type_to_name(json_object_get_type(v)));
	}
	if (x < min || x > max)
		return hearth_err("%s: key '%s': %llu is outside %llu..%llu", cfg->where, key,
				  (unsigned long long)x, (unsigned long long)min,
				  (unsigned long long)max);
	*out = x;
	return 0;
}

int hearth_cfg_u64(struct hearth_cfg *cfg, const char *key, uint64_t def, uint64_t min,
		   uint64_t max, uint64_t *out)
{
	return get_number(cfg, key, def, min, max, out, cfg_parse_u64, "an integer");
}

int hearth_cfg_size(struct hearth_cfg *cfg, const char *key, uint64_t def, uint64_t min,
		    uint64_t max, uint64_t *out)
{
	return get_number(cfg, key, def, min, max, out, cfg_parse_size, "a size (e.g. 256M)");
}

int hearth_cfg_bool(struct hearth_cfg *cfg, const char *key, bool def, bool *out)
{
	struct json_object *v = lookup(cfg, key);

	if (!v) {
		*out = def;
		return 0;
	}
	if (json_object_is_type(v, json_type_boolean)) {
		*out = json_object_get_boolean(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		if (!strcmp(s, "on") || !strcmp(s, "true") || !strcmp(s, "yes") ||
		    !strcmp(s, "1")) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, "off") || !strcmp(s, "false") || !strcmp(s, "no") ||
		    !strcmp(s, "0")) {
			*out = false;
			return 0;
		}
	}
	return hearth_err("%s: key '%s': expected on/off (or true/false)", cfg->where, key);
}
