# The hooks of the semi-supervised CAST stages (1b adapt_teacher_selftrain,
# 2 distill), dataset-independent part. A stage config completes the first
# hook with its own out_file and its dataset's D_u:
#   custom_hooks = [
#       dict(_base_.custom_hooks[0], out_file=pseudo_label_file,
#            unlabeled_dataset=_base_.unlabeled_dataset),
#       *_base_.custom_hooks[1:]]
# tools/cast_pipeline.py sets PseudoLabelHook's out_file (found by type, in
# any position). It labels D_u with the frozen teacher before
# training if pseudo_label_file is missing or stale (score > 0.3,
# <= 100 per image, masks at 0.5, painted without overlap).
# ContrastTemperatureHook anneals L_pxl's temperature T 0.3 -> 0.07.
custom_hooks = [
    dict(
        type='PseudoLabelHook',
        filter_cfg=dict(score_thr=0.3, max_per_image=100, mask_thr=0.5),
        batch_size=2),
    dict(type='ContrastTemperatureHook', start=0.3, end=0.07),
]
