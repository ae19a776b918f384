# Copyright (c) mmcast contributors. All rights reserved.
"""Tiny, randomly initialised but *real* VFM teachers that build offline.

The paper's teacher (MM-Grounding-DINO Swin-L + SAM 2.1 Hiera-L) needs
~2.5 GB of weights and a BERT from the model hub. For tests, the toy pipeline
and the demo this module writes everything a :class:`BoxPromptedTeacher`
needs into a local folder, using the very same classes:

* ``bert-tiny/``: a 1-layer, 32-d ``transformers`` BERT saved with
  ``save_pretrained`` and a small word-piece ``vocab.txt`` (the class words,
  '.', '?' and the special tokens), loadable by ``AutoTokenizer`` and
  mmdet's ``BertModel`` from the folder;
* ``sam2_tiny.pt``: a SAM 2 (``sam2.modeling.sam2_base.SAM2Base`` composed
  from the package's ``sam2.1_hiera_t.yaml`` with shrinking hydra overrides:
  Hiera 32-d / 5 blocks, 128-d neck and decoder, 128-px input) in the official
  checkpoint format (``{'model': state_dict}``);
* ``teacher_gdino-tiny_sam2-tiny.pth``: a full teacher checkpoint (MMEngine
  format with ``meta.dataset_meta``) of a tiny Grounding-DINO (ResNet-18 at
  1/8 width, one encoder/decoder layer with 64-d FFNs, 30 queries) whose
  contrastive classification bias is raised so that random weights still
  give scores above the 0.3 threshold, plus the tiny SAM 2.

Command line (idempotent)::

    python -m mmcast.toy.tiny_teachers --out work_dirs/tiny_teachers
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import torch

from mmcast.utils.atomic_io import atomic_dump_json, atomic_open

CITYSCAPES_CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train',
                      'motorcycle', 'bicycle')
DEFAULT_ROOT = 'work_dirs/tiny_teachers'
BERT_DIRNAME = 'bert-tiny'
SAM2_FILENAME = 'sam2_tiny.pt'
TEACHER_FILENAME = 'teacher_gdino-tiny_sam2-tiny.pth'
STAMP_FILENAME = 'tiny_teachers.json'

SAM2_TINY_CONFIG = 'configs/sam2.1/sam2.1_hiera_t.yaml'
SAM2_TINY_IMAGE_SIZE = 128
_E = 32  # Hiera embed dim
_D = 128  # SAM 2 hidden dim (neck, prompt encoder, mask decoder)
_M = 16  # memory dim
SAM2_TINY_OVERRIDES = (
    f'model.image_size={SAM2_TINY_IMAGE_SIZE}',
    f'model.image_encoder.trunk.embed_dim={_E}',
    'model.image_encoder.trunk.num_heads=2',
    'model.image_encoder.trunk.stages=[1,1,2,1]',
    'model.image_encoder.trunk.global_att_blocks=[3]',
    f'model.image_encoder.neck.d_model={_D}',
    f'model.image_encoder.neck.backbone_channel_list=[{8 * _E},{4 * _E},'
    f'{2 * _E},{_E}]',
    f'model.image_encoder.neck.position_encoding.num_pos_feats={_D}',
    f'model.memory_attention.d_model={_D}',
    'model.memory_attention.num_layers=1',
    f'model.memory_attention.layer.d_model={_D}',
    'model.memory_attention.layer.dim_feedforward=64',
    f'model.memory_attention.layer.self_attention.embedding_dim={_D}',
    'model.memory_attention.layer.self_attention.feat_sizes=[8,8]',
    f'model.memory_attention.layer.cross_attention.embedding_dim={_D}',
    'model.memory_attention.layer.cross_attention.feat_sizes=[8,8]',
    f'model.memory_attention.layer.cross_attention.kv_in_dim={_M}',
    f'model.memory_encoder.out_dim={_M}',
    f'++model.memory_encoder.in_dim={_D}',
    f'model.memory_encoder.position_encoding.num_pos_feats={_M}',
    f'++model.memory_encoder.mask_downsampler.embed_dim={_D}',
    f'model.memory_encoder.fuser.layer.dim={_D}',
    'model.memory_encoder.fuser.num_layers=1',
)

_BERT_BASE_VOCAB = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', '?',
                    ',', '-', 'a', 'the', 'of', 'and', '##s', '##er', '##ing')


def _words(classes: Sequence[str]) -> list:
    words = []
    for name in classes:
        for w in name.lower().replace('_', ' ').replace('-', ' - ').split():
            if w not in words:
                words.append(w)
    return words


def write_tiny_bert(out_dir: str,
                    classes: Sequence[str] = CITYSCAPES_CLASSES,
                    extra_words: Sequence[str] = (),
                    seed: int = 0,
                    hidden_size: int = 32,
                    num_hidden_layers: int = 1,
                    num_attention_heads: int = 2,
                    intermediate_size: int = 64,
                    max_position_embeddings: int = 256) -> str:
    """Write a tiny BERT (config, weights, tokenizer) into ``out_dir``.

    The vocabulary is always small (the class words, '.', '?', the special
    tokens); the sizes default to a 1-layer 32-d model. ``hidden_size=768,
    num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    max_position_embeddings=512`` gives a bert-base-shaped model.

    Returns:
        str: ``out_dir``, usable as ``language_model.name``.
    """
    from transformers import BertConfig, BertModel, BertTokenizer
    os.makedirs(out_dir, exist_ok=True)
    vocab = list(_BERT_BASE_VOCAB)
    for w in _words(classes) + list(extra_words):
        if w not in vocab:
            vocab.append(w)
    vocab_file = osp.join(out_dir, 'vocab.txt')
    with open(vocab_file, 'w', encoding='utf-8') as f:
        f.write('\n'.join(vocab) + '\n')
    BertTokenizer(vocab_file, do_lower_case=True).save_pretrained(out_dir)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings)
    with seeded(seed):
        BertModel(config, add_pooling_layer=False).save_pretrained(out_dir)
    return out_dir


def tiny_sam2_cfg(checkpoint: Optional[str] = None) -> dict:
    """The ``sam2`` argument of :class:`BoxPromptedTeacher` for tiny SAM 2."""
    return dict(
        config_file=SAM2_TINY_CONFIG,
        checkpoint=checkpoint,
        hydra_overrides=list(SAM2_TINY_OVERRIDES),
        box_batch_size=16)


def write_tiny_sam2_checkpoint(path: str, seed: int = 0) -> str:
    """Build the tiny SAM 2 and save it in the official checkpoint format."""
    from mmcast.models.teachers.sam2_builder import build_sam2_model
    with seeded(seed):
        model = build_sam2_model(
            SAM2_TINY_CONFIG, None, hydra_overrides=SAM2_TINY_OVERRIDES)
    save_atomically({'model': model.state_dict()}, path)
    return path


def tiny_grounding_dino_cfg(bert_dir: str, num_queries: int = 30,
                            max_per_img: int = 30) -> dict:
    """A tiny but complete mmdet ``GroundingDINO`` config.

    The transformer stays 256-d (mmdet's Grounding-DINO encoder hard-codes a
    256-d text position embedding); everything else is shrunk.
    """
    embed = 256
    return dict(
        type='GroundingDINO',
        num_queries=num_queries,
        with_box_refine=True,
        as_two_stage=True,
        num_feature_levels=3,
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_mask=False),
        language_model=dict(
            type='BertModel',
            name=bert_dir,
            max_tokens=256,
            pad_to_max=False,
            use_sub_sentence_represent=True,
            special_tokens_list=['[CLS]', '[SEP]', '.', '?'],
            add_pooling_layer=False),
        backbone=dict(
            type='ResNet',
            depth=18,
            base_channels=8,
            num_stages=4,
            out_indices=(1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=False),
            norm_eval=True,
            style='pytorch',
            init_cfg=None),
        neck=dict(
            type='ChannelMapper',
            in_channels=[16, 32, 64],
            kernel_size=1,
            out_channels=embed,
            act_cfg=None,
            bias=True,
            norm_cfg=dict(type='GN', num_groups=32),
            num_outs=3),
        encoder=dict(
            num_layers=1,
            num_cp=0,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=embed, num_levels=3, num_heads=8,
                    num_points=2, dropout=0.0),
                ffn_cfg=dict(
                    embed_dims=embed, feedforward_channels=64,
                    ffn_drop=0.0)),
            text_layer_cfg=dict(
                self_attn_cfg=dict(num_heads=4, embed_dims=embed,
                                   dropout=0.0),
                ffn_cfg=dict(
                    embed_dims=embed, feedforward_channels=64,
                    ffn_drop=0.0)),
            fusion_layer_cfg=dict(
                v_dim=embed, l_dim=embed, embed_dim=64, num_heads=4,
                init_values=1e-4)),
        decoder=dict(
            num_layers=1,
            return_intermediate=True,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed, num_heads=4,
                                   dropout=0.0),
                cross_attn_text_cfg=dict(
                    embed_dims=embed, num_heads=4, dropout=0.0),
                cross_attn_cfg=dict(
                    embed_dims=embed, num_levels=3, num_heads=8,
                    num_points=2, dropout=0.0),
                ffn_cfg=dict(
                    embed_dims=embed, feedforward_channels=64,
                    ffn_drop=0.0)),
            post_norm_cfg=None),
        positional_encoding=dict(
            num_feats=embed // 2, normalize=True, offset=0.0,
            temperature=20),
        bbox_head=dict(
            type='GroundingDINOHead',
            num_classes=256,
            embed_dims=embed,
            sync_cls_avg_factor=True,
            contrastive_cfg=dict(max_text_len=256, log_scale='auto',
                                 bias=True),
            loss_cls=dict(
                type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=5.0),
            loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
        dn_cfg=dict(
            label_noise_scale=0.5,
            box_noise_scale=1.0,
            group_cfg=dict(dynamic=True, num_groups=None,
                           num_dn_queries=10)),
        train_cfg=dict(
            assigner=dict(
                type='HungarianAssigner',
                match_costs=[
                    dict(type='BinaryFocalLossCost', weight=2.0),
                    dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                    dict(type='IoUCost', iou_mode='giou', weight=2.0)
                ])),
        test_cfg=dict(max_per_img=max_per_img))


def tiny_box_prompted_teacher_cfg(root: str = DEFAULT_ROOT,
                                  classes: Sequence[str] = CITYSCAPES_CLASSES,
                                  sam2_checkpoint: Optional[str] = 'default',
                                  **kwargs) -> dict:
    """Model config of a tiny Grounding-DINO + tiny SAM 2 teacher.

    Paths point into ``root`` (see :func:`build_tiny_teacher_assets`);
    ``sam2_checkpoint=None`` keeps SAM 2 randomly initialised. ``kwargs``
    override :class:`BoxPromptedTeacher` arguments (``score_thr`` ...).
    """
    if sam2_checkpoint == 'default':
        sam2_checkpoint = osp.join(root, SAM2_FILENAME)
    cfg = dict(
        type='BoxPromptedTeacher',
        detector=tiny_grounding_dino_cfg(osp.join(root, BERT_DIRNAME)),
        sam2=tiny_sam2_cfg(sam2_checkpoint),
        classes=tuple(classes),
        score_thr=0.3,
        max_per_img=20)
    cfg.update(kwargs)
    return cfg


def calibrate_tiny_detector(detector: torch.nn.Module,
                            bias: float = 0.5) -> None:
    """Raise the contrastive classification bias of a random Grounding-DINO.

    The head's bias starts at -4.6 (a 1% prior); with random weights every
    score would then be far below the 0.3 threshold. A bias near 0 makes
    random scores spread around 0.5 so that the teacher returns detections.
    """
    for branch in detector.bbox_head.cls_branches:
        if getattr(branch, 'bias', None) is not None:
            branch.bias.data.fill_(bias)


def build_tiny_teacher_assets(root: str = DEFAULT_ROOT,
                              classes: Sequence[str] = CITYSCAPES_CLASSES,
                              seed: int = 0,
                              force: bool = False) -> Dict[str, str]:
    """Write the tiny BERT, tiny SAM 2 and a tiny teacher checkpoint.

    Idempotent: nothing is rewritten when ``root`` already holds assets made
    for the same classes and seed (unless ``force``).

    Returns:
        dict: ``root``, ``bert_dir``, ``sam2_checkpoint``,
        ``teacher_checkpoint`` (absolute paths).
    """
    root = osp.abspath(root)
    paths = dict(
        root=root,
        bert_dir=osp.join(root, BERT_DIRNAME),
        sam2_checkpoint=osp.join(root, SAM2_FILENAME),
        teacher_checkpoint=osp.join(root, TEACHER_FILENAME))
    stamp_file = osp.join(root, STAMP_FILENAME)
    stamp = dict(classes=list(classes), seed=seed, version=3)
    if not force and assets_current(paths, stamp_file, stamp):
        return paths
    os.makedirs(root, exist_ok=True)
    write_tiny_bert(paths['bert_dir'], classes, seed=seed)
    write_tiny_sam2_checkpoint(paths['sam2_checkpoint'], seed=seed)

    import mmcast  # noqa: F401  (registers BoxPromptedTeacher)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope
    register_all_modules(init_default_scope=False)
    cfg = tiny_box_prompted_teacher_cfg(root, classes)
    with seeded(seed), DefaultScope.overwrite_default_scope('mmdet'):
        teacher = MODELS.build(cfg)
        # GroundingDINO allocates some parameters (level_embed, ...)
        # uninitialised: its init_weights must run before saving
        with quiet_mmengine_logger():
            teacher.detector.init_weights()

    calibrate_tiny_detector(teacher.detector)
    save_teacher_checkpoint(teacher, paths['teacher_checkpoint'], classes)
    atomic_dump_json(stamp, stamp_file)
    return paths


def save_teacher_checkpoint(model: torch.nn.Module, path: str,
                            classes: Sequence[str]) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = dict(
        meta=dict(dataset_meta=dict(classes=tuple(classes))),
        state_dict=state)
    save_atomically(ckpt, path)


def save_atomically(obj: dict, path: str) -> None:
    """``torch.save(obj)`` to ``path``, whole or not at all."""
    with atomic_open(path, 'wb') as f:
        torch.save(obj, f)


def assets_current(paths: Dict[str, str], stamp_file: str,
                   stamp: dict) -> bool:
    """Whether every file of ``paths`` exists and ``stamp_file`` (written
    last, when they are all made) records ``stamp``."""
    if not osp.isfile(stamp_file) or not all(
            osp.exists(p) for p in paths.values()):
        return False
    with open(stamp_file, encoding='utf-8') as f:
        return json.load(f) == stamp


class quiet_mmengine_logger:
    """Silence MMEngine's INFO logs (init_weights dumps every parameter)."""

    def __enter__(self):
        import logging

        from mmengine.logging import MMLogger
        self.logger = MMLogger.get_current_instance()
        self.level = self.logger.level
        self.logger.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)
        return False


class seeded:
    """Context manager: fixed torch RNG inside, previous state restored."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self.state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        torch.random.set_rng_state(self.state)
        return False


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=DEFAULT_ROOT)
    parser.add_argument('--classes', nargs='+', default=CITYSCAPES_CLASSES)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true')
    args = parser.parse_args(argv)
    paths = build_tiny_teacher_assets(args.out, args.classes, args.seed,
                                      args.force)
    for k, v in paths.items():
        print(f'{k}: {v}')


if __name__ == '__main__':
    main()
