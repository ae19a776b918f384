# CAST's teacher (paper): MM-Grounding-DINO Swin-L prompted with the 8
# Cityscapes thing classes ("person. rider. car. ...", score > 0.3) gives
# boxes; SAM 2.1 Hiera-L turns each box into one mask (box prompt,
# multimask_output=False). Masks/labels/scores/boxes come out at the original
# resolution in the dataset's class order.
#
# Local files (nothing is downloaded at run time):
#   checkpoints/bert-base-uncased/   Hugging Face folder of bert-base-uncased
#       (`huggingface-cli download bert-base-uncased --local-dir checkpoints/bert-base-uncased`)
#   checkpoints/sam2.1_hiera_large.pt
#       (https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt)
#   checkpoints/grounding_dino_swin-l_pretrain_all-56d69e78.pth  (zero-shot) or
#   the stage-1 adapted Grounding-DINO (configs/mmcast/teachers/adapt_grounding_dino_cityscapes.py)
#       (`mim download mmdet --config grounding_dino_swin-l_pretrain_all --dest checkpoints`)
#
# The checkpoint given to `mim test` / tools/pseudo_label.py may be a plain
# Grounding-DINO checkpoint (zoo or adapted): BoxPromptedTeacher loads it into
# its detector and keeps SAM 2 from `sam2.checkpoint`.
#   mim test mmdet configs/mmcast/teachers/grounding_dino_sam2_cityscapes.py \
#       --checkpoint checkpoints/grounding_dino_swin-l_pretrain_all-56d69e78.pth
_base_ = [
    'mmdet::_base_/datasets/cityscapes_instance.py',
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
class_names = ('person', 'rider', 'car', 'truck', 'bus', 'train',
               'motorcycle', 'bicycle')

model = dict(
    type='BoxPromptedTeacher',
    # MMDetection's own MM-Grounding-DINO Swin-L model config, made offline:
    # local BERT, no ImageNet-pretrained download, no fairscale checkpointing.
    detector='mmdet::mm_grounding_dino/grounding_dino_swin-l_pretrain_all.py',
    detector_cfg_options={
        'language_model.name': lang_model_name,
        'backbone.init_cfg': None,
        'encoder.num_cp': 0,
    },
    detector_checkpoint=None,  # loaded from the checkpoint argument
    sam2=dict(
        config_file='configs/sam2.1/sam2.1_hiera_l.yaml',
        checkpoint=sam2_checkpoint,
        box_batch_size=64),
    classes=class_names,
    score_thr=0.3,
    max_per_img=100,
    image_source='auto')

# Grounding-DINO's own test transform (pillow decoding, shorter side 800).
# SAM 2 re-reads the original image from img_path at full resolution.
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
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# inference only: MMEngine's Runner (mim test) wants the dataloader, loop
# and evaluator (optimiser) of each of train / val / test all set or all None
train_dataloader = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
