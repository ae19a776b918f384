# Copyright (c) mmcast contributors. All rights reserved.
"""CAST's instance-aware pixel-wise contrastive loss (L_pxl)."""
import warnings
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

SAMPLERS = ('fused', 'fused_class', 'mask', 'class', 'uniform')


@MODELS.register_module()
class InstanceAwarePixelContrastLoss(nn.Module):
    """Instance-aware pixel-wise contrastive loss of CAST.

    Every pixel ``(b, p)`` of the weak-view embedding map is an anchor. Its
    positive is the strong-view embedding of the same pixel and its
    ``R = num_negatives`` negatives are drawn, without replacement, with
    probability proportional to the prediction dissimilarity
    ``s_deb(p, q) = max(0, 1 - <y~_p, y~_q>)`` (Gumbel-top-k on
    ``log(s_deb + eps)``, as in the authors' code), where ``y`` is built from the model's own detached
    mask and class predictions:

    - ``P_m[b, k, p]``: softmax over the K queries of the mask logits, resized
      (bilinear) to the embedding grid;
    - ``P_c[b, k, c]``: softmax over the C + 1 classes of query k;
    - ``F_c[b, p, c] = sum_k P_m[b, k, p] * P_c[b, k, c]``.

    ``sampler`` chooses ``y``:

    - ``'fused'`` (paper): ``y = [P_m(., p) || F_c(p)]``;
    - ``'fused_class'`` (authors' code): ``y = F_c(p)``, the expected class
      distribution at p, i.e. the class scores of all queries weighted by
      their soft mask assignment;
    - ``'mask'``: ``y = P_m(., p)``;
    - ``'class'``: ``y = P_c[b, argmax_k P_m[b, k, p]]``, the class
      distribution of the single query that wins pixel p (hard assignment;
      ``'fused_class'`` is its soft counterpart);
    - ``'uniform'``: uniform sampling (Gumbel-top-k on zeros); the mask and
      class logits are not needed.

    When all predictions agree, ``s_deb`` is 0 everywhere and the weights
    ``s_deb + eps`` are constant, so the draw falls back to uniform sampling.

    Logits (cosine similarities divided by the temperature T):
    ``s+ = <z_w[b, p], z_s[b, p]> / T`` and ``s-_r = <z_w[b, p], z_s[q_r]> / T``.
    The negative keys ``z_s[q_r]`` are the strong-view (no-grad) embeddings of
    the sampled pixels, as in the authors' code where keys come from the
    no-grad branch; gradients reach ``z_weak`` only. With ``neg_margin`` set,
    ``s- <- max(0, s- - neg_margin)`` after the division by T (authors' code).
    The loss is ``loss_weight * mean_{b,p} -log(e^{s+} / (e^{s+} + sum_r
    e^{s-_r}))``, computed in float32 with logsumexp.

    Candidates are the pixels of the other images of the batch when
    ``cross_image`` is True, else all pixels of the anchor's image but the
    anchor. A batch of one image with ``cross_image=True`` falls back to the
    within-image candidates and warns once. When fewer than R candidates
    exist all of them are used.

    Memory: anchors are processed per image in chunks of ``chunk_size``; a
    chunk needs O(chunk_size x M) floats (M candidates) for the similarity,
    dissimilarity and Gumbel blocks, and the negative logits are gathered
    from the similarity block, so no (B*N, R, D) tensor is built. Autograd
    keeps only the (chunk_size, R) indices and logits per chunk.

    Args:
        sampler (str): One of ``'fused'``, ``'fused_class'``, ``'mask'``,
            ``'class'``, ``'uniform'``. Defaults to ``'fused'``.
        num_negatives (int): Negatives R per anchor. Defaults to 200.
        cross_image (bool): Draw negatives from the other images of the
            batch. Defaults to True.
        temperature (float): Temperature T; a plain attribute that a hook
            may change during training. Defaults to 0.3.
        neg_margin (float, optional): Hinge on the negative logits; None
            disables it. Defaults to 0.5.
        loss_weight (float): Weight of the loss. Defaults to 0.1.
        chunk_size (int): Anchors per chunk. Defaults to 4096.
        eps (float): Added to ``s_deb`` before the log and used in the
            normalisations. Defaults to 1e-6.
    """

    def __init__(self,
                 sampler: str = 'fused',
                 num_negatives: int = 200,
                 cross_image: bool = True,
                 temperature: float = 0.3,
                 neg_margin: Optional[float] = 0.5,
                 loss_weight: float = 0.1,
                 chunk_size: int = 4096,
                 eps: float = 1e-6) -> None:
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f'sampler must be one of {SAMPLERS}, '
                             f'got {sampler!r}')
        if num_negatives < 1:
            raise ValueError(
                f'num_negatives must be >= 1, got {num_negatives}')
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.sampler = sampler
        self.num_negatives = num_negatives
        self.cross_image = cross_image
        self.temperature = temperature
        self.neg_margin = neg_margin
        self.loss_weight = loss_weight
        self.chunk_size = chunk_size
        self.eps = eps
        self._warned_single_image = False

    def extra_repr(self) -> str:
        return (f'sampler={self.sampler!r}, '
                f'num_negatives={self.num_negatives}, '
                f'cross_image={self.cross_image}, '
                f'temperature={self.temperature}, '
                f'neg_margin={self.neg_margin}, '
                f'loss_weight={self.loss_weight}, '
                f'chunk_size={self.chunk_size}')

    @torch.no_grad()
    def sampling_features(self, mask_logits: Optional[Tensor],
                          cls_logits: Optional[Tensor],
                          size: Tuple[int, int]) -> Optional[Tensor]:
        """Normalised per-pixel prediction vectors ``y~`` of the sampler.

        Args:
            mask_logits (Tensor, optional): (B, K, H', W') mask logits.
            cls_logits (Tensor, optional): (B, K, C + 1) class logits.
            size (tuple[int, int]): The embedding grid (h, w).

        Returns:
            Tensor or None: (B, N, Y) float32 with N = h * w, L2-normalised
            along Y; None for the ``'uniform'`` sampler.
        """
        if self.sampler == 'uniform':
            return None
        if mask_logits is None or cls_logits is None:
            raise ValueError(f'sampler {self.sampler!r} needs mask_logits '
                             'and cls_logits')
        mask_prob = F.interpolate(
            mask_logits.detach().float(),
            size=size,
            mode='bilinear',
            align_corners=False).softmax(dim=1).flatten(2)  # (B, K, N)
        cls_prob = cls_logits.detach().float().softmax(dim=-1)  # (B, K, C1)
        if self.sampler == 'mask':
            y = mask_prob.transpose(1, 2)
        elif self.sampler == 'class':
            winner = mask_prob.argmax(dim=1)  # (B, N)
            y = cls_prob.gather(
                1, winner[..., None].expand(-1, -1, cls_prob.size(-1)))
        else:
            expected_cls = torch.einsum('bkn,bkc->bnc', mask_prob, cls_prob)
            if self.sampler == 'fused':
                y = torch.cat([mask_prob.transpose(1, 2), expected_cls], -1)
            else:
                y = expected_cls
        return F.normalize(y, dim=-1, eps=self.eps)

    def _within_image(self, batch_size: int) -> bool:
        """Whether candidates come from the anchor's own image."""
        if not self.cross_image:
            return True
        if batch_size > 1:
            return False
        if not self._warned_single_image:
            warnings.warn(
                'InstanceAwarePixelContrastLoss: cross_image=True with a '
                'batch of one image; negatives are drawn within the image '
                '(the anchor pixel excluded) instead.')
            self._warned_single_image = True
        return True

    @staticmethod
    def _candidate_blocks(b: int, batch_size: int, num_pixels: int,
                          within: bool) -> Tuple[Tuple[int, int], ...]:
        """Row ranges of the flat (B*N) pixel axis holding the candidates.

        Local candidate j of image b is the j-th pixel of the concatenation
        of these ranges.
        """
        if within:
            return ((b * num_pixels, (b + 1) * num_pixels), )
        return tuple(r for r in ((0, b * num_pixels),
                                 ((b + 1) * num_pixels,
                                  batch_size * num_pixels)) if r[0] < r[1])

    @staticmethod
    def _block_matmul(rows: Tensor, table: Tensor,
                      blocks: Tuple[Tuple[int, int], ...]) -> Tensor:
        """(c, E) x candidate rows of (B*N, E) -> (c, M), without copying
        the candidate rows (contiguous views only)."""
        if len(blocks) == 1:
            start, end = blocks[0]
            return rows @ table[start:end].t()
        return torch.cat([rows @ table[s:e].t() for s, e in blocks], dim=1)

    def _iter_chunks(
        self,
        y: Optional[Tensor],
        batch_size: int,
        num_pixels: int,
        device: torch.device,
        generator: Optional[torch.Generator] = None,
        neg_indices: Optional[Tensor] = None
    ) -> Iterator[Tuple[int, int, Tuple[Tuple[int, int], ...], Tensor,
                        Tensor]]:
        """Draw the negatives chunk by chunk.

        Yields:
            tuple: ``(start, end, blocks, local, global_)``: anchors are the
            flat pixels ``start:end`` (all in one image), ``blocks`` the
            candidate row ranges, ``local`` (c, R_eff) indices into the
            candidates and ``global_`` (c, R_eff) the same indices into the
            flat (B*N) pixel axis.
        """
        within = self._within_image(batch_size)
        if y is not None:
            y = y.flatten(0, 1)
        num_cand = num_pixels - 1 if within else (batch_size -
                                                  1) * num_pixels
        num_neg = min(self.num_negatives, num_cand)
        for b in range(batch_size):
            blocks = self._candidate_blocks(b, batch_size, num_pixels, within)
            offset = b * num_pixels
            for start in range(offset, offset + num_pixels, self.chunk_size):
                end = min(start + self.chunk_size, offset + num_pixels)
                if neg_indices is not None:
                    global_ = neg_indices[start:end].to(device)
                    local = global_ - offset if within else torch.where(
                        global_ >= offset + num_pixels, global_ - num_pixels,
                        global_)
                else:
                    local = self._draw(y, start, end, blocks, num_neg, within,
                                       offset, device, generator)
                    global_ = local + offset if within else torch.where(
                        local >= offset, local + num_pixels, local)
                yield start, end, blocks, local, global_

    @torch.no_grad()
    def _draw(self, y: Optional[Tensor], start: int, end: int,
              blocks: Tuple[Tuple[int, int], ...], num_neg: int, within: bool,
              offset: int, device: torch.device,
              generator: Optional[torch.Generator]) -> Tensor:
        """Gumbel-top-k draw of (end - start, num_neg) local indices.

        With ``U ~ U(0, 1)`` the Gumbel noise is ``G = -log(-log U)``, so
        ``top-k(log w + G) = top-k(w / -log U)``: one logarithm per
        candidate instead of three (``Tensor.exponential_`` is several
        times slower than ``rand`` + ``log`` on CPU). Uniform weights reduce
        to ``top-k(U)``.
        """
        num_cand = sum(e - s for s, e in blocks)
        if num_neg == 0:
            return torch.zeros(
                end - start, 0, dtype=torch.long, device=device)
        scores = torch.rand(
            end - start,
            num_cand,
            generator=generator,
            device=device,
            dtype=torch.float32)
        if y is not None:
            similarity = self._block_matmul(y[start:end], y, blocks)
            weights = similarity.neg_().add_(1).clamp_(min=0).add_(self.eps)
            scores = weights.div_(scores.log_().neg_())
        if within:
            rows = torch.arange(end - start, device=device)
            scores[rows, rows + (start - offset)] = -1
        return scores.topk(num_neg, dim=1, sorted=False).indices

    @torch.no_grad()
    def sample_negatives(
            self,
            mask_logits: Optional[Tensor],
            cls_logits: Optional[Tensor],
            size: Tuple[int, int],
            batch_size: Optional[int] = None,
            device: Optional[torch.device] = None,
            generator: Optional[torch.Generator] = None) -> Tensor:
        """Draw the negatives exactly as :meth:`forward` does.

        With the same random state (``torch.manual_seed`` or a generator in
        the same state) and the same ``chunk_size``, :meth:`forward` draws
        the same indices.

        Args:
            mask_logits (Tensor, optional): (B, K, H', W') mask logits.
            cls_logits (Tensor, optional): (B, K, C + 1) class logits.
            size (tuple[int, int]): The embedding grid (h, w).
            batch_size (int, optional): B; needed only for ``'uniform'``
                without logits.
            device (torch.device, optional): Device of the draw; defaults to
                the logits' device.
            generator (torch.Generator, optional): Random generator.

        Returns:
            Tensor: (B*N, R_eff) long indices into the flat (B*N) pixel axis
            (pixel p of image b is ``b * N + p``, row-major over (h, w)).
        """
        if batch_size is None:
            batch_size = mask_logits.size(0)
        if device is None:
            device = (mask_logits.device
                      if mask_logits is not None else torch.device('cpu'))
        num_pixels = size[0] * size[1]
        y = self.sampling_features(mask_logits, cls_logits, size)
        return torch.cat([
            global_ for *_, global_ in self._iter_chunks(
                y, batch_size, num_pixels, device, generator)
        ])

    def forward(self,
                z_weak: Tensor,
                z_strong: Tensor,
                mask_logits: Optional[Tensor] = None,
                cls_logits: Optional[Tensor] = None,
                instance_ids: Optional[Tensor] = None,
                neg_indices: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None
                ) -> Dict[str, Tensor]:
        """Compute the loss and its monitors.

        Args:
            z_weak (Tensor): (B, D, h, w) weak-view embeddings, with grad.
            z_strong (Tensor): (B, D, h, w) strong-view embeddings; detached
                here. Both are (re-)normalised along D.
            mask_logits (Tensor, optional): (B, K, H', W') the model's mask
                logits; detached here. Not needed by ``'uniform'``.
            cls_logits (Tensor, optional): (B, K, C + 1) the model's class
                logits; detached here. Not needed by ``'uniform'``.
            instance_ids (Tensor, optional): (B, h, w) long ids at the
                embedding resolution, negative for pixels to ignore
                (background). Ids are compared raw across images, so with
                ``cross_image=True`` the caller passes class-level ids (e.g.
                the label of the ground-truth instance at the pixel) and
                per-image instance ids only when ``cross_image=False``.
            neg_indices (Tensor, optional): (B*N, R_eff) negatives from
                :meth:`sample_negatives`; skips the draw.
            generator (torch.Generator, optional): Random generator of the
                draw.

        Returns:
            dict[str, Tensor]: ``loss_pxl`` the weighted loss; ``pxl_margin``
            (detached) the mean cosine distance (1 - cos) of the sampled
            negatives minus that of the positives (0 for the negatives when
            none exist); ``pxl_fnr`` (only with ``instance_ids``, detached)
            the share of sampled negatives of anchors with a non-negative id
            whose id equals the anchor's (0 when there are none).
        """
        batch_size, _, h, w = z_weak.shape
        num_pixels = h * w
        device = z_weak.device
        with torch.autocast(device_type=device.type, enabled=False):
            z_w = F.normalize(
                z_weak.float(), dim=1, eps=self.eps).flatten(2).transpose(
                    1, 2).reshape(batch_size * num_pixels, -1)
            z_s = F.normalize(
                z_strong.detach().float(), dim=1,
                eps=self.eps).flatten(2).transpose(1, 2).reshape(
                    batch_size * num_pixels, -1)
            y = None if neg_indices is not None else self.sampling_features(
                mask_logits, cls_logits, (h, w))
            ids = None if instance_ids is None else instance_ids.reshape(
                -1).to(device)

            loss_sum = z_w.new_zeros(())
            pos_dist = z_w.new_zeros(())
            neg_dist = z_w.new_zeros(())
            num_neg = 0
            false_neg = z_w.new_zeros(())
            num_fnr = z_w.new_zeros(())
            for start, end, blocks, local, global_ in self._iter_chunks(
                    y, batch_size, num_pixels, device, generator,
                    neg_indices):
                anchors = z_w[start:end]
                pos_cos = (anchors * z_s[start:end]).sum(dim=1)
                # Advanced indexing, not gather: its backward keeps only
                # the indices, while gather's keeps the whole (c, M) block.
                rows = torch.arange(end - start, device=device)[:, None]
                neg_cos = self._block_matmul(anchors, z_s, blocks)[rows, local]
                pos_logit = pos_cos / self.temperature
                neg_logit = neg_cos / self.temperature
                if self.neg_margin is not None:
                    neg_logit = (neg_logit - self.neg_margin).clamp(min=0)
                logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)
                loss_sum = loss_sum + (logits.logsumexp(dim=1) -
                                       pos_logit).sum()
                with torch.no_grad():
                    pos_dist += (1 - pos_cos).sum()
                    neg_dist += (1 - neg_cos).sum()
                    num_neg += neg_cos.numel()
                    if ids is not None:
                        anchor_ids = ids[start:end, None]
                        valid = (anchor_ids >= 0).expand_as(global_)
                        false_neg += ((ids[global_] == anchor_ids)
                                      & valid).sum()
                        num_fnr += valid.sum()

        num_anchors = batch_size * num_pixels
        losses = dict(
            loss_pxl=self.loss_weight * loss_sum / num_anchors,
            pxl_margin=neg_dist / max(num_neg, 1) - pos_dist / num_anchors)
        if ids is not None:
            losses['pxl_fnr'] = false_neg / num_fnr.clamp(min=1)
        return losses
