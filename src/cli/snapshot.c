/* `hearth snapshot`: PUT /vm/snapshot on a running hearth's control API (docs/api.md), with
 * libcurl over the UNIX socket, and its answer as an exit status. */
#include "cli/snapshot.h"

/* curl.h wraps curl_easy_setopt in a type-checking macro, which would also expand our
 * curl.curl_easy_setopt( calls through the lazily opened table */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hearth/error.h"
#include "vm/vm.h"
#include "util/lazylib.h"

/* libcurl, opened only by this command (util/lazylib.h says why) */
#define CURL_FUNCS(X)                                                                              \
	X(curl_easy_cleanup)                                                                       \
	X(curl_easy_getinfo)                                                                       \
	X(curl_easy_init)                                                                          \
	X(curl_easy_perform)                                                                       \
	X(curl_easy_setopt)                                                                        \
	X(curl_easy_strerror)                                                                      \
	X(curl_global_cleanup)                                                                     \
	X(curl_global_init)                                                                        \
	X(curl_slist_append)                                                                       \
	X(curl_slist_free_all)
static struct {
	CURL_FUNCS(LAZYLIB_MEMBER)
} curl;
static const char *const curl_names[] = {CURL_FUNCS(LAZYLIB_NAME)};

enum { SNAP_REFUSED = 1 };

struct answer {
	char *text;
	size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *opaque)
{
	struct answer *a = opaque;
	size_t add = size * n;
	char *t;

	/* the answers are a line of JSON: far more is not the API talking */
	if (a->len + add > 1 << 20 || !(t = realloc(a->text, a->len + add + 1)))
		return 0;
	memcpy(t + a->len, data, add);
	a->len += add;
	t[a->len] = 0;
	a->text = t;
	return add;
}

/* The server resolves nothing against its own working directory: send an absolute path. */
static char *absolute(const char *dir)
{
	char cwd[4096], *out;

	if (dir[0] == '/')
		return strdup(dir);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", strcmp(cwd, "/") ? cwd : "", dir) < 0)
		return NULL;
	return out;
}

static const char *error_of(const struct answer *a, struct json_object **keep)
{
	struct json_object *j = a->text ? json_tokener_parse(a->text) : NULL, *e;

	*keep = j;
	if (j && json_object_object_get_ex(j, "error", &e) &&
	    json_object_is_type(e, json_type_string))
		return json_object_get_string(e);
	return a->text && a->len ? a->text : "(no answer)";
}

int cli_snapshot(const struct cli_opts *opts)
{
	struct json_object *req = json_object_new_object(), *got = NULL;
	struct curl_slist *hdrs = NULL;
	struct answer a = {0};
	struct timespec t0, t1;
	char curl_err[CURL_ERROR_SIZE] = "";
	char *dir = absolute(opts->to);
	long code = 0;
	int status = EXIT_HOST;
	CURL *c = NULL;
	CURLcode rc;

	if (!req || !dir) {
		fprintf(stderr, "hearth: snapshot: %s\n",
			dir ? "out of memory" : "cannot find the working directory");
		goto out;
	}
	json_object_object_add(req, "to", json_object_new_string(dir));
	json_object_object_add(req, "stop", json_object_new_boolean(opts->stop));
	if (lazylib_open("libcurl.so.4", curl_names, (void **)&curl,
			 sizeof(curl_names) / sizeof(curl_names[0])) < 0) {
		fprintf(stderr, "hearth: snapshot: %s\n", hearth_err_msg());
		goto out;
	}
	if (curl.curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK ||
	    !(c = curl.curl_easy_init())) {
		fprintf(stderr, "hearth: snapshot: cannot initialise libcurl\n");
		goto out;
	}
	hdrs = curl.curl_slist_append(hdrs, "Content-Type: application/json");
	curl.curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, opts->api);
	curl.curl_easy_setopt(c, CURLOPT_URL, "http://localhost/vm/snapshot");
	curl.curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
	curl.curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_object_to_json_string(req));
	curl.curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl.curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl.curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
	curl.curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	curl.curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* reaching the socket is quick or never; the save itself may take long */
	curl.curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = curl.curl_easy_perform(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc != CURLE_OK) {
		fprintf(stderr, "hearth: snapshot: cannot reach the API at %s: %s\n", opts->api,
			curl_err[0] ? curl_err : curl.curl_easy_strerror(rc));
		goto out;
	}
	curl.curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		fprintf(stderr, "hearth: snapshot: %s (HTTP %ld)\n", error_of(&a, &got), code);
		status = SNAP_REFUSED;
		goto out;
	}
	printf("saved to %s in %.3f s%s\n", dir,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       opts->stop ? "; the VM is stopping" : "");
	status = 0;
out:
	json_object_put(got);
	curl.curl_slist_free_all(hdrs);
	if (c)
		curl.curl_easy_cleanup(c);
	curl.curl_global_cleanup();
	json_object_put(req);
	free(a.text);
	free(dir);
	return status;
}
