# CAST stage 1 for the Grounding-DINO part of the teacher: fine-tune
# MM-Grounding-DINO Swin-L on the labeled Cityscapes split D_l with the 8
# class names as the text prompt (AdamW 5e-5, weight decay 0.01, language
# model frozen, backbone lr x0.1). The result replaces the zoo weights as the
# checkpoint of configs/mmcast/teachers/grounding_dino_sam2_cityscapes.py.
# Plain MMDetection training (this config is MMDetection's own Cityscapes
# fine-tuning recipe with the Swin-L model of grounding_dino_swin-l_pretrain_all):
#   mim train mmdet configs/mmcast/teachers/adapt_grounding_dino_cityscapes.py \
#       --launcher pytorch --gpus 8
# Local files: checkpoints/bert-base-uncased/ (see grounding_dino_sam2_cityscapes.py)
# and checkpoints/grounding_dino_swin-l_pretrain_all-56d69e78.pth.
_base_ = 'mmdet::mm_grounding_dino/cityscapes/grounding_dino_swin-t_finetune_8xb4_50e_cityscapes.py'
# mmcast's AtomicCheckpointHook: checkpoints written whole or not at all
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)
# mmcast's runner: its config text is not reformatted by yapf (seconds a run)
runner_type = 'BatchScaledRunner'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     random_state=dict(type='RandomStateHook'))

lang_model_name = 'checkpoints/bert-base-uncased'
# D_l: the labeled split of every Cityscapes stage (the published perc_10
# list, written by tools/split_semi.py as in
# configs/mmcast/_base_/datasets/semi_cityscapes_instance.py)
labeled_ann_file = 'annotations/semi/instancesonly_filtered_gtFine_train.1@perc_10.json'  # noqa: E501
num_levels = 5

model = dict(
    num_feature_levels=num_levels,
    language_model=dict(name=lang_model_name),
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        pretrain_img_size=384,
        embed_dims=192,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=True,  # torch.utils.checkpoint, no extra package
        convert_weights=True,
        frozen_stages=-1,
        init_cfg=None),  # all weights come from `load_from`
    neck=dict(in_channels=[192, 384, 768, 1536], num_outs=num_levels),
    encoder=dict(
        num_cp=0,  # >0 needs fairscale's checkpoint_wrapper
        layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels))),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels))))

train_dataloader = dict(dataset=dict(dataset=dict(ann_file=labeled_ann_file)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, weight_decay=0.01),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            # longest key matches first: 'language_model' before 'backbone'
            # (the BERT lives under language_model.language_backbone)
            'language_model': dict(lr_mult=0., decay_mult=0.),
            'backbone': dict(lr_mult=0.1),
        }))

load_from = 'checkpoints/grounding_dino_swin-l_pretrain_all-56d69e78.pth'
