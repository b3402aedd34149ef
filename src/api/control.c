/* Control API requests: routing, body checks, and the rules that serialize state changes.
 * Knows neither HTTP nor KVM (control.h). */
#include "api/control.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/error.h"

void api_ctl_init(struct api_ctl *c, const struct api_vm_ops *ops, void *vm)
{
	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->vm = vm;
	pthread_mutex_init(&c->lock, NULL);
	atomic_init(&c->paused, false);
	atomic_init(&c->snapshotting, false);
}

void api_ctl_destroy(struct api_ctl *c)
{
	pthread_mutex_destroy(&c->lock);
}

static void fail(struct api_reply *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct api_reply *r, unsigned status, const char *fmt, ...)
{
	char msg[HEARTH_ERR_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_put(r->body);
	r->status = status;
	r->body = json_object_new_object();
	if (r->body)
		json_object_object_add(r->body, "error", json_object_new_string(msg));
}

static const char *state_name(struct api_ctl *c)
{
	if (c->ops->stopping(c->vm))
		return "stopping";
	/* a snapshot pauses the VM while it saves */
	if (atomic_load(&c->paused) || atomic_load(&c->snapshotting))
		return "paused";
	return "running";
}

static void reply_state(struct api_ctl *c, struct api_reply *r)
{
	struct json_object *o = json_object_new_object();

	r->status = 200;
	r->body = o;
	if (!o)
		return;
	json_object_object_add(o, "state", json_object_new_string(state_name(c)));
	json_object_object_add(o, "cpus", json_object_new_uint64(c->ops->cpus(c->vm)));
	json_object_object_add(o, "memory", json_object_new_uint64(c->ops->memory(c->vm)));
	json_object_object_add(o, "snapshot_in_progress",
			       json_object_new_boolean(atomic_load(&c->snapshotting)));
}

/* State changes are refused once the VM is stopping, and while a snapshot saves (a pause or
 * resume then would change what is being saved). 0 to go on; else the 409 is in r. */
static int check_changeable(struct api_ctl *c, struct api_reply *r)
{
	if (c->ops->stopping(c->vm)) {
		fail(r, 409, "the VM is stopping");
		return -1;
	}
	if (atomic_load(&c->snapshotting)) {
		fail(r, 409, "a snapshot is in progress");
		return -1;
	}
	return 0;
}

/* The body as a JSON object: empty means {}. NULL with a 400 in r otherwise. */
static struct json_object *parse_body(const char *body, size_t len, struct api_reply *r)
{
	struct json_object *obj;
	struct json_tokener *tok;
	enum json_tokener_error err;
	size_t end;
	char *text;

	while (len && body[len - 1] && strchr(" \t\r\n", body[len - 1]))
		len--;
	if (!len)
		return json_object_new_object();
	/* the tokenizer needs the terminating NUL to see where the input ends (a bare number
	 * is otherwise still "continuing") */
	text = malloc(len + 1);
	tok = json_tokener_new();
	if (!text || !tok) {
		free(text);
		json_tokener_free(tok);
		fail(r, 500, "out of memory");
		return NULL;
	}
	memcpy(text, body, len);
	text[len] = 0;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len + 1);
	err = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	free(text);
	if (!obj) {
		fail(r, 400, "malformed JSON body at byte %zu: %s", end,
		     json_tokener_error_desc(err));
		return NULL;
	}
	/* a NUL byte inside the body ends the value early */
	if (end != len) {
		json_object_put(obj);
		fail(r, 400, "malformed JSON body: more after the value at byte %zu", end);
		return NULL;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		fail(r, 400, "the body must be a JSON object");
		return NULL;
	}
	return obj;
}

/* ---- handlers: body is a parsed object for PUT, NULL for GET ---- */

static int no_keys(struct json_object *body, struct api_reply *r)
{
	json_object_object_foreach(body, key, val)
	{
		(void)val;
		fail(r, 400, "unknown key \"%.64s\"", key);
		return -1;
	}
	return 0;
}

static void get_vm(struct api_ctl *c, struct json_object *body, struct api_reply *r)
{
	(void)body;
	reply_state(c, r);
}

static void get_devices(struct api_ctl *c, struct json_object *body, struct api_reply *r)
{
	(void)body;
	hearth_err_clear();
	r->body = c->ops->devices(c->vm);
	r->status = 200;
	if (!r->body)
		fail(r, 500, "cannot list the devices: %s", hearth_err_msg());
}

/* Idempotent, as PUT should be: pausing a paused VM (or resuming a running one) changes
 * nothing. */
static void set_paused(struct api_ctl *c, struct json_object *body, struct api_reply *r, bool pause)
{
	if (no_keys(body, r) < 0)
		return;
	pthread_mutex_lock(&c->lock);
	if (check_changeable(c, r) == 0) {
		if (atomic_load(&c->paused) != pause) {
			(pause ? c->ops->pause : c->ops->resume)(c->vm);
			atomic_store(&c->paused, pause);
		}
		reply_state(c, r);
	}
	pthread_mutex_unlock(&c->lock);
}

