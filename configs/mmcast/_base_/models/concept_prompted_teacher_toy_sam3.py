# The toy concept-prompted teacher (a tiny SAM 3) as base variables
# (toy_sam3, toy_sam3_class_prompts, ...), not as ``model``: a stage config
# puts them into a CASTDistiller's student while inheriting the data, hooks
# and schedule of another stage config (two bases must not both define
# ``model``), like box_prompted_teacher_toy_gdino-sam2.py.
# configs/mmcast/toy/teacher_sam3-tiny_toy.py builds its model from these, so
# the checkpoints of all its stages are interchangeable.
#
# The tiny BPE vocabulary and SAM 3 checkpoint are read from the folder named
# by the environment variable MMCAST_TINY_TEACHERS (default
# work_dirs/tiny_teachers), written (idempotently) by
#   python -m mmcast.toy.tiny_sam3 --out work_dirs/tiny_teachers
toy_tiny_teachers_root = '{{$MMCAST_TINY_TEACHERS:work_dirs/tiny_teachers}}'

# a tiny Sam3Image: 112-px input, ViT 32-d x 2 blocks, d_model 32, one
# encoder and one decoder layer, 20 queries, a 1-layer text encoder
toy_sam3 = dict(
    arch=dict(
        image_size=112,
        pretrain_image_size=56,
        vit_embed_dim=32,
        vit_depth=2,
        vit_num_heads=2,
        vit_mlp_ratio=2.0,
        vit_window_size=4,
        vit_global_blocks=(1, ),
        vit_drop_path_rate=0.0,
        d_model=32,
        num_heads=2,
        text_width=32,
        text_layers=1,
        text_heads=2,
        text_context_length=16,
        vocab_size=1024,
        encoder_layers=1,
        decoder_layers=1,
        ffn_dim=64,
        dropout=0.0,
        num_queries=20,
        scoring_ffn_dim=64,
        geometry_layers=1,
        geometry_ffn_dim=64),
    checkpoint=toy_tiny_teachers_root + '/sam3_tiny.pt',
    bpe_path=toy_tiny_teachers_root + '/sam3_tiny_bpe.txt.gz',
    prompt_batch_size=8)
# a class's instances are the union over its prompts
toy_sam3_class_prompts = dict(
    rider=['rider', 'cyclist'], motorcycle=['motorcycle', 'motorbike'])
toy_sam3_score_thr = 0.3
# SAM 3's normalisation (mmcast.models.teachers.sam3_teacher.
# SAM3_DATA_PREPROCESSOR); a CASTDistiller training the teacher (stage 1b)
# wraps it in its MultiBranchDataPreprocessor
toy_sam3_data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True)
toy_sam3_nms_iou_thr = 0.7
toy_sam3_max_per_img = 20

# Stage-1 adaptation of the trainable parts (DETR-style decoder, dot-product
# scoring, segmentation head; ConceptPromptedTeacher freezes the rest):
# AdamW, gradient clipping. The frozen parts get lr 0 as well (custom_keys
# match substrings, so the names work with or without a CASTDistiller's
# "student." prefix); replaces the schedule's optimiser wholesale.
toy_sam3_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'sam3_model.backbone': dict(lr_mult=0., decay_mult=0.),
            'sam3_model.geometry_encoder': dict(lr_mult=0., decay_mult=0.),
            'sam3_model.transformer.encoder': dict(
                lr_mult=0., decay_mult=0.),
            'query_embed': dict(decay_mult=0.),
        }))
