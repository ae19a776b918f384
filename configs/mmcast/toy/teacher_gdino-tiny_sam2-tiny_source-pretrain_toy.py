# θ_T^0 of the box-prompted toy pipeline (tools/cast_pipeline.py toy
# --teacher gdino-sam2): the tiny Grounding-DINO + tiny SAM 2 teacher of
# teacher_gdino-tiny_sam2-tiny_toy.py with its Grounding-DINO part trained on
# the separate, domain-shifted toy corpus, so that its zero-shot accuracy on
# the target toy data is imperfect (the analogue of
# mask2former_r34_source-pretrain_toy.py). SAM 2 stays frozen at its random
# weights: the masks are only as good as a random SAM 2 makes them.
#   python tools/make_toy_dataset.py --out data/toy_source --style source
#   python -m mmcast.toy.tiny_teachers --out work_dirs/tiny_teachers
#   mim train mmdet configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_source-pretrain_toy.py
_base_ = './teacher_gdino-tiny_sam2-tiny_toy.py'

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
