#pragma once

#include <stdio.h>

#include "dev/machine.h"

void machine_print(struct hearth_vm *m, FILE *out);
void classes_print(FILE *out);
