# Copyright (c) mmcast contributors. All rights reserved.
"""Encoder-only Mask Transformer student (EoMT, Kerssies et al., CVPR 2025).

A plain ViT segments by itself: ``K`` learnable queries join the patch
tokens before the last ``L`` blocks, those blocks process queries and
patches together, and a light head turns every query into class logits and
a mask (the query's MLP embedding times the patch features upsampled to
stride 4). No pixel decoder and no transformer decoder. Optionally CAST's
pixel-wise contrastive loss on the ViT's patch tokens.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn

from ..backbones import build_dinov3_vit
from ..dense_heads.cast_mask2former_head import CASTMask2FormerHead
from ..layers.photometric_strong_view import complete_strong_view_cfg
from ..layers.scale_block import ScaleBlock
from .cast_mask2former import concat_branches


@MODELS.register_module()
class EoMTStudent(BaseDetector):
    """EoMT instance segmenter on a DINOv3 ViT (timm's Eva).

    Token sequence of the last ``L = num_blocks_with_queries`` blocks:
    ``[class token, register tokens, K queries, h*w patch tokens]``. The
    queries get no position embedding: the RoPE table is extended with the
    identity rotation for them, so they are treated as the prefix tokens
    are and the blocks run unchanged (timm's own ``forward``).

    Predictions (``vit.norm`` applied first) come from the tokens where the
    queries join and at the output of each of the last ``L`` blocks:
    ``L + 1`` of them in training, all supervised by
    :class:`Mask2FormerCriterion` (Mask2Former's Hungarian matching and
    losses; loss keys ``d0.*`` .. ``d{L-1}.*``, then the final ``loss_*``).
    The prediction entering block ``i`` of the last ``L`` gives its masked
    attention: query ``q`` attends only to the patches where its mask logit
    (bilinearly resized to the patch grid) is positive, plus all prefix and
    query tokens. Mask annealing: in block ``j`` the mask of each query is
    applied with probability ``attn_mask_probs[j]`` (set per iteration by
    :class:`MaskAnnealingHook` from ``runner.iter``; 1 until set), and not
    built at all at probability 0. Inference (``predict``, ``_forward``)
    never masks the attention and computes the final prediction only.

    CAST's pixel-wise contrastive loss ``L_pxl`` (with
    ``loss_pixel_contrast``): the final block's patch tokens (after
    ``vit.norm``) of the weak view, with gradient, and of a pixel-aligned
    photometric strong view (``strong_view``; the same forward, masked
    attention included, without gradient) are projected per patch by
    ``projection_head`` and compared, negatives mined from the final
    prediction's detached mask and class logits, as
    :class:`CASTMask2FormerHead` does on a backbone level.

    State-dict names of the ViT are timm's under ``vit.``, as in
    :class:`DINOv3MultiLevel`: a converted DINOv3 checkpoint loads with the
    detector's ``init_cfg=dict(type='Pretrained', checkpoint=converted)``.

    Args:
        vit (dict): :func:`build_dinov3_vit` arguments: ``arch`` (e.g.
            ``'vit_small_patch16_dinov3'``), optional ``vit_cfg`` (widths of
            toy / test models) and ``drop_path_rate``.
        num_queries (int): Learnable queries ``K``.
        num_blocks_with_queries (int): The last ``L`` blocks see the
            queries (EoMT: 4).
        criterion (dict): :class:`Mask2FormerCriterion` config; the
            detector sets its ``num_queries`` and ``train_cfg``.
        panoptic_fusion_head (dict): Instance post-processing,
            :class:`LeanMaskFormerFusionHead`; gets ``test_cfg``.
        train_cfg (dict): Mask2Former's matching and point sampling.
        test_cfg (dict): The fusion head's (``max_per_image``, ...).
        strong_view (dict, optional): The photometric strong view of
            ``L_pxl`` (``PhotometricStrongView``, its defaults when None;
            ``mean``/``std`` default to the data preprocessor's).
        projection_head (dict, optional): The per-patch projection head of
            ``L_pxl`` (``PixelProjectionHead``, its defaults when None;
            ``in_channels`` defaults to the ViT's width).
        loss_pixel_contrast (dict, optional): ``L_pxl``
            (``InstanceAwarePixelContrastLoss``; its ``loss_weight`` is
            λ_pxl). None or a weight of 0: no contrastive branch, and no
            strong view or projection head is built.
        data_preprocessor (dict): Pads to a multiple of the patch size.
        init_cfg (dict, optional): e.g. a converted DINOv3 checkpoint.

    Shapes:
        Input ``(B, 3, H, W)``, ``H`` and ``W`` multiples of the patch ``p``
        (the data preprocessor's ``pad_size_divisor``); patch grid
        ``h = H / p``, ``w = W / p``. Class logits ``(B, K, C + 1)``, mask
        logits ``(B, K, h * 2**n, w * 2**n)`` with ``n = max(1,
        round(log2 p) - 2)`` scale blocks (stride 4 for p = 8 or 16).
    """

    def __init__(self,
                 vit: ConfigType,
                 criterion: ConfigType,
                 panoptic_fusion_head: ConfigType,
                 num_queries: int = 100,
                 num_blocks_with_queries: int = 4,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 strong_view: OptConfigType = None,
                 projection_head: OptConfigType = None,
                 loss_pixel_contrast: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.vit = build_dinov3_vit(**vit)
        depth = len(self.vit.blocks)
        if not 1 <= num_blocks_with_queries <= depth:
            raise ValueError(
                f'num_blocks_with_queries must be in [1, {depth}], got '
                f'{num_blocks_with_queries}')
        self.num_queries = num_queries
        self.num_blocks_with_queries = num_blocks_with_queries
        self.attn_mask_probs = [1.0] * num_blocks_with_queries
        self.patch_size = self.vit.patch_embed.patch_size[0]
        embed_dims = self.vit.embed_dim

        criterion = criterion.copy()
        criterion.update(num_queries=num_queries, train_cfg=train_cfg)
        self.criterion = MODELS.build(criterion)
        fusion_head = panoptic_fusion_head.copy()
        fusion_head.update(test_cfg=test_cfg)
        self.panoptic_fusion_head = MODELS.build(fusion_head)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

        self.query_embed = nn.Embedding(num_queries, embed_dims)
        self.class_head = nn.Linear(embed_dims,
                                    self.criterion.num_classes + 1)
        self.mask_head = nn.Sequential(
            nn.Linear(embed_dims, embed_dims), nn.GELU(),
            nn.Linear(embed_dims, embed_dims), nn.GELU(),
            nn.Linear(embed_dims, embed_dims))
        num_upscale = max(1, round(math.log2(self.patch_size)) - 2)
        self.upscale = nn.Sequential(
            *[ScaleBlock(embed_dims) for _ in range(num_upscale)])

        self.with_pixel_contrast = (
            loss_pixel_contrast is not None
            and loss_pixel_contrast.get('loss_weight', 1.0) > 0)
        if self.with_pixel_contrast:
            self.strong_view = MODELS.build(complete_strong_view_cfg(
                strong_view or dict(type='PhotometricStrongView'),
                self.data_preprocessor))
            projection_head = dict(
                projection_head or dict(type='PixelProjectionHead'))
            projection_head.setdefault('in_channels', embed_dims)
            self.projection_head = MODELS.build(projection_head)
            self.loss_pixel_contrast = MODELS.build(loss_pixel_contrast)

    def set_attn_mask_probs(self, probs: Sequence[float]) -> None:
        """Probability of masking the attention in each of the last ``L``
        blocks (training only)."""
        if len(probs) != self.num_blocks_with_queries:
            raise ValueError(
                f'{len(probs)} mask probabilities for '
                f'{self.num_blocks_with_queries} blocks with queries')
        self.attn_mask_probs = [float(p) for p in probs]

    def forward_queries(
            self,
            batch_inputs: Tensor,
            supervise_blocks: bool = False
    ) -> Tuple[List[Tensor], List[Tensor]]:
        """Class and mask logits of the queries.

        Args:
            batch_inputs (Tensor): Normalised, padded images (B, 3, H, W).
            supervise_blocks (bool): Also predict where the queries join and
                after each of the last ``L`` blocks but the last, and mask
                the attention with those predictions as
                ``attn_mask_probs`` says (training). If False (inference)
                only the final prediction is made and no attention is
                masked.

        Returns:
            tuple[list[Tensor], list[Tensor]]: Class logits (B, K, C + 1)
            and mask logits (B, K, h', w') of each prediction, the final
            last (``L + 1`` each, or 1).
        """
        all_cls, all_masks, _ = self.forward_tokens(batch_inputs,
                                                    supervise_blocks)
        return all_cls, all_masks

    def forward_tokens(
            self,
            batch_inputs: Tensor,
            supervise_blocks: bool = False
    ) -> Tuple[List[Tensor], List[Tensor], Tensor]:
        """:meth:`forward_queries` and the final block's patch tokens.

        Args:
            batch_inputs (Tensor): Normalised, padded images (B, 3, H, W).
            supervise_blocks (bool): As in :meth:`forward_queries`.

        Returns:
            tuple[list[Tensor], list[Tensor], Tensor]: The class and mask
            logits of :meth:`forward_queries`, and the patch tokens of the
            final block after ``vit.norm``, (B, C, h, w).
        """
        p = self.patch_size
        if batch_inputs.shape[-2] % p or batch_inputs.shape[-1] % p:
            raise ValueError(
                f'input size {tuple(batch_inputs.shape[-2:])} is not a '
                f'multiple of the patch size {p}: set the data '
                f'preprocessor\'s pad_size_divisor to a multiple of {p}')
        x = self.vit.patch_embed(batch_inputs)  # (B, h, w, C)
        hw = tuple(x.shape[1:3])
        x, rope = self.vit._pos_embed(x)
        x = self.vit.norm_pre(x)
        num_prefix = self.vit.num_prefix_tokens
        first = len(self.vit.blocks) - self.num_blocks_with_queries
        all_cls, all_masks = [], []
        for i, block in enumerate(self.vit.blocks):
            attn_mask = None
            if i == first:
                queries = self.query_embed.weight.to(x.dtype)
                x = torch.cat([
                    x[:, :num_prefix],
                    queries.expand(x.shape[0], -1, -1), x[:, num_prefix:]
                ], dim=1)
                rope = self._rope_with_queries(rope)
            if i >= first and supervise_blocks:
                cls_logits, mask_logits, _ = self._predict(x, hw)
                all_cls.append(cls_logits)
                all_masks.append(mask_logits)
                attn_mask = self._attn_mask(mask_logits, hw,
                                            self.attn_mask_probs[i - first])
            x = block(x, rope=rope, attn_mask=attn_mask)
        cls_logits, mask_logits, patches = self._predict(x, hw)
        all_cls.append(cls_logits)
        all_masks.append(mask_logits)
        return all_cls, all_masks, patches

    def _rope_with_queries(self, rope: Tensor) -> Tensor:
        """RoPE table (h*w, 2D) -> (K + h*w, 2D) with the identity rotation
        (sin 0, cos 1) for the queries, which precede the patch tokens."""
        sin_cos = rope.new_zeros(self.num_queries, rope.shape[-1])
        sin_cos[:, rope.shape[-1] // 2:] = 1
        return torch.cat([sin_cos, rope], dim=0)

    def _predict(self, x: Tensor,
                 hw: Tuple[int, int]) -> Tuple[Tensor, Tensor, Tensor]:
        """Tokens (B, P + K + h*w, C) -> class logits (B, K, C_cls + 1),
        mask logits (B, K, h', w') at the upsampled resolution and the
        normalised patch tokens (B, C, h, w)."""
        x = self.vit.norm(x)
        num_prefix = self.vit.num_prefix_tokens
        queries = x[:, num_prefix:num_prefix + self.num_queries]
        patches = x[:, num_prefix + self.num_queries:]
        feats = patches.transpose(1, 2).reshape(x.shape[0], -1, *hw)
        mask_logits = torch.einsum('bqc,bchw->bqhw',
                                   self.mask_head(queries),
                                   self.upscale(feats))
        return self.class_head(queries), mask_logits, feats

    def _attn_mask(self, mask_logits: Tensor, hw: Tuple[int, int],
                   prob: float) -> Optional[Tensor]:
        """Boolean attention mask (B, 1, N, N) of a block, True = attend,
        ``N = P + K + h*w``; ``None`` when ``prob`` is 0.

        Query rows see only the patches inside their (resized) predicted
        mask; each query's row is left full with probability ``1 - prob``.
        Every other entry is True.
        """
        if prob <= 0:
            return None
        num_prefix, num_queries = self.vit.num_prefix_tokens, self.num_queries
        batch_size = mask_logits.shape[0]
        with torch.no_grad():
            grid = F.interpolate(
                mask_logits.float(), size=hw, mode='bilinear',
                align_corners=False)
            allowed = grid.flatten(2) > 0  # (B, K, h*w)
            if prob < 1:
                unmasked = torch.rand(
                    batch_size, num_queries,
                    device=mask_logits.device) >= prob
                allowed |= unmasked[..., None]
            num_tokens = num_prefix + num_queries + hw[0] * hw[1]
            attn_mask = torch.ones(
                batch_size, num_tokens, num_tokens, dtype=torch.bool,
                device=mask_logits.device)
            attn_mask[:, num_prefix:num_prefix + num_queries,
                      num_prefix + num_queries:] = allowed
        return attn_mask[:, None]

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> dict:
        """Mask2Former's set-prediction losses of all ``L + 1``
        predictions, and ``L_pxl`` with the contrastive branch.

        Args:
            batch_inputs (Tensor): Normalised, padded images (B, 3, H, W).
            batch_data_samples (list[:obj:`DetDataSample`]): With
                ``gt_instances`` (``labels``, ``masks``).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_mask``, ``loss_dice`` of
            the final prediction and ``d{j}.loss_*`` of the others (and
            ``loss_pxl``, ``pxl_margin``, ``pxl_fnr``).
        """
        branch_losses, contrast_losses = self.loss_branches(
            dict(batch=batch_inputs), dict(batch=batch_data_samples))
        losses = branch_losses['batch']
        losses.update(contrast_losses)
        return losses

    def loss_branches(
        self, multi_batch_inputs: Dict[str, Tensor],
        multi_batch_data_samples: Dict[str, SampleList]
    ) -> Tuple[Dict[str, Dict[str, Tensor]], Dict[str, Tensor]]:
        """Losses of several branches (e.g. labeled and pseudo-labeled) in
        one forward pass, as :meth:`CASTMask2FormerHead.loss_branches`.

        The set-prediction losses are normalised per branch; ``L_pxl`` once
        over the whole batch. Branches padded to different shapes are
        padded to a common one first (:func:`concat_branches`).

        Args:
            multi_batch_inputs (dict[str, Tensor]): Each branch's images
                (B_i, 3, H_i, W_i), normalised and padded.
            multi_batch_data_samples (dict[str, list[DetDataSample]]): Each
                branch's samples with ``gt_instances``.

        Returns:
            tuple[dict, dict]: The set-prediction losses of each branch, and
            ``loss_pxl`` / ``pxl_margin`` / ``pxl_fnr`` (empty without the
            contrastive branch).
        """
        inputs = concat_branches(multi_batch_inputs, multi_batch_data_samples)
        samples = [
            sample for name in multi_batch_inputs
            for sample in multi_batch_data_samples[name]
        ]
        all_cls, all_masks, patches = self.forward_tokens(
            inputs, supervise_blocks=True)
        gt_instances, metas = self.criterion.targets(samples)
        branch_losses, start = dict(), 0
        for name in multi_batch_inputs:
            part = slice(start, start + len(multi_batch_data_samples[name]))
            start = part.stop
            branch_losses[name] = self.criterion.loss_by_feat(
                [cls_logits[part] for cls_logits in all_cls],
                [mask_logits[part] for mask_logits in all_masks],
                gt_instances[part], metas[part])
        contrast_losses = dict()
        if self.with_pixel_contrast:
            contrast_losses = self.loss_contrast(inputs, patches, all_cls[-1],
                                                 all_masks[-1], gt_instances)
        return branch_losses, contrast_losses

    def loss_contrast(self, batch_inputs: Tensor, patches: Tensor,
                      cls_logits: Tensor, mask_logits: Tensor,
                      gt_instances: List) -> Dict[str, Tensor]:
        """``L_pxl`` of one batch on the final block's patch tokens.

        Args:
            batch_inputs (Tensor): The weak view (B, 3, H, W).
            patches (Tensor): Its final patch tokens (B, C, h, w), with
                grad.
            cls_logits (Tensor): Final class logits (B, K, C_cls + 1).
            mask_logits (Tensor): Final mask logits (B, K, h', w').
            gt_instances (list[:obj:`InstanceData`]): Targets whose
                ``masks`` (N, H, W) and ``labels`` (N,) give the class id
                per patch, used only to log the false-negative rate.

        Returns:
            dict[str, Tensor]: ``loss_pxl``, ``pxl_margin``, ``pxl_fnr``.
        """
        z_weak = self.projection_head(patches)
        with torch.no_grad():
            _, _, strong_patches = self.forward_tokens(
                self.strong_view(batch_inputs), supervise_blocks=True)
            z_strong = self.projection_head(strong_patches)
        class_ids = CASTMask2FormerHead._class_id_map(gt_instances,
                                                      z_weak.shape[-2:])
        return self.loss_pixel_contrast(
            z_weak, z_strong, mask_logits.detach(), cls_logits.detach(),
            instance_ids=class_ids)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Instance segmentation of a batch; the attention is never masked.

        Args:
            batch_inputs (Tensor): Images (B, 3, H, W) as the data
                preprocessor gives them.
            batch_data_samples (list[:obj:`DetDataSample`]): Metainfo of
                each image (``batch_input_shape``, ``img_shape``,
                ``ori_shape``).
            rescale (bool): Masks and boxes in ``ori_shape`` rather than
                ``img_shape``.

        Returns:
            list[:obj:`DetDataSample`]: With ``pred_instances``: ``masks``
            (n, H_o, W_o) bool, ``labels`` (n,) int64, ``scores`` (n,) and
            ``bboxes`` (n, 4) float32.
        """
        cls_logits, mask_logits = self.extract_feat(batch_inputs)
        results = self.panoptic_fusion_head.predict(
            cls_logits, mask_logits, batch_data_samples, rescale=rescale)
        for sample, result in zip(batch_data_samples, results):
            sample.pred_instances = result['ins_results']
        return batch_data_samples

    def _forward(self,
                 batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None
                 ) -> Tuple[Tensor, Tensor]:
        """Final class logits (B, K, C + 1) and mask logits (B, K, h', w'),
        without masked attention."""
        return self.extract_feat(batch_inputs)

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Final class logits (B, K, C + 1) and mask logits (B, K, h', w'),
        without masked attention."""
        all_cls, all_masks = self.forward_queries(batch_inputs)
        return all_cls[-1], all_masks[-1]
