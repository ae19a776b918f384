# Copyright (c) mmcast contributors. All rights reserved.
"""Faster eager inference of a trained detector, with the same predictions.

:func:`prepare_for_inference` applies, each optional and measured by
``tools/benchmark/inference.py`` against the plain model in one run:

* **fused attention**: MMCV's ``MultiheadAttention`` (Mask2Former's decoder,
  Grounding-DINO) calls ``nn.MultiheadAttention`` asking for the attention
  weights, which forces the unfused softmax(QKᵀ)V path; the weights are
  never used, so every ``nn.MultiheadAttention`` is switched to
  :class:`~mmcast.models.layers.FusedMultiheadAttention`, which does not
  return them and takes PyTorch's fused kernel. (The DINOv2 and Swin
  backbones already call ``scaled_dot_product_attention``.)
* **channels-last** memory format for the convolutions;
* **torch.compile** of the backbone and the pixel decoder (fixed shapes);
* ``mode='deploy'``: the whole predict as one static-shape graph in half
  precision (:mod:`mmcast.deploy.static_predict`).

:func:`inference_autocast` runs the network in fp16 (CUDA) or bf16 (CPU);
the lean fusion head computes scores, resampling and boxes in fp32.
"""
import contextlib
from typing import ContextManager, Optional, Sequence

import torch
from torch import nn

from mmcast.models.layers import FusedMultiheadAttention
from mmcast.utils.module_switch import switch_modules
from .static_predict import build_static_predictor, compile_predictor


def fuse_attention(model: nn.Module) -> int:
    """Switch every ``nn.MultiheadAttention`` of ``model`` (in place, same
    parameters) to :class:`FusedMultiheadAttention`.

    Returns:
        int: The number of modules switched.
    """
    return len(switch_modules(model, nn.MultiheadAttention,
                              FusedMultiheadAttention))


def prepare_for_inference(model: nn.Module,
                          fused_attention: bool = True,
                          channels_last: bool = False,
                          compile: bool = False,
                          mode: str = 'eager',
                          dtype: Optional[torch.dtype] = None,
                          input_size: Optional[Sequence[int]] = None
                          ) -> nn.Module:
    """Put a detector in eval mode with the chosen speed-ups.

    ``mode='deploy'`` returns instead the static one-graph predict of a
    Mask2Former (:func:`.build_static_predictor`: weights cast
    to ``dtype``, fp16 on CUDA and bf16 on the CPU by default, fixed
    ``input_size`` (H, W); with ``compile``, compiled as one graph), which
    maps uint8 images (B, H, W, 3) and their sizes (B, 2) to a fixed number
    of instances per image; ``model`` is cast in place.

    Args:
        model (nn.Module): An MMDetection detector (``extract_feat``;
            ``panoptic_head.pixel_decoder`` for Mask2Former).
        fused_attention (bool): See :func:`fuse_attention`. Defaults to True.
        channels_last (bool): Convolution weights in channels-last memory
            format (the data preprocessor's output is converted to match).
            Defaults to False.
        compile (bool): ``torch.compile`` the backbone and the pixel
            decoder (``mode='deploy'``: the whole predict). Defaults to
            False.
        mode (str): ``'eager'`` (the model, sped up) or ``'deploy'``.
        dtype (torch.dtype, optional): The deploy precision.
        input_size (Sequence[int], optional): The deploy canvas (H, W).

    Returns:
        nn.Module: The same model (``'eager'``) or its static predictor.
    """
    if mode == 'deploy':
        if input_size is None:
            raise ValueError('prepare_for_inference(mode="deploy") needs '
                             'input_size=(H, W)')
        predictor = build_static_predictor(model, input_size, dtype)
        return compile_predictor(predictor) if compile else predictor
    if mode != 'eager':
        raise ValueError(f'mode must be "eager" or "deploy", got {mode!r}')
    model.eval()
    if fused_attention:
        fuse_attention(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        preprocessor = model.data_preprocessor
        forward = preprocessor.forward

        def channels_last_forward(data: dict, training: bool = False) -> dict:
            data = forward(data, training)
            data['inputs'] = data['inputs'].contiguous(
                memory_format=torch.channels_last)
            return data

        preprocessor.forward = channels_last_forward
    if compile:
        model.backbone = torch.compile(model.backbone, dynamic=False)
        head = getattr(model, 'panoptic_head', None)
        if head is not None and hasattr(head, 'pixel_decoder'):
            head.pixel_decoder = torch.compile(head.pixel_decoder,
                                               dynamic=False)
    return model


def inference_autocast(device: str,
                       dtype: Optional[torch.dtype] = None) -> ContextManager:
    """Autocast for inference on ``device``: fp16 on CUDA and bf16 on CPU
    unless ``dtype`` says otherwise; a no-op context for ``dtype=float32``.
    """
    device_type = torch.device(device).type
    dtype = dtype or (torch.float16 if device_type == 'cuda' else
                      torch.bfloat16)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)
