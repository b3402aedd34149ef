/* The control API without HTTP or KVM: routes a request (method, path, body) to the VM's
 * primitives and answers with a status and a JSON body. Keeps the rules that make the
 * primitives safe to call from many clients at once: one state change at a time, nothing
 * else while a snapshot runs, nothing at all once the VM is stopping. api.c serves it over
 * HTTP and binds it to a struct vm; unit tests bind it to a fake. docs/api.md. */
#pragma once

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Larger request bodies are refused (413) unread. */
#define API_BODY_MAX (64 * 1024)

struct api_vm_ops {
	/* Returns once every vCPU is parked (or the VM is stopping). */
	void (*pause)(void *vm);
	void (*resume)(void *vm);
	/* Pause, save to dir, leave paused; 0, or -1 with hearth_err set. May take seconds. */
	int (*snapshot)(void *vm, const char *dir);
	/* Ask the VM to end with status 0; returns at once. */
	void (*shutdown)(void *vm);
	bool (*stopping)(void *vm);
	unsigned (*cpus)(void *vm);
	uint64_t (*memory)(void *vm);
	/* GET /devices: a new JSON array, or NULL with hearth_err set. */
	struct json_object *(*devices)(void *vm);
};

struct api_ctl {
	const struct api_vm_ops *ops;
	void *vm;
	/* held across pause, resume and the start and end of a snapshot, never across the
	 * save itself: GET and a second snapshot (409) are answered meanwhile */
	pthread_mutex_t lock;
	atomic_bool paused;	  /* by a client */
	atomic_bool snapshotting; /* a save is running */
};

struct api_reply {
	unsigned status;
	struct json_object *body; /* always set: the answer, or {"error": "..."} */
	const char *allow;	  /* for 405: the methods the path takes */
};

void api_ctl_init(struct api_ctl *c, const struct api_vm_ops *ops, void *vm);
void api_ctl_destroy(struct api_ctl *c);

/* One request. body may be NULL when len is 0; it need not be NUL-terminated. The caller
 * owns reply->body (json_object_put). */
void api_handle(struct api_ctl *c, const char *method, const char *path, const char *body,
		size_t len, struct api_reply *reply);
