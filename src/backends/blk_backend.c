/* What every blk backend does to join its disk: find the frontend named by "frontend". */
#include "hearth/blk.h"
#include "hearth/device.h"

int hearth_blk_backend_attach(struct hearth_dev *be, struct hearth_cfg *cfg,
			      const struct hearth_blk_info *info,
			      const struct hearth_blk_backend_ops *ops, void *opaque,
			      const struct hearth_blk_frontend_ops **fe_ops, void **fe)
{
	const char *fe_id;
	const void *o;
	void *f;

	if (hearth_cfg_str(cfg, "frontend", NULL, &fe_id) < 0)
		return -1;
	if (!fe_id)
		return hearth_err("key 'frontend' is missing: name the disk device (e.g. a "
				  "virtio-blk id) this backend serves");
	if (hearth_frontend_connect(be, fe_id, HEARTH_FE_BLK, &o, &f) < 0)
		return -1;
	const struct hearth_blk_frontend_ops *fops = o;
	if (fops->attach(f, info, ops, opaque) < 0)
		return hearth_err_prefix("frontend '%s'", fe_id);
	*fe_ops = fops;
	*fe = f;
	return 0;
}
