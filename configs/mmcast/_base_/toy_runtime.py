# MMDetection's default runtime, iteration-based logging/checkpointing for
# the short toy schedules, gloo for multi-process runs on CPU.
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=500,
        max_keep_ckpts=2, save_last=True))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# device_ids=None lets DDP wrap CPU modules too (MMEngine's default passes
# [LOCAL_RANK], which DDP accepts for GPU modules only).
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None)
