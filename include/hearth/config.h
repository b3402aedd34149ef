/* A device's configuration node. Values come from JSON (typed) or from `--device k=v` flags
 * (strings); the getters accept both and name the device and key in every error. Every key a
 * device reads is marked used: a key nobody read is reported as unknown after init. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct hearth_cfg;

/* Each getter returns 0 and stores the value (or the default when the key is absent),
 * or returns -1 with hearth_err set. */
int hearth_cfg_str(struct hearth_cfg *cfg, const char *key, const char *def, const char **out);
int hearth_cfg_u64(struct hearth_cfg *cfg, const char *key, uint64_t def, uint64_t min,
		   uint64_t max, uint64_t *out);
int hearth_cfg_bool(struct hearth_cfg *cfg, const char *key, bool def, bool *out);
/* Sizes accept plain bytes or a K/M/G/T suffix (powers of 1024). */
int hearth_cfg_size(struct hearth_cfg *cfg, const char *key, uint64_t def, uint64_t min,
		    uint64_t max, uint64_t *out);
bool hearth_cfg_has(struct hearth_cfg *cfg, const char *key);
/* What the node describes, for messages: "device 'com1'". */
const char *hearth_cfg_where(const struct hearth_cfg *cfg);
