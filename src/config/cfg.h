/* Configuration nodes over json-c objects (internal side of hearth/config.h). */
#pragma once

#include <json-c/json.h>

#include "hearth/config.h"

/* Wraps obj (a JSON object; a reference is taken). where names it in messages. */
struct hearth_cfg *cfg_new(struct json_object *obj, const char *where);
void cfg_free(struct hearth_cfg *cfg);
struct json_object *cfg_json(const struct hearth_cfg *cfg);
void cfg_mark_used(struct hearth_cfg *cfg, const char *key);
/* The first key nobody read, or NULL. */
const char *cfg_first_unused(struct hearth_cfg *cfg);
/* Parse "256M", "4G", "4096": 0 or -1 (no message). */
int cfg_parse_size(const char *s, uint64_t *out);
/* Parse a decimal or 0x-prefixed unsigned integer: 0 or -1 (no message). */
int cfg_parse_u64(const char *s, uint64_t *out);
