/* The only way devices reach guest memory: every range is checked against guest RAM,
 * including wrap-around, before a host pointer is handed out. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hearth_vm;

/* Host pointer for [gpa, gpa+len) when the whole range is RAM of one slot, else NULL. */
void *hearth_gpa_ptr(struct hearth_vm *vm, uint64_t gpa, uint64_t len);
/* 0 on success, -1 when any byte is outside guest RAM (nothing is copied then). */
int hearth_gpa_read(struct hearth_vm *vm, uint64_t gpa, void *buf, size_t len);
int hearth_gpa_write(struct hearth_vm *vm, uint64_t gpa, const void *buf, size_t len);
