# MMDetection's default runtime with iteration-based logging and
# checkpointing for the real-size CAST schedules: a checkpoint every 5000
# iterations, the last 3 kept plus the final one (work_dirs/<config>/
# iter_<N>.pth, which the next stage loads). NCCL for multi-GPU runs (the
# mmdet default); on CPU use --cfg-options env_cfg.dist_cfg.backend=gloo.
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=5000,
        max_keep_ckpts=3, save_last=True))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='nccl'))
