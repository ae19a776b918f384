# The CAST student schedule on ADE20K (spec "Student schedule"): as
# cast_90k.py (AdamW, wd 0.1, poly 0.9, backbone lr x0.1, clip 0.01, AMP,
# batch 8 in total) with lr 1e-4 over 160k iterations.
_base_ = './cast_90k.py'

max_iters = 160000
val_interval = 5000

train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = dict(end=max_iters)
