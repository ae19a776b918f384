# Copyright (c) mmcast contributors. All rights reserved.
"""Convert an official DINOv2 checkpoint to mmcast's DINOv2MultiLevel names.

The official facebookresearch/dinov2 checkpoints (e.g.
``dinov2_vits14_pretrain.pth``) use timm-like names; ``DINOv2MultiLevel`` is
mmpretrain's ``VisionTransformer`` and uses mmpretrain's names::

    cls_token                    -> cls_token
    pos_embed (1, 1+37*37, C)    -> pos_embed
    mask_token                   -> (dropped: only used for iBOT training)
    patch_embed.proj.*           -> patch_embed.projection.*
    blocks.{i}.norm1.*           -> layers.{i}.ln1.*
    blocks.{i}.attn.qkv.*        -> layers.{i}.attn.qkv.*
    blocks.{i}.attn.proj.*       -> layers.{i}.attn.proj.*
    blocks.{i}.ls1.gamma         -> layers.{i}.attn.gamma1.weight
    blocks.{i}.norm2.*           -> layers.{i}.ln2.*
    blocks.{i}.mlp.fc1.*         -> layers.{i}.ffn.layers.0.0.*
    blocks.{i}.mlp.fc2.*         -> layers.{i}.ffn.layers.1.*
    blocks.{i}.mlp.w12.* / w3.*  -> layers.{i}.ffn.w12.* / w3.*  (ViT-g SwiGLU)
    blocks.{i}.ls2.gamma         -> layers.{i}.ffn.gamma2.weight
    norm.*                       -> ln1.*
    head.*                       -> (dropped)

Chunked checkpoints (``blocks.{chunk}.{i}.*``, ``block_chunks > 0``) are
handled too. Register-token models (``*_reg4``) are not supported by
mmpretrain's ViT and raise an error.

The output has backbone-level keys (no prefix); load it with
``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)``, or write it
with ``--prefix backbone.`` and use ``prefix='backbone.'`` like mmpretrain's
own DINOv2 checkpoints (which need no conversion).

Usage::

    python tools/model_converters/dinov2_to_mmcast.py \
        dinov2_vits14_pretrain.pth checkpoints/dinov2_vits14_mmcast.pth
"""
import argparse
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict

import torch

_BLOCK_RE = re.compile(r'^blocks\.(?:\d+\.)?(\d+)\.(.+)$')

_BLOCK_MAP = [
    ('norm1.', 'ln1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('mlp.w12.', 'ffn.w12.'),
    ('mlp.w3.', 'ffn.w3.'),
]

_DROPPED = ('mask_token', 'head.')
_STRIP_PREFIXES = ('module.', 'backbone.', 'teacher.backbone.')


def _unwrap(checkpoint) -> Dict[str, torch.Tensor]:
    """Return the tensor dict of a raw or wrapped checkpoint."""
    if isinstance(checkpoint, dict):
        for key in ('state_dict', 'model', 'teacher'):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                return _unwrap(checkpoint[key])
    return checkpoint


def convert_dinov2(state_dict: Dict[str, torch.Tensor]) -> OrderedDict:
    """Map official DINOv2 ViT keys to mmpretrain ViT / DINOv2MultiLevel.

    Args:
        state_dict (dict): Official checkpoint (optionally wrapped in
            ``state_dict``/``model``/``teacher`` and/or with ``module.``,
            ``backbone.`` or ``teacher.backbone.`` prefixes).

    Returns:
        OrderedDict: Tensors under the backbone's own parameter names.

    Raises:
        KeyError: On keys it does not know (e.g. ``register_tokens``), so
            that nothing is silently lost.
    """
    state_dict = _unwrap(state_dict)
    new_ckpt = OrderedDict()
    for key, value in state_dict.items():
        for p in _STRIP_PREFIXES:
            if key.startswith(p):
                key = key[len(p):]
                break
        if key.startswith(_DROPPED):
            continue
        if key in ('cls_token', 'pos_embed'):
            new_key = key
        elif key.startswith('patch_embed.proj.'):
            new_key = key.replace('patch_embed.proj.',
                                  'patch_embed.projection.')
        elif key.startswith('norm.'):
            new_key = 'ln1.' + key[len('norm.'):]
        elif key.startswith('blocks.'):
            m = _BLOCK_RE.match(key)
            if m is None:
                raise KeyError(f'Unrecognised DINOv2 block key: {key}')
            idx, rest = m.group(1), m.group(2)
            if rest == 'ls1.gamma':
                rest = 'attn.gamma1.weight'
            elif rest == 'ls2.gamma':
                rest = 'ffn.gamma2.weight'
            else:
                for src, dst in _BLOCK_MAP:
                    if rest.startswith(src):
                        rest = dst + rest[len(src):]
                        break
                else:
                    raise KeyError(f'Unrecognised DINOv2 block key: {key}')
            new_key = f'layers.{idx}.{rest}'
        else:
            raise KeyError(
                f'Unsupported DINOv2 key: {key} (register-token models and '
                'non-ViT checkpoints are not supported)')
        if new_key in new_ckpt:
            raise KeyError(f'Duplicate target key {new_key} (from {key})')
        new_ckpt[new_key] = value
    return new_ckpt


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert an official DINOv2 checkpoint to mmcast '
        '(DINOv2MultiLevel / mmpretrain VisionTransformer) key names.')
    parser.add_argument('src', help='official checkpoint, e.g. '
                        'dinov2_vits14_pretrain.pth')
    parser.add_argument('dst', help='output path')
    parser.add_argument(
        '--prefix',
        default='',
        help="prefix prepended to every key, e.g. 'backbone.' to load with "
        "init_cfg prefix='backbone.'; default: none")
    return parser.parse_args()


def main():
    args = parse_args()
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    weight = convert_dinov2(checkpoint)
    if args.prefix:
        weight = OrderedDict(
            (args.prefix + k, v) for k, v in weight.items())
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'  # never leave a half-written checkpoint
    torch.save(dict(state_dict=weight), tmp)
    os.replace(tmp, args.dst)
    print(f'Converted {len(weight)} tensors: {args.src} -> {args.dst}')


if __name__ == '__main__':
    main()
