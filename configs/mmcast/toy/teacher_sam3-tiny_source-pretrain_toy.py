# θ_T^0 of the concept-prompted toy pipeline: the tiny SAM 3 teacher of
# teacher_sam3-tiny_toy.py trained whole (vision and text encoders too: the
# stand-in for SAM 3's own large-scale pre-training, which the random tiny
# model lacks) on the separate, domain-shifted toy corpus, so that its
# zero-shot accuracy on the target toy data is imperfect (the analogue of
# mask2former_r34_source-pretrain_toy.py and
# teacher_gdino-tiny_sam2-tiny_source-pretrain_toy.py). Stages 1a / 1b then
# adapt the decoder and heads only, as for the released SAM 3.
#   python tools/make_toy_dataset.py --out data/toy_source --style source
#   python -m mmcast.toy.tiny_sam3 --out work_dirs/tiny_teachers
#   mim train mmdet configs/mmcast/toy/teacher_sam3-tiny_source-pretrain_toy.py
_base_ = './teacher_sam3-tiny_toy.py'

model = dict(
    trainable=('backbone', 'geometry_encoder', 'transformer',
               'dot_prod_scoring', 'segmentation_head'))
# every part learns (the toy teacher's optimiser freezes the encoders), from
# scratch: lr 6e-4, clip 1.0 (at the adaptation's 1e-4 / 0.1 the random tiny
# model predicted nothing above 0.3 after 300 iterations on the source corpus;
# with these, 8.6 mask AP at a 0.05 floor)
optim_wrapper = dict(
    optimizer=dict(lr=6e-4),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        custom_keys={
            'sam3_model.backbone': dict(lr_mult=1.0, decay_mult=1.0),
            'sam3_model.geometry_encoder': dict(lr_mult=1.0, decay_mult=1.0),
            'sam3_model.transformer.encoder': dict(
                lr_mult=1.0, decay_mult=1.0),
        }))

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

max_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
