# MMDetection's default runtime with iteration-based logging and
# checkpointing for the real-size CAST schedules: a checkpoint every 5000
# iterations, the last 3 kept plus the final one (work_dirs/<config>/
# iter_<N>.pth, which the next stage loads). NCCL for multi-GPU runs (the
# mmdet default); on CPU use --cfg-options env_cfg.dist_cfg.backend=gloo.
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=5000,
        max_keep_ckpts=3, save_last=True),
    # the random states with each checkpoint: a run resumed on a CPU ends as
    # one never stopped (mmcast/engine/hooks/random_state_hook.py)
    random_state=dict(type='RandomStateHook'),
    # CityScapesMetric without an outfile_prefix writes its files into
    # <work_dir>/cityscapes_metric/results/: two runs never share the folder
    # (mmcast/engine/hooks/metric_output_hook.py)
    metric_output=dict(type='MetricOutputHook'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
# MMEngine's Runner with the square-root lr rule for auto_scale_lr
# (--auto-scale-lr), a refusal of a semi-supervised batch that leaves a source
# without an image, and the run's global batch and lr in the log
# (mmcast/engine/batch_scaled_runner.py).
runner_type = 'BatchScaledRunner'

# Logging backends (MMEngine's vis_backends). LocalVisBackend, always on,
# writes <work_dir>/<timestamp>/vis_data/scalars.json, which the pipeline's
# progress lines and tools/analysis/plot_pipeline.py read. Off by default:
# TensorBoard (pip install tensorboard) or Weights & Biases (pip install
# wandb) as well, in a config that inherits this one:
#   visualizer = dict(vis_backends={{_base_.tensorboard_vis_backends}})
#   visualizer = dict(vis_backends={{_base_.wandb_vis_backends}})
tensorboard_vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend')
]
wandb_vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='WandbVisBackend', init_kwargs=dict(project='mmcast'))
]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
