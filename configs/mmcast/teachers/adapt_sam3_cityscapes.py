# CAST stage 1a with the concept-prompted teacher on Cityscapes: adapt the
# released SAM 3 (sam3_cityscapes.py, the same model and prompts) to the
# labeled split D_l (10 % labels, seed 1: tools/split_semi.py ... --out-dir
# data/cityscapes/annotations/semi). ConceptPromptedTeacher.loss trains its
# default parts, the DETR-style decoder (with the presence token and box
# head), the dot-product scoring and the segmentation head; the vision, text,
# geometry and fusion encoders stay frozen (and in eval mode).
#   mim train mmdet configs/mmcast/teachers/adapt_sam3_cityscapes.py \
#       --launcher pytorch --gpus 4
# The result is a teacher checkpoint for sam3_cityscapes.py
# (`mim test ... --checkpoint work_dirs/adapt_sam3_cityscapes/iter_2000.pth`).
#
# Local files (nothing is downloaded at run time; see sam3_cityscapes.py):
#   checkpoints/sam3.pt, read by `load_from`: the released layout
#       ({'model': {'detector.*': ...}}) loads into the teacher as it is
#       (tracker keys dropped), so the model is built without it
#       (sam3.checkpoint=None) and the weights are not read twice;
#   checkpoints/bpe_simple_vocab_16e6.txt.gz
#
# Schedule (our choice, not yet run on GPUs): 4 GPUs x 2 images = 8 per
# iteration, 2000 iterations (about 54 epochs of the ~300 images of D_l;
# only the decoder side trains, so far fewer than the Mask2Former teacher's
# 10000), AdamW lr 5e-5 (the CAST teacher's), weight decay 0.01, 100
# iterations of linear warm-up then poly decay, gradient clipping at 0.1;
# bf16 autocast inside the teacher (sam3.autocast), so a plain OptimWrapper.
# Square 1024x1024 training crops of the frame resized by 1.0-2.0: SAM 3
# sees a square (1008 px), as the 1024x1024 tiles it labels at test time.
_base_ = [
    '../_base_/datasets/semi_cityscapes_instance.py',
    '../_base_/cast_runtime.py',
    '../_base_/models/concept_prompted_teacher_sam3_cityscapes.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

# sam3_cityscapes.py's model, built without weights (they come from
# load_from)
model = dict(sam3=dict(checkpoint=None))
load_from = {{_base_.sam3_checkpoint}}

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomResize',
        scale={{_base_.image_scale}},
        ratio_range=(1.0, 2.0),
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=(1024, 1024),
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        by_mask=True,
        keep_empty=False),
    dict(type='PackDetInputs')
]
# D_l only, with ground truth: the labeled-only loader of the dataset base
train_dataloader = dict(
    _delete_=True,
    **dict(
        _base_.supervised_dataloader,
        dataset=dict(_base_.supervised_dataset, pipeline=train_pipeline)))
# SAM 3 re-reads the original image (sam3_cityscapes.py)
test_pipeline = {{_base_.sam3_test_pipeline}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 2000
val_interval = 500
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# The frozen parts get lr 0 as well (as the toy SAM 3 teacher stages).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, weight_decay=0.01),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'sam3_model.backbone': dict(lr_mult=0., decay_mult=0.),
            'sam3_model.geometry_encoder': dict(lr_mult=0., decay_mult=0.),
            'sam3_model.transformer.encoder': dict(
                lr_mult=0., decay_mult=0.),
            'query_embed': dict(decay_mult=0.),
        }))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
        end=100),
    dict(
        type='PolyLR',
        eta_min=0,
        power=0.9,
        begin=100,
        end=max_iters,
        by_epoch=False)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)

default_hooks = dict(
    checkpoint=dict(interval=val_interval, max_keep_ckpts=1, save_last=True))
