# Copyright (c) mmcast contributors. All rights reserved.
"""A tiny, randomly initialised but *real* SAM 3 teacher that builds offline.

The released SAM 3 needs a 3.4 GB gated checkpoint and a BPE vocabulary
that its wheel does not ship. This module writes everything a
:class:`ConceptPromptedTeacher` needs into a local folder, using the very
same ``sam3`` classes:

* ``sam3_tiny_bpe.txt.gz``: a CLIP-format BPE merges file (gzip) whose
  merges spell the toy prompt words; any other text still tokenises into
  byte-level symbols;
* ``sam3_tiny.pt``: a tiny ``Sam3Image`` (112-px input, ViT 32-d with 2
  blocks, d_model 32, 1 encoder / 1 decoder layer, 20 queries, a 1-layer
  text encoder) in the released checkpoint layout
  (``{'model': {'detector.<key>': ...}}``);
* ``teacher_sam3-tiny.pth``: a full teacher checkpoint (MMEngine format with
  ``meta.dataset_meta``) whose scoring is calibrated so that random weights
  still score instances above the toy threshold.

Command line (idempotent, same folder as ``tiny_teachers``)::

    python -m mmcast.toy.tiny_sam3 --out work_dirs/tiny_teachers
"""
import argparse
import copy
import gzip
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import torch

from mmcast.utils.atomic_io import atomic_dump_json, atomic_open

from .tiny_teachers import (CITYSCAPES_CLASSES, DEFAULT_ROOT, assets_current,
                            quiet_mmengine_logger, save_atomically,
                            save_teacher_checkpoint, seeded)

BPE_FILENAME = 'sam3_tiny_bpe.txt.gz'
SAM3_FILENAME = 'sam3_tiny.pt'
TEACHER_FILENAME = 'teacher_sam3-tiny.pth'
STAMP_FILENAME = 'tiny_sam3.json'

#: prompts of the toy teacher beyond the class names
TINY_CLASS_PROMPTS = dict(
    rider=['rider', 'cyclist'], motorcycle=['motorcycle', 'motorbike'])
TINY_SAM3_ARCH = dict(
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
    geometry_ffn_dim=64,
)
TINY_SCORE_THR = 0.3


def _prompt_words(classes: Sequence[str], class_prompts: dict) -> list:
    words = []
    texts = list(classes) + [t for v in class_prompts.values() for t in v]
    for text in texts:
        for w in text.lower().replace('_', ' ').split():
            if w.isalpha() and w not in words:
                words.append(w)
    return words


def write_tiny_bpe(path: str, words: Sequence[str]) -> str:
    """Write a CLIP-format BPE merges file (gzip) that spells ``words``.

    Each word gets the left-to-right chain of merges ``w o``, ``wo r``,
    ... ``wor d</w>`` (shared prefixes are merged once), so that
    ``SimpleTokenizer`` encodes it as one token.
    """
    merges = []
    for word in words:
        symbols = list(word[:-1]) + [word[-1] + '</w>']
        while len(symbols) > 1:
            merge = f'{symbols[0]} {symbols[1]}'
            if merge not in merges:
                merges.append(merge)
            symbols = [symbols[0] + symbols[1]] + symbols[2:]
    text = '#version: mmcast tiny\n' + '\n'.join(merges) + '\n'
    with atomic_open(path, 'wb') as f:
        f.write(gzip.compress(text.encode('utf-8'), mtime=0))
    return path


def tiny_sam3_cfg(root: str = DEFAULT_ROOT,
                  checkpoint: Optional[str] = 'default') -> dict:
    """The ``sam3`` argument of :class:`ConceptPromptedTeacher` (tiny)."""
    if checkpoint == 'default':
        checkpoint = osp.join(root, SAM3_FILENAME)
    return dict(
        arch=dict(TINY_SAM3_ARCH),
        checkpoint=checkpoint,
        bpe_path=osp.join(root, BPE_FILENAME),
        prompt_batch_size=8)


