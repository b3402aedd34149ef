/* Whole-VM checkpoints: the configuration that built the VM, guest RAM, every vCPU, the
 * in-kernel interrupt controllers, timer and clock, and every device, in one directory
 * (docs/checkpoint-format.md). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct vm;
struct vm_config;

/* Pause the VM (a no-op when it already is), wait until no device has I/O in flight, and
 * save everything into dir. The new checkpoint replaces dir as a whole only once all of it
 * is on disk, so a failed or killed save leaves the previous one as it was. The VM is left
 * paused: the caller resumes or stops it. 0, or -1 with hearth_err set. */
int vm_snapshot(struct vm *vm, const char *dir);

struct vm_restore_opts {
	const char *serial; /* replaces the saved "serial" setting; NULL keeps it */
};

/* Validate the checkpoint in dir, rebuild the VM it describes into vm (cfg is filled and
 * belongs to the caller, to free after vm_destroy) and load every saved state. Nothing runs:
 * on success the caller starts it with vm_run. 0, or an exit status (EXIT_CONFIG for a bad
 * or mismatched checkpoint, EXIT_HOST for a host failure) with hearth_err naming the
 * context and key; vm needs vm_destroy either way once vm_restore got as far as creating it
 * (*created tells). */
int vm_restore(struct vm *vm, const char *dir, const struct vm_restore_opts *opts,
	       struct vm_config *cfg, bool *created);

/* SIGUSR2 (until the control API exists): snapshot into vm->snap_sig_dir, then resume,
 * stop (exit status 0) or stay paused, as vm->snap_sig_then says. */
enum { VMSNAP_THEN_RESUME, VMSNAP_THEN_STOP, VMSNAP_THEN_PAUSE };
void vmsnap_on_signal(struct vm *vm);
/* "DIR[,resume|stop|pause]" (the HEARTH_SNAPSHOT_ON_SIGUSR2 variable) into vm's fields. */
int vmsnap_signal_setup(struct vm *vm, const char *spec);

/* The memory file: guest RAM at offset 0 (holes where the guest never wrote), then one
 * page of trailer that ties it to its state file. */
#define VMSNAP_MEM_TRAILER 4096u
#define VMSNAP_ID_LEN 16
