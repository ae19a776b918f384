# A concept-prompted teacher: the released SAM 3 prompted with the
# Cityscapes thing classes, tiled and merged
# (_base_/models/concept_prompted_teacher_sam3_cityscapes.py).
#
# Local files (nothing is downloaded at run time):
#   checkpoints/sam3.pt  (gated: accept the licence of facebook/sam3, then
#       `huggingface-cli download facebook/sam3 sam3.pt --local-dir checkpoints`)
#   checkpoints/bpe_simple_vocab_16e6.txt.gz  (not in the sam3 wheel; the same
#       file ships with open_clip_torch as open_clip/bpe_simple_vocab_16e6.txt.gz)
#
#   mim test mmdet configs/mmcast/teachers/sam3_cityscapes.py \
#       --checkpoint checkpoints/sam3.pt
# (the released file loads into the teacher as it is; a checkpoint of an
# adapted teacher works as well).
_base_ = [
    'mmdet::_base_/datasets/cityscapes_instance.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/models/concept_prompted_teacher_sam3_cityscapes.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)
# mmcast's runner: its config text is not reformatted by yapf (seconds a run)
runner_type = 'BatchScaledRunner'
# checkpoints written whole or not at all
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     random_state=dict(type='RandomStateHook'))

test_pipeline = {{_base_.sam3_test_pipeline}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# inference only: MMEngine's Runner (mim test) wants the dataloader, loop
# and evaluator (optimiser) of each of train / val / test all set or all None
train_dataloader = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