def tiny_concept_prompted_teacher_cfg(
        root: str = DEFAULT_ROOT,
        classes: Sequence[str] = CITYSCAPES_CLASSES,
        sam3_checkpoint: Optional[str] = 'default',
        **kwargs) -> dict:
    """Model config of the tiny SAM 3 teacher (paths into ``root``).

    ``sam3_checkpoint=None`` keeps SAM 3 randomly initialised; ``kwargs``
    override :class:`ConceptPromptedTeacher` arguments.
    """
    from mmcast.models.teachers.sam3_teacher import SAM3_DATA_PREPROCESSOR
    prompts = {k: v for k, v in TINY_CLASS_PROMPTS.items() if k in classes}
    cfg = dict(
        type='ConceptPromptedTeacher',
        sam3=tiny_sam3_cfg(root, sam3_checkpoint),
        classes=tuple(classes),
        class_prompts=prompts,
        score_thr=TINY_SCORE_THR,
        nms_iou_thr=0.7,
        max_per_img=20,
        data_preprocessor=copy.deepcopy(SAM3_DATA_PREPROCESSOR))
    cfg.update(kwargs)
    return cfg


def calibrate_tiny_sam3(model: torch.nn.Module, offset: float = 0.5,
                        presence_bias: float = 3.0) -> None:
    """Let a random SAM 3 score some queries above the toy threshold.

    The dot-product score of a query is ``hs_proj(q) . prompt_proj(t) /
    sqrt(d)``; constant biases ``b`` on both projections add ``|b|^2 /
    sqrt(d)`` = ``offset`` to every logit (the query-dependent part keeps
    the spread); the presence head's output bias makes ``sigmoid(presence)``
    about 0.95.
    """
    scoring = model.dot_prod_scoring
    d = scoring.hs_proj.out_features
    value = (offset * d**0.5 / d)**0.5
    scoring.hs_proj.bias.data.fill_(value)
    scoring.prompt_proj.bias.data.fill_(value)
    model.transformer.decoder.presence_token_head.layers[-1].bias.data.fill_(
        presence_bias)


def build_tiny_sam3_assets(root: str = DEFAULT_ROOT,
                           classes: Sequence[str] = CITYSCAPES_CLASSES,
                           seed: int = 0,
                           force: bool = False) -> Dict[str, str]:
    """Write the tiny BPE, tiny SAM 3 and a tiny teacher checkpoint.

    Idempotent: nothing is rewritten when ``root`` already holds assets made
    for the same classes and seed (unless ``force``); files are written
    atomically.

    Returns:
        dict: ``root``, ``bpe_path``, ``sam3_checkpoint``,
        ``teacher_checkpoint`` (absolute paths).
    """
    root = osp.abspath(root)
    paths = dict(
        root=root,
        bpe_path=osp.join(root, BPE_FILENAME),
        sam3_checkpoint=osp.join(root, SAM3_FILENAME),
        teacher_checkpoint=osp.join(root, TEACHER_FILENAME))
    stamp_file = osp.join(root, STAMP_FILENAME)
    stamp = dict(classes=list(classes), seed=seed, version=1)
    if not force and assets_current(paths, stamp_file, stamp):
        return paths
    os.makedirs(root, exist_ok=True)
    write_tiny_bpe(paths['bpe_path'],
                   _prompt_words(classes, TINY_CLASS_PROMPTS))

    from mmcast.models.teachers.sam3_building import build_sam3_image
    with seeded(seed):
        model = build_sam3_image(TINY_SAM3_ARCH, paths['bpe_path'])
    calibrate_tiny_sam3(model)
    released = {
        'detector.' + k: v.detach().clone()
        for k, v in model.state_dict().items()
    }
    save_atomically({'model': released}, paths['sam3_checkpoint'])

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope

    import mmcast  # noqa: F401  (registers ConceptPromptedTeacher)
    register_all_modules(init_default_scope=False)
    cfg = tiny_concept_prompted_teacher_cfg(root, classes)
    with DefaultScope.overwrite_default_scope('mmdet'), \
            quiet_mmengine_logger():
        teacher = MODELS.build(cfg)
    save_teacher_checkpoint(teacher, paths['teacher_checkpoint'], classes)
    atomic_dump_json(stamp, stamp_file)
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=DEFAULT_ROOT)
    parser.add_argument('--classes', nargs='+', default=CITYSCAPES_CLASSES)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true')
    args = parser.parse_args(argv)
    paths = build_tiny_sam3_assets(args.out, args.classes, args.seed,
                                   args.force)
    for k, v in paths.items():
        print(f'{k}: {v}')


if __name__ == '__main__':
    main()
