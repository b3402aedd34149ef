/* The control API's requests (src/api/control.c) against a fake VM: routing, status codes,
 * body checks, and the rules that keep concurrent clients from tripping over each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/control.h"
#include "hearth/error.h"

struct fake {
	int pauses, resumes, shutdowns, snapshots;
	bool stopping, fail_snapshot, fail_devices;
	char dir[256];
	/* a snapshot in progress waits here until the test lets it go */
	bool block, in_snapshot, release;
	pthread_mutex_t m;
	pthread_cond_t cv;
};

static struct fake fk;
static struct api_ctl ctl;

static void f_pause(void *vm)
{
	((struct fake *)vm)->pauses++;
}

static void f_resume(void *vm)
{
	((struct fake *)vm)->resumes++;
}

static int f_snapshot(void *vm, const char *dir)
{
	struct fake *f = vm;

	f->snapshots++;
	snprintf(f->dir, sizeof(f->dir), "%s", dir);
	pthread_mutex_lock(&f->m);
	f->in_snapshot = true;
	pthread_cond_broadcast(&f->cv);
	while (f->block && !f->release)
		pthread_cond_wait(&f->cv, &f->m);
	f->in_snapshot = false;
	pthread_mutex_unlock(&f->m);
	if (f->fail_snapshot)
		return hearth_err("device 'blk0': no save op");
	return 0;
}

static void f_shutdown(void *vm)
{
	struct fake *f = vm;

	f->shutdowns++;
	f->stopping = true;
}

static bool f_stopping(void *vm)
{
	return ((struct fake *)vm)->stopping;
}

static unsigned f_cpus(void *vm)
{
	(void)vm;
	return 2;
}

static uint64_t f_memory(void *vm)
{
	(void)vm;
	return 256ull << 20;
}

static struct json_object *f_devices(void *vm)
{
	struct json_object *a, *d;

	if (((struct fake *)vm)->fail_devices) {
		hearth_err("out of memory");
		return NULL;
	}
	a = json_object_new_array();
	d = json_object_new_object();
	json_object_object_add(d, "id", json_object_new_string("com1"));
	json_object_array_add(a, d);
	return a;
}

static const struct api_vm_ops ops = {
	.pause = f_pause,
	.resume = f_resume,
	.snapshot = f_snapshot,
	.shutdown = f_shutdown,
	.stopping = f_stopping,
	.cpus = f_cpus,
	.memory = f_memory,
	.devices = f_devices,
};

static int setup(void **state)
{
	(void)state;
	memset(&fk, 0, sizeof(fk));
	pthread_mutex_init(&fk.m, NULL);
	pthread_cond_init(&fk.cv, NULL);
	api_ctl_init(&ctl, &ops, &fk);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	api_ctl_destroy(&ctl);
	pthread_mutex_destroy(&fk.m);
	pthread_cond_destroy(&fk.cv);
	return 0;
}

/* One request; returns the status, and the body in *body (caller puts) when asked. */
static unsigned req(const char *method, const char *path, const char *body,
		    struct json_object **out)
{
	struct api_reply r;

	api_handle(&ctl, method, path, body, body ? strlen(body) : 0, &r);
	assert_non_null(r.body);
	if (r.status != 405)
		assert_null(r.allow);
	if (out)
		*out = r.body;
	else
		json_object_put(r.body);
	return r.status;
}

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no key '%s' in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

/* The status is code and the error message contains want. */
static void expect_error(const char *method, const char *path, const char *body, unsigned code,
			 const char *want)
{
	struct json_object *o;
	unsigned st = req(method, path, body, &o);
	const char *e = str(o, "error");

	if (st != code || !strstr(e, want))
		fail_msg("%s %s %s: %u '%s', expected %u '%s'", method, path, body ? body : "", st,
			 e, code, want);
	json_object_put(o);
}

static void test_get_vm(void **state)
{
	struct json_object *o, *v;

	(void)state;
	assert_int_equal(req("GET", "/vm", NULL, &o), 200);
	assert_string_equal(str(o, "state"), "running");
	assert_true(json_object_object_get_ex(o, "cpus", &v));
	assert_int_equal(json_object_get_int64(v), 2);
	assert_true(json_object_object_get_ex(o, "memory", &v));
	assert_int_equal(json_object_get_int64(v), 256 << 20);
	assert_true(json_object_object_get_ex(o, "snapshot_in_progress", &v));
	assert_false(json_object_get_boolean(v));
	json_object_put(o);
	/* a body on a GET is ignored */
	assert_int_equal(req("GET", "/vm", "garbage", NULL), 200);
}