static void put_pause(struct api_ctl *c, struct json_object *body, struct api_reply *r)
{
	set_paused(c, body, r, true);
}

static void put_resume(struct api_ctl *c, struct json_object *body, struct api_reply *r)
{
	set_paused(c, body, r, false);
}

static void put_shutdown(struct api_ctl *c, struct json_object *body, struct api_reply *r)
{
	if (no_keys(body, r) < 0)
		return;
	/* Not under the lock: a pause that waits for a slow vCPU must not delay a stop (the
	 * stop is what ends that wait). A snapshot that starts just after this check sees the
	 * stop as it would see SIGTERM. */
	if (atomic_load(&c->snapshotting)) {
		fail(r, 409, "a snapshot is in progress: shut down once it ends");
		return;
	}
	c->ops->shutdown(c->vm);
	reply_state(c, r);
}

static void put_snapshot(struct api_ctl *c, struct json_object *body, struct api_reply *r)
{
	const char *to = NULL;
	bool stop = false, was_paused;
	int ret;

	json_object_object_foreach(body, key, val)
	{
		if (!strcmp(key, "to")) {
			if (!json_object_is_type(val, json_type_string)) {
				fail(r, 400, "\"to\" must be a string (a directory)");
				return;
			}
			to = json_object_get_string(val);
			if (strlen(to) != (size_t)json_object_get_string_len(val)) {
				fail(r, 400, "\"to\" holds a NUL character");
				return;
			}
			/* relative to what? hearth's working directory is not the client's */
			if (to[0] != '/') {
				fail(r, 400, "\"to\" must be an absolute path, not \"%.256s\"", to);
				return;
			}
		} else if (!strcmp(key, "stop")) {
			if (!json_object_is_type(val, json_type_boolean)) {
				fail(r, 400, "\"stop\" must be true or false");
				return;
			}
			stop = json_object_get_boolean(val);
		} else {
			fail(r, 400, "unknown key \"%.64s\"", key);
			return;
		}
	}
	if (!to) {
		fail(r, 400, "\"to\" is missing: the directory to save to");
		return;
	}

	pthread_mutex_lock(&c->lock);
	if (check_changeable(c, r) < 0) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	atomic_store(&c->snapshotting, true);
	was_paused = atomic_load(&c->paused);
	pthread_mutex_unlock(&c->lock);

	hearth_err_clear();
	ret = c->ops->snapshot(c->vm, to);

	pthread_mutex_lock(&c->lock);
	/* the VM goes back to how the client left it, unless it asked for a stop and got a
	 * checkpoint to restart from */
	if (ret == 0 && stop)
		c->ops->shutdown(c->vm);
	else if (!was_paused)
		c->ops->resume(c->vm);
	atomic_store(&c->snapshotting, false);
	pthread_mutex_unlock(&c->lock);

	if (ret < 0) {
		fail(r, 500, "snapshot to %.256s failed: %s", to, hearth_err_msg());
		return;
	}
	reply_state(c, r);
	if (r->body)
		json_object_object_add(r->body, "to", json_object_new_string(to));
}

struct route {
	const char *path, *method;
	void (*fn)(struct api_ctl *c, struct json_object *body, struct api_reply *r);
};

static const struct route routes[] = {
	{"/vm", "GET", get_vm},
	{"/vm/pause", "PUT", put_pause},
	{"/vm/resume", "PUT", put_resume},
	{"/vm/snapshot", "PUT", put_snapshot},
	{"/vm/shutdown", "PUT", put_shutdown},
	{"/devices", "GET", get_devices},
};

void api_handle(struct api_ctl *c, const char *method, const char *path, const char *body,
		size_t len, struct api_reply *r)
{
	const struct route *rt = NULL;
	struct json_object *obj = NULL;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !rt; i++)
		if (!strcmp(path, routes[i].path))
			rt = &routes[i];
	if (!rt) {
		fail(r, 404, "no such path: %.128s (docs/api.md lists them)", path);
		return;
	}
	if (strcmp(method, rt->method)) {
		r->allow = rt->method;
		{
			fail(r, 405, "%s takes %s, not %.16s", rt->path, rt->method, method);
			return;
		}
	}
	if (len > API_BODY_MAX) {
		fail(r, 413, "the body is over %d bytes", API_BODY_MAX);
		return;
	}
	if (!strcmp(rt->method, "PUT")) {
		obj = parse_body(body, len, r);
		if (!obj)
			return;
	}
	rt->fn(c, obj, r);
	json_object_put(obj);
	if (!r->body)
		fail(r, 500, "out of memory");
}
