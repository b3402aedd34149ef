/* Checkpoint ops shared by every char backend (their private state begins with struct
 * char_be). A backend is rebuilt from the saved configuration, so it reconnects by the path
 * that names it; what the checkpoint keeps is the output it had taken from the frontend but
 * not yet written, sent first after a restore so the guest's output has no gap. */
#pragma once

#include "hearth/checkpoint.h"
#include "hearth/device.h"

int char_be_save_op(struct hearth_dev *dev, struct hearth_ckpt *ck);
int char_be_load_op(struct hearth_dev *dev, struct hearth_ckpt *ck);
/* Give a consumer up to a second to take the queued output, so little is left to save (and
 * nothing is sent twice when the VM stops after the snapshot). */
int char_be_quiesce_op(struct hearth_dev *dev);
