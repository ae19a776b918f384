# Copyright (c) mmcast contributors. All rights reserved.
"""The negative sampler of CAST's pixel-wise contrastive loss L_pxl: which
pixels every anchor pixel contrasts against."""
import warnings
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import TASK_UTILS
from torch import Tensor

from .exact_negative_draw import exact_negative_draw
from .rejection_negative_draw import rejection_negative_draw

PIXEL_FEATURES = ('fused', 'fused_class', 'mask', 'class', 'uniform')
DRAWS = ('exact', 'rejection')


@TASK_UTILS.register_module()
class PixelContrastNegativeSampler:
    """Draws ``R = num_negatives`` negatives for every anchor pixel.

    A candidate ``q`` of anchor ``p`` is drawn with probability proportional
    to ``w(p, q) = max(0, 1 - <y~_p, y~_q>) + eps``, where ``y`` is built
    from the model's own detached mask and class predictions:

    - ``P_m[b, k, p]``: softmax over the K queries of the mask logits, resized
      (bilinear) to the embedding grid;
    - ``P_c[b, k, c]``: softmax over the C + 1 classes of query k;
    - ``F_c[b, p, c] = sum_k P_m[b, k, p] * P_c[b, k, c]``.

    ``features`` chooses ``y``:

    - ``'fused'`` (paper): ``y = [P_m(., p) || F_c(p)]``;
    - ``'fused_class'`` (authors' code): ``y = F_c(p)``, the expected class
      distribution at p, i.e. the class scores of all queries weighted by
      their soft mask assignment;
    - ``'mask'``: ``y = P_m(., p)``;
    - ``'class'``: ``y = P_c[b, argmax_k P_m[b, k, p]]``, the class
      distribution of the single query that wins pixel p (hard assignment;
      ``'fused_class'`` is its soft counterpart);
    - ``'uniform'``: uniform sampling; the mask and class logits are not
      needed.

    ``draw`` chooses how the R negatives are drawn:
    ``'exact'`` (authors' code) without replacement, see
    :func:`exact_negative_draw`; ``'rejection'`` with replacement, see
    :func:`rejection_negative_draw` (the exact draw when every candidate is
    needed). With R << M both give almost the same inclusion probabilities
    (``tests/test_pixel_contrast_draws.py`` measures the gap); with R close
    to M the rejection draw repeats candidates.

    Negatives are indices into a key axis of images (this process's, or
    every process's in rank order; the caller lays it out). Candidates are
    the pixels of the other images of the axis when ``cross_image`` is
    True, else all pixels of the anchor's image but the anchor. An axis of
    one image with ``cross_image=True`` falls back to the within-image
    candidates and warns once. When fewer than R candidates exist all of
    them are used.

    Args:
        features (str): ``y``, one of ``'fused'``, ``'fused_class'``,
            ``'mask'``, ``'class'``, ``'uniform'``. Defaults to ``'fused'``.
        num_negatives (int): Negatives R per anchor. Defaults to 200.
        cross_image (bool): Draw negatives from the other images of the key
            axis. Defaults to True.
        draw (str): ``'exact'`` or ``'rejection'``. Defaults to ``'exact'``.
        rejection_rounds (int): Proposal rounds of the rejection draw.
            Defaults to 8.
        min_proposals (int): Least proposals per round of the rejection
            draw. Defaults to 32.
        chunk_size (int): Anchors per chunk. Defaults to 1024.
        eps (float): Added to the weights and used in the normalisation of
            ``y``. Defaults to 1e-6.
    """

    def __init__(self,
                 features: str = 'fused',
                 num_negatives: int = 200,
                 cross_image: bool = True,
                 draw: str = 'exact',
                 rejection_rounds: int = 8,
                 min_proposals: int = 32,
                 chunk_size: int = 1024,
                 eps: float = 1e-6) -> None:
        for name, value, choices in (('features', features, PIXEL_FEATURES),
                                     ('draw', draw, DRAWS)):
            if value not in choices:
                raise ValueError(f'{name} must be one of {choices}, '
                                 f'got {value!r}')
        for name, value in (('num_negatives', num_negatives),
                            ('chunk_size', chunk_size),
                            ('rejection_rounds', rejection_rounds),
                            ('min_proposals', min_proposals)):
            if value < 1:
                raise ValueError(f'{name} must be >= 1, got {value}')
        self.features = features
        self.num_negatives = num_negatives
        self.cross_image = cross_image
        self.draw = draw
        self.rejection_rounds = rejection_rounds
        self.min_proposals = min_proposals
        self.chunk_size = chunk_size
        self.eps = eps
        self._warned_single_image = False

    @torch.no_grad()
    def sampling_features(self, mask_logits: Optional[Tensor],
                          cls_logits: Optional[Tensor],
                          size: Tuple[int, int]) -> Optional[Tensor]:
        """Normalised per-pixel prediction vectors ``y~``.

        Args:
            mask_logits (Tensor, optional): (B, K, H', W') mask logits.
            cls_logits (Tensor, optional): (B, K, C + 1) class logits.
            size (tuple[int, int]): The embedding grid (h, w).

        Returns:
            Tensor or None: (B, N, Y) float32 with N = h * w, L2-normalised
            along Y; None for ``'uniform'``.
        """
        if self.features == 'uniform':
            return None
        if mask_logits is None or cls_logits is None:
            raise ValueError(f'sampler {self.features!r} needs mask_logits '
                             'and cls_logits')
        mask_prob = F.interpolate(
            mask_logits.detach().float(),
            size=size,
            mode='bilinear',
            align_corners=False).softmax(dim=1).flatten(2)  # (B, K, N)
        cls_prob = cls_logits.detach().float().softmax(dim=-1)  # (B, K, C1)
        if self.features == 'mask':
            y = mask_prob.transpose(1, 2)
        elif self.features == 'class':
            winner = mask_prob.argmax(dim=1)  # (B, N)
            y = cls_prob.gather(
                1, winner[..., None].expand(-1, -1, cls_prob.size(-1)))
        else:
            expected_cls = torch.einsum('bkn,bkc->bnc', mask_prob, cls_prob)
            if self.features == 'fused':
                y = torch.cat([mask_prob.transpose(1, 2), expected_cls], -1)
            else:
                y = expected_cls
        return F.normalize(y, dim=-1, eps=self.eps)

    def _within_image(self, num_images: int) -> bool:
        """Whether candidates come from the anchor's own image."""
        if not self.cross_image:
            return True
        if num_images > 1:
            return False
        if not self._warned_single_image:
            warnings.warn(
                'InstanceAwarePixelContrastLoss: cross_image=True with a '
                'batch of one image; negatives are drawn within the image '
                '(the anchor pixel excluded) instead.')
            self._warned_single_image = True
        return True

    def iter_chunks(
        self,
        y: Optional[Tensor],
        y_keys: Optional[Tensor],
        images: List[Tuple[int, int]],
        first: int,
        batch_size: int,
        num_pixels: int,
        device: torch.device,
        generator: Optional[torch.Generator] = None,
        seed: Optional[int] = None,
        neg_indices: Optional[Tensor] = None
    ) -> Iterator[Tuple[int, int, Tensor]]:
        """Draw the negatives chunk by chunk, image after image.

        Draws are made per image in pieces of at most ``chunk_size``
        anchors (candidates differ between images); consecutive pieces are
        then merged up to ``chunk_size`` anchors, which spares small images
        one logit pass each.

        Args:
            y (Tensor, optional): (B*N, Y) sampler features of this
                process's anchors (the flat pixel axis).
            y_keys (Tensor, optional): (M_all, Y) sampler features on the
                key axis.
            images (list[tuple[int, int]]): (start, end) key rows of every
                image of the key axis.
            first (int): Index in ``images`` of this process's image 0.
            batch_size (int): B, this process's images.
            num_pixels (int): N = h * w.
            device (torch.device): Device of the draw.
            generator (torch.Generator, optional): Random generator.
            seed (int, optional): When given, image g of the key axis draws
                from its own generator seeded ``seed + g``, so a draw does
                not depend on how the global batch is split over processes;
                overrides ``generator``.
            neg_indices (Tensor, optional): (B*N, R_eff) given negatives,
                chunked instead of drawn.

        Yields:
            tuple: ``(start, end, neg)``: the anchors are the flat pixels
            ``start:end`` and ``neg`` their (end - start, R_eff) negatives,
            as indices into the key axis.
        """
        within = self._within_image(len(images))
        total = images[-1][1]
        num_cand = num_pixels - 1 if within else total - num_pixels
        num_neg = min(self.num_negatives, num_cand)
        rejection = self.draw == 'rejection' and num_cand > num_neg
        group, group_start = [], 0
        for b in range(batch_size):
            key_start, key_end = images[first + b]
            if within:
                blocks = ((key_start, key_end), )
            else:
                blocks = tuple((s, e) for s, e in ((0, key_start),
                                                   (key_end, total)) if s < e)
            gen = generator
            if seed is not None and neg_indices is None:
                gen = torch.Generator(device=device).manual_seed(
                    seed + first + b)
            offset = b * num_pixels
            for start in range(offset, offset + num_pixels, self.chunk_size):
                end = min(start + self.chunk_size, offset + num_pixels)
                if end - group_start > self.chunk_size and group:
                    yield group_start, start, torch.cat(group)
                    group, group_start = [], start
                if neg_indices is not None:
                    group.append(neg_indices[start:end].to(device))
                    continue
                own = key_start + start - offset if within else None
                anchors = None if y is None else y[start:end]
                if rejection:
                    neg = rejection_negative_draw(
                        anchors, y_keys, blocks, own, end - start, num_neg,
                        self.rejection_rounds, self.min_proposals, self.eps,
                        device, gen)
                else:
                    neg = exact_negative_draw(anchors, y_keys, blocks, own,
                                              end - start, num_neg, self.eps,
                                              device, gen)
                group.append(neg)
        yield group_start, batch_size * num_pixels, torch.cat(group)
