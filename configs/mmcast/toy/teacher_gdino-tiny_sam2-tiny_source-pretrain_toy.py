# θ_T^0 of the box-prompted toy pipeline (tools/cast_pipeline.py toy
# --teacher gdino-sam2): the tiny Grounding-DINO + tiny SAM 2 teacher of
# teacher_gdino-tiny_sam2-tiny_toy.py, both parts trained from their random
# weights on the separate, domain-shifted toy corpus, so that its zero-shot
# accuracy on the target toy data is imperfect (the analogue of
# mask2former_r34_source-pretrain_toy.py). In the same run:
# * the Grounding-DINO learns the corpus' boxes and classes (BERT frozen);
# * the SAM 2 (image encoder, prompt encoder, mask decoder) learns
#   class-agnostically to turn a box into its object's mask: every
#   ground-truth box of the corpus is a prompt, with SAM 2's own focal / dice /
#   IoU losses (SAM2BoxPromptLoss): the stand-in for SAM 2.1's pre-training,
#   which the random tiny model lacks.
# The adaptation stages (1a, 1b) then train the Grounding-DINO only and keep
# this SAM 2 frozen, as the paper keeps the released SAM 2.1.
#   python tools/make_toy_dataset.py --out data/toy_source --style source
#   python -m mmcast.toy.tiny_teachers --out work_dirs/tiny_teachers
#   mim train mmdet configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_source-pretrain_toy.py
_base_ = './teacher_gdino-tiny_sam2-tiny_toy.py'

model = dict(
    sam2_trainable=('image_encoder', 'sam_prompt_encoder', 'sam_mask_decoder'))
# A pre-training recipe, not the adaptation's (lr 1e-4, backbone x0.1): from
# random weights, after 1000 iterations at the adaptation's settings the
# Grounding-DINO reached 12.4 box AP on the source val split and SAM 2 from
# the exact boxes 0.11 mean mask IoU; every part now learns at lr 5e-4
# (the BERT stays frozen: its random embeddings name the classes).
optim_wrapper = dict(
    optimizer=dict(lr=5e-4),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}))

data_root = 'data/toy_source/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=data_root + 'annotations/instancesonly_filtered_gtFine_val.json',
    metric=['bbox', 'segm'])
test_evaluator = val_evaluator

max_iters = 4000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
