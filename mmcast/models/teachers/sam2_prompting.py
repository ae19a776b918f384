# Copyright (c) mmcast contributors. All rights reserved.
"""SAM 2 from the ``sam2`` package as a box-prompted mask decoder.

What :class:`~mmcast.models.teachers.BoxPromptedTeacher` needs of a built
SAM 2 (:func:`~mmcast.models.teachers.build_sam2_model`), for its predictions
and for the training of SAM 2 itself
(:class:`~mmcast.models.teachers.SAM2BoxPromptLoss`): SAM 2's own image
transform, the image embeddings and the decoding of box prompts. The calls
are those of ``sam2.sam2_image_predictor`` (no memory: one image at a time,
``no_mem_embed`` added to the lowest-resolution map).
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# SAM 2's own input normalisation (sam2.utils.transforms.SAM2Transforms).
SAM2_MEAN = (0.485, 0.456, 0.406)
SAM2_STD = (0.229, 0.224, 0.225)
# The submodules that turn an image and a box into a mask; the memory
# modules serve videos only.
SAM2_IMAGE_PARTS = ('image_encoder', 'sam_prompt_encoder', 'sam_mask_decoder')


def sam2_input(images: List[Tensor], size: int) -> Tensor:
    """SAM 2's transform of RGB images (3, H, W) in [0, 255] (any size).

    As ``SAM2Transforms``: [0, 1] scaling, antialiased bilinear resize to the
    square ``size``, ImageNet normalisation (applied here in [0, 255] units).

    Returns:
        Tensor: (B, 3, size, size) float.
    """
    batch = [
        F.interpolate(
            image[None].float(), (size, size),
            mode='bilinear',
            align_corners=False,
            antialias=True) for image in images
    ]
    x = torch.cat(batch)
    mean = x.new_tensor(SAM2_MEAN).view(3, 1, 1) * 255
    std = x.new_tensor(SAM2_STD).view(3, 1, 1) * 255
    return (x - mean) / std


def sam2_image_features(model: nn.Module, x: Tensor) -> dict:
    """Image embeddings of SAM 2 for box prompts (no memory).

    Args:
        model: a ``SAM2Base``.
        x: (B, 3, S, S), :func:`sam2_input`'s output.

    Returns:
        dict: ``image_embed`` (B, C, S/16, S/16) and ``high_res_feats``, a
        list of the finer maps (B, C_i, S/4, S/4), (B, C_j, S/8, S/8).
    """
    backbone_out = model.forward_image(x)
    _, feats, _, sizes = model._prepare_backbone_features(backbone_out)
    if model.directly_add_no_mem_embed:
        feats[-1] = feats[-1] + model.no_mem_embed
    maps = [
        f.permute(1, 2, 0).reshape(len(x), -1, *hw)
        for f, hw in zip(feats, sizes)
    ]
    return dict(image_embed=maps[-1], high_res_feats=maps[:-1])


def image_features_of(feats: dict, index: int) -> dict:
    """The :func:`sam2_image_features` of one image of the batch."""
    return dict(
        image_embed=feats['image_embed'][index:index + 1],
        high_res_feats=[f[index:index + 1] for f in feats['high_res_feats']])


def decode_box_prompts(model: nn.Module,
                       feats: dict,
                       boxes: Tensor,
                       all_tokens: bool = False,
                       image_index: Optional[Tensor] = None
                       ) -> Tuple[Tensor, Tensor]:
    """SAM 2's mask decoder for box prompts, in one call.

    Args:
        model: a ``SAM2Base``.
        feats: :func:`image_features_of` one image, or (with
            ``image_index``) :func:`sam2_image_features` of B images.
        boxes: (N, 4) xyxy boxes in the pixels of SAM 2's square input.
        all_tokens: return the outputs of all mask tokens (the single-mask
            token first, then the ``num_multimask_outputs`` others; for
            training); else the decoder's own single-mask selection
            (``multimask_output=False``, with the stability fallback of the
            post-processing when the model has it).
        image_index: (N, ) long, the image of ``feats`` each box is on:
            the boxes of several images decoded together, each on its own
            image's features (the values SAM 2's repetition of one image's
            features gives it alone).

    Returns:
        tuple: low-resolution mask logits (N, K, S/4, S/4) and predicted
        IoUs (N, K); K = 1 unless ``all_tokens``.
    """
    n = len(boxes)
    coords = boxes.reshape(n, 2, 2)
    labels = torch.tensor([[2, 3]], dtype=torch.int,
                          device=boxes.device).repeat(n, 1)
    sparse, dense = model.sam_prompt_encoder(
        points=(coords, labels), boxes=None, masks=None)
    image_embed, high_res = feats['image_embed'], feats['high_res_feats']
    if image_index is not None:
        image_embed = image_embed[image_index]
        high_res = [f[image_index] for f in high_res]
    decoder = model.sam_mask_decoder
    args = dict(
        image_embeddings=image_embed,
        image_pe=model.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        repeat_image=image_index is None and n > 1,
        high_res_features=high_res)
    if all_tokens:
        masks, iou_pred, _, _ = decoder.predict_masks(**args)
    else:
        masks, iou_pred, _, _ = decoder(multimask_output=False, **args)
    return masks, iou_pred
