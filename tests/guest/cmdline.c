/*
 * Multiboot command line: space-separated words, either "key=value" or a bare
 * "key".  Boot loaders may put the kernel path first (QEMU does), so unknown
 * words are ignored.  A private copy is kept because the original may sit in
 * low memory that SMP start-up later reuses.
 */
#include "testos.h"

#define MAX_WORDS 32

static char raw[1024];
static char buf[1024];
static const char *words[MAX_WORDS];
static unsigned nr_words;

void cmdline_init(const char *s)
{
	size_t n = 0;
	if (s)
		while (s[n] && n < sizeof(buf) - 1)
			n++;
	memcpy(raw, s, n);
	raw[n] = 0;
	memcpy(buf, s, n);
	buf[n] = 0;
	nr_words = 0;
	for (char *p = buf; *p && nr_words < MAX_WORDS;) {
		while (*p == ' ' || *p == '\t')
			*p++ = 0;
		if (!*p)
			break;
		words[nr_words++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
}

const char *cmdline_raw(void)
{
	return raw;
}

const char *cmdline_get(const char *key)
{
	size_t k = strlen(key);
	for (unsigned i = 0; i < nr_words; i++) {
		if (strncmp(words[i], key, k))
			continue;
		if (words[i][k] == '=')
			return words[i] + k + 1;
		if (!words[i][k])
			return words[i] + k;
	}
	return NULL;
}

bool cmdline_u64(const char *key, uint64_t *out)
{
	const char *v = cmdline_get(key);
	return v && parse_u64(v, v + strlen(v), out);
}

/* "key=a,b,c": is item one of the comma-separated values? */
bool cmdline_list_has(const char *key, const char *item)
{
	const char *v = cmdline_get(key);
	size_t n = strlen(item);
	while (v && *v) {
		const char *e = v;
		while (*e && *e != ',')
			e++;
		if ((size_t)(e - v) == n && !strncmp(v, item, n))
			return true;
		v = *e ? e + 1 : e;
	}
	return false;
}
