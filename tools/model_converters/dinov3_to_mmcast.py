# Copyright (c) mmcast contributors. All rights reserved.
"""Convert a DINOv3 ViT checkpoint to mmcast's DINOv3MultiLevel names.

Reads Meta's released backbones (``dinov3_vits16_pretrain_*.pth``,
``dinov3_vits16plus_pretrain_*.pth``) or a timm DINOv3 state dict (e.g.
``vit_small_patch16_dinov3.lvd1689m``), maps the keys with timm's own
``timm.models.eva.checkpoint_filter_fn``::

    storage_tokens               -> reg_token
    blocks.{i}.ls1.gamma         -> blocks.{i}.gamma_1
    blocks.{i}.ls2.gamma         -> blocks.{i}.gamma_2
    blocks.{i}.mlp.w1/w2/w3.*    -> blocks.{i}.mlp.fc1_g/fc1_x/fc2.* (S+)
    mask_token, rope_embed.periods, blocks.{i}.attn.qkv.bias_mask
                                 -> (dropped)
    blocks.{i}.attn.qkv.bias     -> (dropped: all zero in the released
                                    S / S+ backbones, which timm builds
                                    without q/v biases)

checks that the result fills the timm model of ``--arch`` exactly (no
missing or unexpected key, same shapes) and writes it under ``vit.``
(``DINOv3MultiLevel``'s ViT) as ``{'state_dict': ...}``, atomically. Load
it with ``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)``.

Usage::

    python tools/model_converters/dinov3_to_mmcast.py \
        dinov3_vits16_pretrain_lvd1689m-08c60483.pth \
        checkpoints/dinov3_vits16_pretrain_mmcast.pth
"""
import argparse
import contextlib
import io
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, Optional

import timm
import torch
from timm.models.eva import checkpoint_filter_fn

from mmcast.utils import atomic_open

ARCH_S = 'vit_small_patch16_dinov3'
ARCH_SPLUS = 'vit_small_plus_patch16_dinov3'
VIT_PREFIX = 'vit.'  # DINOv3MultiLevel.vit
_WRAPPERS = ('state_dict', 'model', 'teacher')
_STRIP_PREFIXES = ('module.', 'backbone.')


def _unwrap(checkpoint) -> Dict[str, torch.Tensor]:
    """The tensor dict of a raw or wrapped checkpoint, prefixes stripped."""
    while isinstance(checkpoint, dict) and any(
            isinstance(checkpoint.get(k), dict) for k in _WRAPPERS):
        checkpoint = next(checkpoint[k] for k in _WRAPPERS
                          if isinstance(checkpoint.get(k), dict))
    out = OrderedDict()
    for key, value in checkpoint.items():
        for p in _STRIP_PREFIXES:
            if key.startswith(p):
                key = key[len(p):]
                break
        out[key] = value
    return out


def guess_arch(state_dict: Dict[str, torch.Tensor]) -> str:
    """S+ (SwiGLU FFN: ``mlp.w1`` / ``mlp.fc1_g``) or S."""
    swiglu = any('.mlp.w1.' in k or '.mlp.fc1_g.' in k for k in state_dict)
    return ARCH_SPLUS if swiglu else ARCH_S


def convert_dinov3(checkpoint,
                   arch: Optional[str] = None,
                   vit_cfg: Optional[dict] = None) -> OrderedDict:
    """Map a Meta / timm DINOv3 checkpoint to ``DINOv3MultiLevel`` keys.

    Args:
        checkpoint (dict): The loaded file (optionally wrapped in
            ``state_dict`` / ``model`` / ``teacher``, keys optionally
            prefixed ``module.`` or ``backbone.``).
        arch (str, optional): timm model name; default: guessed
            (:func:`guess_arch`).
        vit_cfg (dict, optional): Overrides of the timm model's arguments,
            as ``DINOv3MultiLevel(vit_cfg=...)``.

    Returns:
        OrderedDict: ``vit.``-prefixed tensors of the timm model.

    Raises:
        ValueError: The checkpoint does not fill the model (missing /
            unexpected keys, shape mismatch), or it has non-zero q / v
            biases that the model of ``arch`` cannot hold.
    """
    state_dict = _unwrap(checkpoint)
    arch = arch or guess_arch(state_dict)
    model = timm.create_model(
        arch, pretrained=False, num_classes=0, **(vit_cfg or {}))
    if getattr(model.blocks[0].attn, 'q_bias', None) is None:
        biased = [k for k, v in state_dict.items()
                  if k.endswith('attn.qkv.bias') and v.abs().max() > 0]
        if biased:
            raise ValueError(
                f'{biased[0]} is non-zero but {arch} has no q/v biases; '
                f'use the *_qkvb variant of {arch}')
    # timm prints a line for every bias it skips
    with contextlib.redirect_stdout(io.StringIO()):
        mapped = checkpoint_filter_fn(state_dict, model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    wrong = [
        f'{k}: {tuple(mapped[k].shape)} vs {tuple(expected[k].shape)}'
        for k in sorted(set(mapped) & set(expected))
        if mapped[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f'checkpoint does not match {arch}: missing {missing[:5]}, '
            f'unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}')
    return OrderedDict(
        (VIT_PREFIX + k, mapped[k].contiguous()) for k in expected)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a Meta / timm DINOv3 ViT checkpoint to mmcast '
        '(DINOv3MultiLevel) key names.')
    parser.add_argument('src', help='e.g. dinov3_vits16_pretrain_*.pth')
    parser.add_argument('dst', help='output path')
    parser.add_argument(
        '--arch', default=None, choices=[ARCH_S, ARCH_SPLUS],
        help='timm model (default: S+ if the FFN is SwiGLU, else S)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        print(f'checkpoint not found: {args.src}', file=sys.stderr)
        return 1
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    try:
        weight = convert_dinov3(checkpoint, args.arch)
    except ValueError as e:
        print(f'{args.src}: {e}', file=sys.stderr)
        return 1
    with atomic_open(args.dst, 'wb') as f:
        torch.save(dict(state_dict=weight), f)
    print(f'Converted {len(weight)} tensors: {args.src} -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