static void test_pause_resume(void **state)
{
	struct json_object *o;

	(void)state;
	assert_int_equal(req("PUT", "/vm/pause", NULL, &o), 200);
	assert_string_equal(str(o, "state"), "paused");
	json_object_put(o);
	assert_int_equal(fk.pauses, 1);
	/* idempotent: a second pause answers the same and does nothing */
	assert_int_equal(req("PUT", "/vm/pause", "{}", NULL), 200);
	assert_int_equal(fk.pauses, 1);
	assert_int_equal(req("GET", "/vm", NULL, &o), 200);
	assert_string_equal(str(o, "state"), "paused");
	json_object_put(o);

	assert_int_equal(req("PUT", "/vm/resume", " \n", &o), 200);
	assert_string_equal(str(o, "state"), "running");
	json_object_put(o);
	assert_int_equal(fk.resumes, 1);
	assert_int_equal(req("PUT", "/vm/resume", NULL, NULL), 200);
	assert_int_equal(fk.resumes, 1);
}

static void test_routing_errors(void **state)
{
	struct api_reply r;

	(void)state;
	expect_error("GET", "/nope", NULL, 404, "no such path: /nope");
	expect_error("GET", "/vm/", NULL, 404, "no such path");
	expect_error("GET", "/", NULL, 404, "no such path");
	expect_error("PUT", "/vm", NULL, 405, "/vm takes GET, not PUT");
	expect_error("POST", "/vm/pause", NULL, 405, "/vm/pause takes PUT");
	expect_error("DELETE", "/devices", NULL, 405, "/devices takes GET");
	api_handle(&ctl, "GET", "/vm/pause", NULL, 0, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "PUT");
	json_object_put(r.body);
	api_handle(&ctl, "PUT", "/devices", NULL, 0, &r);
	assert_string_equal(r.allow, "GET");
	json_object_put(r.body);
	assert_int_equal(fk.pauses, 0);
}

static void test_bad_bodies(void **state)
{
	struct api_reply r;
	char nul[] = "{\"to\": \"/a\"}\0x";

	(void)state;
	expect_error("PUT", "/vm/pause", "{", 400, "at byte 1: unexpected end of data");
	expect_error("PUT", "/vm/pause", "{\"a\" 1}", 400, "malformed JSON");
	expect_error("PUT", "/vm/pause", "{} {}", 400, "malformed JSON body at byte 3");
	expect_error("PUT", "/vm/pause", "[]", 400, "must be a JSON object");
	expect_error("PUT", "/vm/pause", "\"x\"", 400, "must be a JSON object");
	expect_error("PUT", "/vm/pause", "1", 400, "must be a JSON object");
	expect_error("PUT", "/vm/pause", "{\"a\": tru}", 400, "malformed JSON");
	expect_error("PUT", "/vm/pause", "{\"force\": true}", 400, "unknown key \"force\"");
	expect_error("PUT", "/vm/resume", "{\"x\": 1}", 400, "unknown key \"x\"");
	expect_error("PUT", "/vm/shutdown", "{\"x\": 1}", 400, "unknown key \"x\"");
	expect_error("PUT", "/vm/snapshot", NULL, 400, "\"to\" is missing");
	expect_error("PUT", "/vm/snapshot", "{\"to\": 5}", 400, "\"to\" must be a string");
	expect_error("PUT", "/vm/snapshot", "{\"to\": \"rel/dir\"}", 400, "absolute path");
	expect_error("PUT", "/vm/snapshot", "{\"to\": \"/a\\u0000b\"}", 400, "NUL");
	expect_error("PUT", "/vm/snapshot", "{\"to\": \"/d\", \"stop\": 1}", 400,
		     "\"stop\" must be true or false");
	expect_error("PUT", "/vm/snapshot", "{\"to\": \"/d\", \"colour\": 1}", 400,
		     "unknown key \"colour\"");
	/* a NUL byte inside the body is not whitespace after the value */
	api_handle(&ctl, "PUT", "/vm/snapshot", nul, sizeof(nul) - 1, &r);
	assert_int_equal(r.status, 400);
	assert_non_null(
		strstr(json_object_to_json_string(r.body), "more after the value at byte 12"));
	json_object_put(r.body);
	/* over the limit: refused whatever it holds (the HTTP side does not keep it) */
	api_handle(&ctl, "PUT", "/vm/snapshot", NULL, API_BODY_MAX + 1, &r);
	assert_int_equal(r.status, 413);
	json_object_put(r.body);
	assert_int_equal(fk.pauses + fk.resumes + fk.snapshots + fk.shutdowns, 0);
}

static void test_snapshot(void **state)
{
	struct json_object *o;

	(void)state;
	assert_int_equal(req("PUT", "/vm/snapshot", "{\"to\": \"/tmp/ck\"}", &o), 200);
	assert_string_equal(str(o, "to"), "/tmp/ck");
	assert_string_equal(str(o, "state"), "running");
	json_object_put(o);
	assert_string_equal(fk.dir, "/tmp/ck");
	/* the snapshot left the VM paused: it runs again as the client had it */
	assert_int_equal(fk.resumes, 1);

	/* a VM the client paused stays paused */
	assert_int_equal(req("PUT", "/vm/pause", NULL, NULL), 200);
	assert_int_equal(req("PUT", "/vm/snapshot", "{\"to\": \"/tmp/ck2\", \"stop\": false}", &o),
			 200);
	assert_string_equal(str(o, "state"), "paused");
	json_object_put(o);
	assert_int_equal(fk.resumes, 1);
	assert_int_equal(fk.snapshots, 2);
}

