# CAST's teacher for ADE20K instance segmentation (100 thing classes):
# MM-Grounding-DINO Swin-L + SAM 2.1 Hiera-L, see
# grounding_dino_sam2_cityscapes.py for the local files it needs.
# The 100 class names do not fit into BERT's 256 tokens at once: the prompt
# is split into chunks of 40 names (Grounding-DINO's `chunked_size`, as in
# MMDetection's LVIS configs), which needs batch size 1.
#   mim test mmdet configs/mmcast/teachers/grounding_dino_sam2_ade20k.py \
#       --checkpoint checkpoints/grounding_dino_swin-l_pretrain_all-56d69e78.pth
_base_ = [
    'mmdet::_base_/datasets/ade20k_instance.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)
# mmcast's runner: its config text is not reformatted by yapf (seconds a run)
runner_type = 'BatchScaledRunner'
# checkpoints written whole or not at all
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     random_state=dict(type='RandomStateHook'))

lang_model_name = 'checkpoints/bert-base-uncased'
sam2_checkpoint = 'checkpoints/sam2.1_hiera_large.pt'

model = dict(
    type='BoxPromptedTeacher',
    detector='mmdet::mm_grounding_dino/grounding_dino_swin-l_pretrain_all.py',
    detector_cfg_options={
        'language_model.name': lang_model_name,
        'backbone.init_cfg': None,
        'encoder.num_cp': 0,
        'test_cfg.chunked_size': 40,
    },
    detector_checkpoint=None,
    sam2=dict(
        config_file='configs/sam2.1/sam2.1_hiera_l.yaml',
        checkpoint=sam2_checkpoint,
        box_batch_size=64),
    # ADE20KInstanceDataset.METAINFO['classes'] (100 names, dataset order)
    classes='ADE20KInstanceDataset',
    score_thr=0.3,
    max_per_img=100,
    image_source='auto')

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None,
         imdecode_backend='pillow'),
    dict(type='FixScaleResize', scale=(800, 1333), keep_ratio=True,
         backend='pillow'),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
val_dataloader = dict(batch_size=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# inference only: MMEngine's Runner (mim test) wants the dataloader, loop
# and evaluator (optimiser) of each of train / val / test all set or all None
train_dataloader = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(metric=['segm'])
test_evaluator = val_evaluator
