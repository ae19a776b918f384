# Copyright (c) mmcast contributors. All rights reserved.
"""Load Microsoft-format Swin-V2 checkpoints into mmpretrain's backbone.

The SimMIM and ImageNet Swin-V2 weights released by Microsoft (the
Swin-Transformer and SimMIM repositories, and the ``swin_v2_base_simmim.pth``
that SwinMTL and MIM-Depth-Estimation start from) name and lay out their
parameters differently from mmpretrain's :class:`SwinTransformerV2`.
:func:`swinv2_microsoft_to_mmpretrain` converts such a state dict, and the
checkpoint scheme ``microsoft-swinv2://`` applies it while loading, so that
a config points the backbone at the downloaded file as it is::

    backbone=dict(
        type='mmpretrain.SwinTransformerV2', arch='base',
        window_size=[22, 22, 22, 11],
        pretrained_window_sizes=[12, 12, 12, 6],
        init_cfg=dict(
            type='Pretrained',
            checkpoint='microsoft-swinv2://pretrain/swin_v2_base_simmim.pth'))

A checkpoint already in mmpretrain's layout (mmpretrain's own Swin-V2
classifiers) loads without the scheme:
``init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.')``.
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional

from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
from torch import Tensor

#: Checkpoint path prefix that converts a Microsoft-format Swin-V2 file.
MICROSOFT_SWINV2_SCHEME = 'microsoft-swinv2://'

# Keys that mmpretrain recomputes (buffers) or that only pre-training uses.
_DROPPED = re.compile(r'(^|\.)(relative_coords_table|relative_position_index'
                      r'|attn_mask|mask_token)$|^head\.')
_BLOCK = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.(.+)$')
_DOWNSAMPLE = re.compile(r'^layers\.(\d+)\.downsample\.(.+)$')
_BLOCK_RENAMES = (
    ('attn.rpe_mlp.', 'attn.w_msa.cpb_mlp.'),  # SimMIM's name of the CPB MLP
    ('attn.', 'attn.w_msa.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
)


def unfold_reduction_order(weight: Tensor) -> Tensor:
    """Reorder a patch-merging ``reduction`` weight for ``nn.Unfold``.

    Microsoft's patch merging concatenates the four pixels of every 2×2
    patch as ``[x(0,0), x(1,0), x(0,1), x(1,1)]`` (row, column), each with all
    ``C`` channels, whereas mmpretrain's ``nn.Unfold`` yields channel-major
    ``c * 4 + row * 2 + column``.

    Args:
        weight (Tensor): ``(C_out, 4 * C)`` in Microsoft's order.

    Returns:
        Tensor: ``(C_out, 4 * C)`` in ``nn.Unfold``'s order.
    """
    out_channels, in_channels = weight.shape
    weight = weight.reshape(out_channels, 4, in_channels // 4)
    # unfold position (row * 2 + column) -> Microsoft's slot
    weight = weight[:, [0, 2, 1, 3], :]
    return weight.transpose(1, 2).reshape(out_channels, in_channels)


def _state_dict_of(checkpoint: Mapping) -> Mapping[str, Tensor]:
    """The parameters of a loaded checkpoint, without the SimMIM wrapper."""
    for key in ('model', 'state_dict', 'module'):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    if any(k.startswith('encoder.') for k in checkpoint):
        # SimMIM stores the backbone as ``encoder.`` beside its decoder
        checkpoint = {
            k[len('encoder.'):]: v
            for k, v in checkpoint.items() if k.startswith('encoder.')
        }
    return checkpoint


def swinv2_microsoft_to_mmpretrain(
        checkpoint: Mapping,
        num_stages: Optional[int] = None) -> 'OrderedDict[str, Tensor]':
    """Convert a Microsoft-format Swin-V2 state dict to mmpretrain's keys.

    Accepts the loaded file as it is (``{'model': ...}``, optionally with
    SimMIM's ``encoder.`` prefix) or a bare state dict. Renames
    ``patch_embed.proj`` → ``patch_embed.projection``,
    ``layers.i.blocks.j`` → ``stages.i.blocks.j`` (``attn`` →
    ``attn.w_msa``, ``cpb_mlp``/``rpe_mlp`` → ``cpb_mlp``, ``mlp.fc1/fc2`` →
    ``ffn.layers.0.0/1``), moves the patch merging that ends stage ``i``
    (``layers.i.downsample``) to the start of stage ``i + 1`` with its
    ``reduction`` weight reordered (:func:`unfold_reduction_order`), and the
    final ``norm`` to ``norm{num_stages - 1}`` (the output norm of the last
    stage). Drops buffers that mmpretrain recomputes, the classifier
    ``head`` and SimMIM's ``mask_token``; other keys keep their name, so
    that loading reports them as unexpected.

    Args:
        checkpoint (Mapping): A loaded Microsoft-format checkpoint.
        num_stages (int, optional): Number of stages; inferred from the
            ``layers.i`` keys when None. Defaults to None.

    Returns:
        OrderedDict[str, Tensor]: State dict for mmpretrain's
        :class:`SwinTransformerV2`.
    """
    state_dict = _state_dict_of(checkpoint)
    if num_stages is None:
        stages = {int(m.group(1)) for m in map(_BLOCK.match, state_dict) if m}
        if not stages:
            raise ValueError(
                'not a Microsoft-format Swin-V2 checkpoint: no '
                f'"layers.<i>.blocks.<j>." keys among {list(state_dict)[:8]}')
        num_stages = max(stages) + 1
    converted: Dict[str, Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if _DROPPED.search(key):
            continue
        block = _BLOCK.match(key)
        downsample = _DOWNSAMPLE.match(key)
        if block:
            stage, index, rest = block.groups()
            for old, new in _BLOCK_RENAMES:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            key = f'stages.{stage}.blocks.{index}.{rest}'
        elif downsample:
            stage, rest = downsample.groups()
            if rest == 'reduction.weight':
                value = unfold_reduction_order(value)
            key = f'stages.{int(stage) + 1}.downsample.{rest}'
        elif key.startswith('patch_embed.proj.'):
            key = 'patch_embed.projection.' + key[len('patch_embed.proj.'):]
        elif key.startswith('norm.'):
            key = f'norm{num_stages - 1}.' + key[len('norm.'):]
        converted[key] = value
    return converted


@CheckpointLoader.register_scheme(prefixes=MICROSOFT_SWINV2_SCHEME)
def load_from_microsoft_swinv2(filename: str,
                          map_location: Optional[str] = None) -> dict:
    """Checkpoint loader of ``microsoft-swinv2://<local path>``.

    Loads the file with ``torch.load(weights_only=True)`` and converts it
    with :func:`swinv2_microsoft_to_mmpretrain`.

    Args:
        filename (str): ``microsoft-swinv2://`` followed by a local path.
        map_location (str, optional): As in :func:`torch.load`.

    Returns:
        dict: ``{'state_dict': converted state dict}``.
    """
    path = filename[len(MICROSOFT_SWINV2_SCHEME):]
    try:
        checkpoint = load_from_local(path, map_location=map_location)
    except FileNotFoundError:
        raise
    except Exception as err:  # UnpicklingError and others of torch.load
        raise RuntimeError(
            f'cannot load the Swin-V2 checkpoint {path} with '
            f'torch.load(weights_only=True): {err}. If the file is trusted '
            'and holds pickled objects besides tensors (e.g. a training '
            "config), keep only its 'model' entry: torch.save(torch.load("
            "path, weights_only=False)['model'], new_path).") from err
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'Swin-V2 checkpoint {path} holds a '
                        f'{type(checkpoint).__name__}, not a dict')
    return {'state_dict': swinv2_microsoft_to_mmpretrain(checkpoint)}

