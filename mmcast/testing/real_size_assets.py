# Copyright (c) mmcast contributors. All rights reserved.
"""Random-weight stand-ins of the real-size checkpoints the configs read.

The real-size configs name zoo checkpoints (``checkpoints/...``) that are
gigabytes to download. For smoke runs (``tools/smoke_real_configs.py``)
this module writes files of the same architectures and formats with random
weights, nothing downloaded:

* :func:`write_teacher0`: MMDetection's Mask2Former Swin-L COCO-panoptic
  model (θ_T^0 of stage 1a, a member of the ensemble teacher), MMEngine
  format;
* :func:`write_bert_base`: a bert-base-shaped BERT folder (768-d, 12
  layers) with a small vocabulary holding the class-name words;
* :func:`write_grounding_dino_swin_l`: MM-Grounding-DINO Swin-L
  (``grounding_dino_swin-l_pretrain_all``), MMEngine format, its
  classification bias raised so that random scores are not all ~0;
* :func:`write_sam2_hiera_l`: SAM 2.1 Hiera-L in the official format
  (``{'model': state_dict}``);
* :func:`write_sam3` and :func:`write_sam3_bpe`: the SAM 3 image model
  (ViT-L/14, 840.5M parameters) in the released layout
  (``{'model': {'detector.<key>': ...}}``), its floating-point weights in
  float16 (1.7 GB instead of 3.4 GB; both loaders cast them to the model's
  float32), and a CLIP-format BPE vocabulary that spells the prompt words
  (a few hundred tokens; the text encoder keeps its 49408-token table);
* :func:`write_dinov3_vit`: a timm DINOv3 ViT as
  ``tools/model_converters/dinov3_to_mmcast.py`` writes it
  (``{'state_dict': {'vit.<key>': ...}}``).

Every writer is idempotent (an existing file is kept) and seeded.
"""
import os
import os.path as osp
from typing import Optional, Sequence

import torch

from mmcast.toy.tiny_sam3 import write_tiny_bpe
from mmcast.toy.tiny_teachers import (calibrate_tiny_detector,
                                      quiet_mmengine_logger, save_atomically,
                                      seeded, write_tiny_bert)

#: MMDetection's config of the zoo checkpoint that stage 1a starts from.
TEACHER0_CONFIG = ('mmdet::mask2former/mask2former_swin-l-p4-w12-384-in21k_'
                   '16xb1-lsj-100e_coco-panoptic.py')
GROUNDING_DINO_CONFIG = (
    'mmdet::mm_grounding_dino/grounding_dino_swin-l_pretrain_all.py')
SAM2_CONFIG = 'configs/sam2.1/sam2.1_hiera_l.yaml'
BERT_BASE_SIZES = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512)


def _build_mmdet_model(config: str, cfg_options: dict, seed: int):
    """Build ``model`` of an mmdet config (with options), weights random."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope

    from mmcast.models.teachers.utils import load_model_cfg
    register_all_modules(init_default_scope=False)
    cfg = load_model_cfg(config, cfg_options)
    with seeded(seed), DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg)
        with quiet_mmengine_logger():
            model.init_weights()
    return model


def _save(model: torch.nn.Module, path: str) -> None:
    """MMEngine checkpoint format, without dataset meta (as the zoo's)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_atomically(dict(meta=dict(), state_dict=state), path)


def _done(path: str) -> bool:
    if osp.exists(path):
        return True
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    return False


def write_teacher0(path: str, num_queries: Optional[int] = None,
                   seed: int = 0) -> str:
    """Random weights of MMDetection's Mask2Former Swin-L (COCO panoptic).

    The architecture of the zoo checkpoint that stage 1a starts from: its
    133-class classifier does not fit the stage's head and is skipped with
    a size-mismatch warning, as with the real weights. ``num_queries``
    (default: the config's 200) must match the configs that load it.
    """
    if _done(path):
        return path
    options = {'backbone.init_cfg': None}
    if num_queries is not None:
        options['panoptic_head.num_queries'] = num_queries
    model = _build_mmdet_model(TEACHER0_CONFIG, options, seed)
    _save(model, path)
    return path


def write_bert_base(out_dir: str, classes: Sequence[str],
                    seed: int = 0) -> str:
    """A bert-base-shaped BERT folder whose vocabulary has ``classes``."""
    if osp.isfile(osp.join(out_dir, 'config.json')):
        return out_dir
    return write_tiny_bert(out_dir, classes, seed=seed, **BERT_BASE_SIZES)


def write_grounding_dino_swin_l(path: str, bert_dir: str,
                                num_queries: Optional[int] = None,
                                seed: int = 0) -> str:
    """Random MM-Grounding-DINO Swin-L (``language_model.name=bert_dir``).

    ``num_queries`` (default: the config's 900) must match the configs that
    load it; it must not exceed the number of encoder tokens (the sum of
    the feature map sizes), e.g. 100 for 64x128 inputs.
    """
    if _done(path):
        return path
    options = {
        'language_model.name': bert_dir,
        'backbone.init_cfg': None,
        'encoder.num_cp': 0,
    }
    if num_queries is not None:
        options['num_queries'] = num_queries
    model = _build_mmdet_model(GROUNDING_DINO_CONFIG, options, seed)
    calibrate_tiny_detector(model)
    _save(model, path)
    return path


def write_sam2_hiera_l(path: str, seed: int = 0) -> str:
    """Random SAM 2.1 Hiera-L as ``{'model': state_dict}`` (official)."""
    if _done(path):
        return path
    from mmcast.models.teachers.sam2_builder import build_sam2_model
    with seeded(seed):
        model = build_sam2_model(SAM2_CONFIG, None)
    save_atomically({'model': model.state_dict()}, path)
    return path


def write_sam3_bpe(path: str, prompts: Sequence[str]) -> str:
    """A CLIP-format BPE vocabulary (gzip) spelling the words of
    ``prompts``; other text tokenises into byte-level symbols."""
    if _done(path):
        return path
    words = []
    for prompt in prompts:
        for word in prompt.lower().replace('_', ' ').split():
            if word.isalpha() and word not in words:
                words.append(word)
    return write_tiny_bpe(path, words)


def write_sam3(path: str, bpe_path: str, arch: Optional[dict] = None,
               seed: int = 0) -> str:
    """Random SAM 3 image model in the released layout, float16 weights.

    ``arch`` (overrides of ``SAM3_ARCH``) must match the configs that load
    it: ``image_size`` sets the RoPE tables of the global attention blocks
    (complex buffers, kept as they are).
    """
    if _done(path):
        return path
    from mmcast.models.teachers.sam3_building import build_sam3_image
    with seeded(seed):
        model = build_sam3_image(arch, bpe_path)
    state = {
        'detector.' + k: v.half() if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }
    save_atomically({'model': state}, path)
    return path


def write_dinov3_vit(path: str, arch: str, seed: int = 0) -> str:
    """Random timm DINOv3 ViT (``arch``) in mmcast's converted format."""
    if _done(path):
        return path
    import timm
    with seeded(seed):
        vit = timm.create_model(arch, pretrained=False)
    state = {'vit.' + k: v for k, v in vit.state_dict().items()}
    save_atomically(dict(state_dict=state), path)
    return path
