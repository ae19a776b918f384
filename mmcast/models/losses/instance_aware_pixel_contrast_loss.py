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


class _GatheredCosine(torch.autograd.Function):
    """``out[i, r] = <anchors[i], keys[index[i, r]]>`` for (c, D) anchors,
    (M, D) constant keys and (c, R) indices.

    The (c, R, D) gathered keys are rebuilt in backward instead of being
    saved, so autograd keeps only ``index`` (and a reference to ``keys``)
    per chunk.
    """

    @staticmethod
    def forward(ctx, anchors: Tensor, keys: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(keys, index)
        return torch.bmm(keys[index], anchors.unsqueeze(2)).squeeze(2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None, None]:
        keys, index = ctx.saved_tensors
        return torch.bmm(grad.unsqueeze(1), keys[index]).squeeze(1), None, None


@MODELS.register_module()
class InstanceAwarePixelContrastLoss(nn.Module):
    """Instance-aware pixel-wise contrastive loss of CAST.

    Every pixel ``(b, p)`` of the weak-view embedding map is an anchor. Its
    positive is the strong-view embedding of the same pixel and its
    ``R = num_negatives`` negatives are drawn, without replacement, with
    probability proportional to the prediction dissimilarity
    ``s_deb(p, q) = max(0, 1 - <y~_p, y~_q>)`` (Gumbel-top-k on
    ``log(s_deb + eps)``, as in the authors' code), where ``y`` is built
    from the model's own detached mask and class predictions:

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
    ``s+ = <z_w[b, p], z_s[b, p]> / T`` and
    ``s-_r = <z_w[b, p], z_s[q_r]> / T``.
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

    Memory: anchors are processed per image in chunks of ``chunk_size``
    (c). A chunk draws its negatives from (c, M) blocks (M candidates:
    uniform noise and prediction dissimilarity) and computes its negative
    logits from the (c, R, D) keys it gathers; neither is kept for backward
    (the keys are gathered again there), so autograd holds only the
    (c, R) indices and logits per chunk and no (B*N, R, D) or (B*N, M)
    tensor is ever built: the peak is O(c * max(M, R * D)) whatever B*N.

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
        chunk_size (int): Anchors per chunk. Defaults to 1024.
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
                 chunk_size: int = 1024,
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

    def _iter_chunks(
        self,
        y: Optional[Tensor],
        batch_size: int,
        num_pixels: int,
        device: torch.device,
        generator: Optional[torch.Generator] = None,
        neg_indices: Optional[Tensor] = None
    ) -> Iterator[Tuple[int, int, Tensor]]:
        """Draw the negatives chunk by chunk, image after image.

        Draws are made per image in pieces of at most ``chunk_size``
        anchors (candidates differ between images); consecutive pieces are
        then merged up to ``chunk_size`` anchors, which spares small images
        one logit pass each.

        Yields:
            tuple: ``(start, end, neg)``: the anchors are the flat pixels
            ``start:end`` and ``neg`` their (end - start, R_eff) negatives,
            as indices into the flat (B*N) pixel axis.
        """
        within = self._within_image(batch_size)
        if y is not None:
            y = y.flatten(0, 1)
        num_cand = num_pixels - 1 if within else (batch_size - 1) * num_pixels
        num_neg = min(self.num_negatives, num_cand)
        group, group_start = [], 0
        for b in range(batch_size):
            offset = b * num_pixels
            for start in range(offset, offset + num_pixels, self.chunk_size):
                end = min(start + self.chunk_size, offset + num_pixels)
                if end - group_start > self.chunk_size and group:
                    yield group_start, start, torch.cat(group)
                    group, group_start = [], start
                if neg_indices is not None:
                    group.append(neg_indices[start:end].to(device))
                else:
                    group.append(
                        self._draw(y, start, end, batch_size, num_pixels,
                                   num_neg, within, device, generator))
        yield group_start, batch_size * num_pixels, torch.cat(group)

    @torch.no_grad()
    def _draw(self, y: Optional[Tensor], start: int, end: int, batch_size: int,
              num_pixels: int, num_neg: int, within: bool,
              device: torch.device,
              generator: Optional[torch.Generator]) -> Tensor:
        """Gumbel-top-k draw of the negatives of anchors ``start:end``.

        With ``U ~ U(0, 1)`` the Gumbel noise is ``G = -log(-log U)``, so
        ``top-k(log w + G)`` is the top-k of ``w / -log U``, i.e. the
        bottom-k of ``w / log U``: one logarithm per candidate instead of
        three (``Tensor.exponential_`` is several times slower than ``rand``
        + ``log`` on CPU), computed in place with at most two (c, M) tensors
        alive. Uniform weights reduce to the top-k of ``U``.

        Returns:
            Tensor: (c, num_neg) indices into the flat (B*N) pixel axis.
        """
        offset = (start // num_pixels) * num_pixels
        # Candidates: row ranges of the flat pixel axis, concatenated.
        if within:
            blocks = ((offset, offset + num_pixels), )
        else:
            blocks = tuple((s, e)
                           for s, e in ((0, offset), (offset + num_pixels,
                                                      batch_size * num_pixels))
                           if s < e)
        num_cand = sum(e - s for s, e in blocks)
        if num_neg == 0:
            return torch.zeros(end - start, 0, dtype=torch.long, device=device)
        scores = torch.rand(
            end - start,
            num_cand,
            generator=generator,
            device=device,
            dtype=torch.float32)
        largest = y is None
        if not largest:
            scores.log_()
            one = scores.new_tensor(1 + self.eps)
            col = 0
            for s, e in blocks:
                block = scores[:, col:col + e - s]
                # max(0, 1 - <y~_p, y~_q>) + eps
                weights = torch.addmm(
                    one, y[start:end], y[s:e].t(),
                    alpha=-1).clamp_(min=self.eps)
                torch.div(weights, block, out=block)
                col += e - s
        if within:
            # Never draw the anchor itself.
            rows = torch.arange(end - start, device=device)
            fill = -1.0 if largest else float('inf')
            scores[rows, rows + (start - offset)] = fill
        local = scores.topk(
            num_neg, dim=1, largest=largest, sorted=False).indices
        if within:
            return local + offset
        return torch.where(local >= offset, local + num_pixels, local)

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
            device = (
                mask_logits.device
                if mask_logits is not None else torch.device('cpu'))
        num_pixels = size[0] * size[1]
        y = self.sampling_features(mask_logits, cls_logits, size)
        return torch.cat([
            neg for *_, neg in self._iter_chunks(y, batch_size, num_pixels,
                                                 device, generator)
        ])

    def forward(
            self,
            z_weak: Tensor,
            z_strong: Tensor,
            mask_logits: Optional[Tensor] = None,
            cls_logits: Optional[Tensor] = None,
            instance_ids: Optional[Tensor] = None,
            neg_indices: Optional[Tensor] = None,
            generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
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
            for start, end, neg in self._iter_chunks(y, batch_size, num_pixels,
                                                     device, generator,
                                                     neg_indices):
                anchors = z_w[start:end]
                pos_cos = (anchors * z_s[start:end]).sum(dim=1)
                neg_cos = _GatheredCosine.apply(anchors, z_s, neg)
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
                        valid = (anchor_ids >= 0).expand_as(neg)
                        false_neg += ((ids[neg] == anchor_ids) & valid).sum()
                        num_fnr += valid.sum()

        num_anchors = batch_size * num_pixels
        losses = dict(
            loss_pxl=self.loss_weight * loss_sum / num_anchors,
            pxl_margin=neg_dist / max(num_neg, 1) - pos_dist / num_anchors)
        if ids is not None:
            losses['pxl_fnr'] = false_neg / num_fnr.clamp(min=1)
        return losses