static void test_snapshot_stop(void **state)
{
	struct json_object *o;

	(void)state;
	assert_int_equal(req("PUT", "/vm/snapshot", "{\"to\": \"/c\", \"stop\": true}", &o), 200);
	assert_string_equal(str(o, "state"), "stopping");
	json_object_put(o);
	assert_int_equal(fk.shutdowns, 1);
	assert_int_equal(fk.resumes, 0);
	/* nothing changes a stopping VM */
	expect_error("PUT", "/vm/pause", NULL, 409, "stopping");
	expect_error("PUT", "/vm/resume", NULL, 409, "stopping");
	expect_error("PUT", "/vm/snapshot", "{\"to\": \"/c\"}", 409, "stopping");
	assert_int_equal(fk.snapshots, 1);
	/* a second shutdown is harmless */
	assert_int_equal(req("PUT", "/vm/shutdown", NULL, NULL), 200);
}

static void test_snapshot_fails(void **state)
{
	(void)state;
	fk.fail_snapshot = true;
	/* a failed save with stop: the VM runs on, and the error names the cause */
	expect_error("PUT", "/vm/snapshot", "{\"to\": \"/c\", \"stop\": true}", 500,
		     "snapshot to /c failed: device 'blk0': no save op");
	assert_int_equal(fk.shutdowns, 0);
	assert_int_equal(fk.resumes, 1);
	assert_false(fk.stopping);
}

static void *snapshot_thread(void *arg)
{
	unsigned *status = arg;

	*status = req("PUT", "/vm/snapshot", "{\"to\": \"/slow\"}", NULL);
	return NULL;
}

static void test_snapshot_busy(void **state)
{
	struct json_object *o, *v;
	unsigned status = 0;
	pthread_t t;

	(void)state;
	fk.block = true;
	assert_int_equal(pthread_create(&t, NULL, snapshot_thread, &status), 0);
	pthread_mutex_lock(&fk.m);
	while (!fk.in_snapshot)
		pthread_cond_wait(&fk.cv, &fk.m);
	pthread_mutex_unlock(&fk.m);

	/* while it saves: reads are answered, changes are refused */
	assert_int_equal(req("GET", "/vm", NULL, &o), 200);
	assert_string_equal(str(o, "state"), "paused");
	assert_true(json_object_object_get_ex(o, "snapshot_in_progress", &v));
	assert_true(json_object_get_boolean(v));
	json_object_put(o);
	assert_int_equal(req("GET", "/devices", NULL, NULL), 200);
	expect_error("PUT", "/vm/snapshot", "{\"to\": \"/other\"}", 409,
		     "a snapshot is in progress");
	expect_error("PUT", "/vm/pause", NULL, 409, "a snapshot is in progress");
	expect_error("PUT", "/vm/resume", NULL, 409, "a snapshot is in progress");
	expect_error("PUT", "/vm/shutdown", NULL, 409, "a snapshot is in progress");
	assert_int_equal(fk.shutdowns + fk.pauses + fk.resumes, 0);

	pthread_mutex_lock(&fk.m);
	fk.release = true;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.m);
	pthread_join(t, NULL);
	assert_int_equal(status, 200);
	assert_int_equal(fk.snapshots, 1);
	assert_string_equal(fk.dir, "/slow");
	assert_int_equal(req("PUT", "/vm/pause", NULL, NULL), 200);
	assert_int_equal(fk.pauses, 1);
}

static void test_shutdown(void **state)
{
	struct json_object *o;

	(void)state;
	assert_int_equal(req("PUT", "/vm/shutdown", NULL, &o), 200);
	assert_string_equal(str(o, "state"), "stopping");
	json_object_put(o);
	assert_int_equal(fk.shutdowns, 1);
	assert_int_equal(req("GET", "/vm", NULL, &o), 200);
	assert_string_equal(str(o, "state"), "stopping");
	json_object_put(o);
}

static void test_devices(void **state)
{
	struct json_object *o;

	(void)state;
	assert_int_equal(req("GET", "/devices", NULL, &o), 200);
	assert_true(json_object_is_type(o, json_type_array));
	assert_string_equal(str(json_object_array_get_idx(o, 0), "id"), "com1");
	json_object_put(o);
	fk.fail_devices = true;
	expect_error("GET", "/devices", NULL, 500, "cannot list the devices: out of memory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_vm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_routing_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
