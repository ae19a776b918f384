# The tiny Mask2Former trained with L_sup + λ_pxl · L_pxl (CAST's
# instance-aware pixel-wise contrastive loss, λ_pxl = 0.1) on the labeled toy
# images; T is annealed 0.3 → 0.07. Logs loss_pxl, pxl_margin (Δ) and
# pxl_fnr (false-negative rate of the sampled negatives).
#   mim train mmdet configs/mmcast/toy/cast_mask2former_r18_1xb4-1500it_toy.py
_base_ = [
    '../_base_/models/cast_mask2former_r18_toy.py',
    '../_base_/datasets/toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

custom_hooks = [dict(type='ContrastTemperatureHook', start=0.3, end=0.07)]
