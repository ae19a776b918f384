# Guided Distillation's Cityscapes data: the semi-supervised split of
# semi_cityscapes_instance.py (D_l: GD's published 10 % list; the unlabeled
# pool: all 2975 train images; 1:1 per batch) with GD's sampling of the
# labeled side. Every Cityscapes GD config inherits it, whatever the student.
_base_ = './semi_cityscapes_instance.py'

# GD's labeled side in the semi-supervised phase: repeat factor sampling
# (LVIS's) with threshold t = 10, through MMEngine's ClassBalancedDataset.
# f(c): share of the labeled images holding class c; r(c) = max(1,
# sqrt(t / f(c))); an image is listed ceil(max_c r(c)) times over its
# classes. As t > 1 >= f(c), every class is "rare": every image is listed
# at least ceil(sqrt(10)) = 4 times and the draw weights each image by
# 1 / sqrt(f) of its rarest class. GD's sampler rounds r stochastically
# per epoch (expected count r); ClassBalancedDataset rounds up, which
# shifts an image's weight by less than a factor 1 + 1 / sqrt(10) = 1.32.
labeled_repeat_thr = 10.0
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            type='ClassBalancedDataset',
            oversample_thr=labeled_repeat_thr,
            dataset=dict(
                type={{_base_.dataset_type}},
                data_root={{_base_.data_root}},
                ann_file={{_base_.labeled_ann_file}},
                data_prefix=dict(img={{_base_.train_img_prefix}}),
                filter_cfg=dict(filter_empty_gt=True, min_size=0),
                pipeline={{_base_.sup_pipeline}},
                backend_args={{_base_.backend_args}})),
        {{_base_.unlabeled_pool_dataset}},
    ]))
