# Supervised baseline: the tiny Mask2Former trained on the labeled toy images.
#   python tools/make_toy_dataset.py --out data/toy
#   mim train mmdet configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py
_base_ = [
    '../_base_/models/mask2former_r18_toy.py',
    '../_base_/datasets/toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)
