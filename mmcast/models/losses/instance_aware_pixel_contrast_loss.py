# Copyright (c) mmcast contributors. All rights reserved.
"""CAST's instance-aware pixel-wise contrastive loss (L_pxl)."""
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from mmdet.registry import MODELS
from torch import Tensor

from mmcast.utils.gather_rows import all_gather_rows

SAMPLERS = ('fused', 'fused_class', 'mask', 'class', 'uniform')
DRAWS = ('exact', 'rejection')
NEGATIVES_FROM = ('local', 'global')
NEGATIVE_KEYS = ('weak', 'strong')

Blocks = Tuple[Tuple[int, int], ...]


class _GatheredCosine(torch.autograd.Function):
    """``out[i, r] = <anchors[i], keys[index[i, r]]>`` for (c, D) anchors,
    (M, D) keys and (c, R) indices.

    The (c, R, D) gathered keys are rebuilt in backward instead of being
    saved, so autograd keeps only ``index`` (and references to ``anchors``
    and ``keys``) per chunk. ``keys`` receive a gradient when they require
    one (weak-view negatives).
    """

    @staticmethod
    def forward(ctx, anchors: Tensor, keys: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(anchors, keys, index)
        return torch.bmm(keys[index], anchors.unsqueeze(2)).squeeze(2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, Optional[Tensor], None]:
        anchors, keys, index = ctx.saved_tensors
        grad_anchors = torch.bmm(grad.unsqueeze(1), keys[index]).squeeze(1)
        grad_keys = None
        if ctx.needs_input_grad[1]:
            grad_keys = torch.zeros_like(keys).index_add_(
                0, index.flatten(),
                (grad.unsqueeze(2) * anchors.unsqueeze(1)).flatten(0, 1))
        return grad_anchors, grad_keys, None


@MODELS.register_module()
class InstanceAwarePixelContrastLoss(nn.Module):
    """Instance-aware pixel-wise contrastive loss of CAST.

    Every pixel ``(b, p)`` of the weak-view embedding map is an anchor. Its
    positive is the strong-view embedding of the same pixel and its
    ``R = num_negatives`` negatives are drawn with probability proportional
    to ``w(p, q) = max(0, 1 - <y~_p, y~_q>) + eps``, where ``y`` is built
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
    - ``'uniform'``: uniform sampling; the mask and class logits are not
      needed.

    ``draw`` chooses how the R negatives are drawn:

    - ``'exact'`` (authors' code): without replacement, by Gumbel-top-k on
      ``log w`` over all M candidates: O(M) work and memory per anchor.
    - ``'rejection'``: with replacement, each negative distributed exactly
      as ``w / sum w`` when drawn by rejection: uniform proposals,
      ``max(R, min_proposals)`` per round, each accepted with probability
      ``w / (1 + eps)`` (since ``y~ >= 0`` and ``||y~|| = 1``, ``w`` lies
      in ``[eps, 1 + eps]``). An anchor still short of R after
      ``rejection_rounds`` rounds (its mean acceptance below about
      ``1 / rejection_rounds``) takes the rest by Gumbel-top-k on ``log w``
      among all the proposals it was made (a weighted draw from a uniform
      subset of the candidates, slightly closer to uniform than the
      target). O(R * rejection_rounds) per anchor, whatever M. When all predictions agree, ``w`` is ``eps`` everywhere,
      nothing is accepted and the fallback draws uniformly, as the exact
      draw does.

    With R << M both give almost the same inclusion probabilities
    (``tests/test_pixel_contrast_loss.py`` measures the gap); with R close
    to M the rejection draw repeats candidates.

    Logits (cosine similarities divided by the temperature T):
    ``s+ = <z_w[b, p], z_s[b, p]> / T`` and ``s-_r = <z_w[b, p], k[q_r]> / T``
    with ``negative_keys`` choosing the keys ``k``:

    - ``'weak'`` (authors' code, whose ``instance_aware_negative_loss``
      gathers the weak-view embeddings of the other images): ``k = z_w``
      with gradient, so the negatives are pushed away as well;
    - ``'strong'``: ``k = z_s``, the strong-view embeddings, without
      gradient; only the anchors move.

    The positive key ``z_s`` never has a gradient. With ``neg_margin`` set,
    ``s- <- max(0, s- - neg_margin)`` after the division by T (authors'
    code). The loss is ``loss_weight * mean_{b,p} -log(e^{s+} / (e^{s+} +
    sum_r e^{s-_r}))``, computed in float32 with logsumexp.

    Candidates are the pixels of the other images of the batch when
    ``cross_image`` is True, else all pixels of the anchor's image but the
    anchor. With ``negatives_from='global'`` in a distributed run the batch
    is the global one: keys, sampler features and ids of every process are
    gathered (no gradient reaches another process's keys), so with 2 images
    per GPU an anchor has the other ``2 * world_size - 1`` images to draw
    from instead of one. A batch of one image with ``cross_image=True``
    falls back to the within-image candidates and warns once. When fewer
    than R candidates exist all of them are used.

    Memory: anchors are processed per image in chunks of ``chunk_size``
    (c). A chunk draws its negatives from (c, M) blocks (exact draw) or
    (c, R, Y) proposals (rejection draw) and computes its negative logits
    from the (c, R, D) keys it gathers; neither is kept for backward (the
    keys are gathered again there), so autograd holds only the (c, R)
    indices and logits per chunk and no (B*N, R, D) or (B*N, M) tensor is
    ever built.

    Args:
        sampler (str): One of ``'fused'``, ``'fused_class'``, ``'mask'``,
            ``'class'``, ``'uniform'``. Defaults to ``'fused'``.
        num_negatives (int): Negatives R per anchor. Defaults to 200.
        cross_image (bool): Draw negatives from the other images of the
            batch. Defaults to True.
        negatives_from (str): ``'local'`` (this process's images) or
            ``'global'`` (every process's images). Defaults to ``'local'``.
        negative_keys (str): ``'weak'`` or ``'strong'``. Defaults to
            ``'weak'`` (on the toy data, seeds 0 / 1, stage 3 mask AP 38.0
            / 38.4 against 37.1 / 38.6 with ``'strong'``: level within the
            noise, and the authors' choice).
        draw (str): ``'exact'`` or ``'rejection'``. Defaults to ``'exact'``.
        rejection_rounds (int): Proposal rounds of the rejection draw.
            Defaults to 8.
        min_proposals (int): Least proposals per round of the rejection
            draw. Defaults to 32.
        temperature (float): Temperature T; a plain attribute that a hook
            may change during training. Defaults to 0.3.
        neg_margin (float, optional): Hinge on the negative logits; None
            disables it. Defaults to 0.5.
        loss_weight (float): Weight of the loss. Defaults to 0.1.
        chunk_size (int): Anchors per chunk. Defaults to 1024.
        eps (float): Added to ``s_deb`` and used in the normalisations.
            Defaults to 1e-6.
    """

    def __init__(self,
                 sampler: str = 'fused',
                 num_negatives: int = 200,
                 cross_image: bool = True,
                 negatives_from: str = 'local',
                 negative_keys: str = 'weak',
                 draw: str = 'exact',
                 rejection_rounds: int = 8,
                 min_proposals: int = 32,
                 temperature: float = 0.3,
                 neg_margin: Optional[float] = 0.5,
                 loss_weight: float = 0.1,
                 chunk_size: int = 1024,
                 eps: float = 1e-6) -> None:
        super().__init__()
        for name, value, choices in (
            ('sampler', sampler, SAMPLERS), ('draw', draw, DRAWS),
            ('negatives_from', negatives_from, NEGATIVES_FROM),
            ('negative_keys', negative_keys, NEGATIVE_KEYS)):
            if value not in choices:
                raise ValueError(f'{name} must be one of {choices}, '
                                 f'got {value!r}')
        for name, value in (('num_negatives', num_negatives),
                            ('chunk_size', chunk_size),
                            ('rejection_rounds', rejection_rounds),
                            ('min_proposals', min_proposals)):
            if value < 1:
                raise ValueError(f'{name} must be >= 1, got {value}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.sampler = sampler
        self.num_negatives = num_negatives
        self.cross_image = cross_image
        self.negatives_from = negatives_from
        self.negative_keys = negative_keys
        self.draw = draw
        self.rejection_rounds = rejection_rounds
        self.min_proposals = min_proposals
        self.temperature = temperature
        self.neg_margin = neg_margin
        self.loss_weight = loss_weight
        self.chunk_size = chunk_size
        self.eps = eps
        self._warned_single_image = False

    def extra_repr(self) -> str:
        return (f'sampler={self.sampler!r}, draw={self.draw!r}, '
                f'num_negatives={self.num_negatives}, '
                f'cross_image={self.cross_image}, '
                f'negatives_from={self.negatives_from!r}, '
                f'negative_keys={self.negative_keys!r}, '
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

    def _key_axis(
        self, rows: Sequence[Optional[Tensor]], batch_size: int,
        num_pixels: int, device: torch.device
    ) -> Tuple[List[Optional[Tensor]], List[Tuple[int, int]], int]:
        """The rows the negatives are drawn from, and where each image lies.

        Locally (or outside a distributed run) the key axis is this
        process's flat (B*N) pixel axis. With ``negatives_from='global'`` it
        is every process's pixels in rank order: the other processes' rows
        are gathered without gradient, this process's rows are the given
        tensors (a weak-view key keeps its gradient).

        Args:
            rows (list[Tensor | None]): (B*N, C_i) per-pixel tensors of this
                process (keys, sampler features, ids), None where absent.
            batch_size (int): B, this process's images.
            num_pixels (int): N = h * w.
            device (torch.device): Device of the gathered layout.

        Returns:
            tuple: the rows on the key axis (None stays None); the (start,
            end) key rows of every image of the axis; the index on the axis
            of this process's first image.
        """
        if self.negatives_from == 'local' or dist.get_world_size() == 1:
            return list(rows), [(b * num_pixels, (b + 1) * num_pixels)
                                for b in range(batch_size)], 0
        shapes, _ = all_gather_rows(
            torch.tensor([[batch_size, num_pixels]], device=device))
        images, start = [], 0
        for num_images, pixels in shapes.tolist():
            images += [(start + b * pixels, start + (b + 1) * pixels)
                       for b in range(num_images)]
            start += num_images * pixels
        first = int(shapes[:dist.get_rank(), 0].sum())
        offset, end = images[first][0], images[first][0] + batch_size * num_pixels
        present = [row for row in rows if row is not None]
        if not present:
            return list(rows), images, first
        gathered, _ = all_gather_rows(
            torch.cat([row.float() for row in present], dim=1))
        out, col = [], 0
        for row in rows:
            if row is None:
                out.append(None)
                continue
            other = gathered[:, col:col + row.size(1)].to(row.dtype)
            out.append(torch.cat([other[:offset], row, other[end:]]))
            col += row.size(1)
        return out, images, first

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

    def _iter_chunks(
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
            y (Tensor, optional): (B*N, Y) sampler features of the anchors.
            y_keys (Tensor, optional): (M_all, Y) sampler features on the
                key axis.
            images (list[tuple[int, int]]): Key rows of every image.
            first (int): Index in ``images`` of this process's image 0.
            seed (int, optional): When given, image g of the key axis draws
                from its own generator seeded ``seed + g``, so a draw does
                not depend on how the global batch is split over processes.

        Yields:
            tuple: ``(start, end, neg)``: the anchors are the flat pixels
            ``start:end`` and ``neg`` their (end - start, R_eff) negatives,
            as indices into the key axis.
        """
        within = self._within_image(len(images))
        total = images[-1][1]
        num_cand = num_pixels - 1 if within else total - num_pixels
        num_neg = min(self.num_negatives, num_cand)
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
                draw_fn = (self._draw_rejection if self.draw == 'rejection'
                           and num_cand > num_neg else self._draw_exact)
                group.append(
                    draw_fn(None if y is None else y[start:end], y_keys, blocks,
                         own, end - start, num_neg, device, gen))
        yield group_start, batch_size * num_pixels, torch.cat(group)

    @staticmethod
    def _columns_to_keys(cols: Tensor, blocks: Blocks) -> Tensor:
        """Map positions in the concatenated candidate blocks to key rows."""
        keys = cols + blocks[0][0]
        seen = blocks[0][1] - blocks[0][0]
        for s, e in blocks[1:]:
            keys = torch.where(cols >= seen, cols - seen + s, keys)
            seen += e - s
        return keys

    @torch.no_grad()
    def _draw_exact(self, y: Optional[Tensor], y_keys: Optional[Tensor],
                    blocks: Blocks, own: Optional[int], num_anchors: int,
                    num_neg: int, device: torch.device,
                    generator: Optional[torch.Generator]) -> Tensor:
        """Gumbel-top-k draw, without replacement, over all candidates.

        With ``U ~ U(0, 1)`` the Gumbel noise is ``G = -log(-log U)``, so
        ``top-k(log w + G)`` is the top-k of ``w / -log U``, i.e. the
        bottom-k of ``w / log U``: one logarithm per candidate instead of
        three (``Tensor.exponential_`` is several times slower than ``rand``
        + ``log`` on CPU), computed in place with at most two (c, M) tensors
        alive. Uniform weights reduce to the top-k of ``U``.

        Args:
            y (Tensor, optional): (c, Y) sampler features of the anchors.
            y_keys (Tensor, optional): (M_all, Y) features of the key axis.
            blocks (tuple): (start, end) key rows of the candidates.
            own (int, optional): Within-image draws: the key row of the
                first anchor (anchor i is ``own + i``), never drawn.

        Returns:
            Tensor: (c, num_neg) indices into the key axis.
        """
        if num_neg == 0:
            return torch.zeros(num_anchors, 0, dtype=torch.long, device=device)
        num_cand = sum(e - s for s, e in blocks)
        scores = torch.rand(
            num_anchors,
            num_cand,
            generator=generator,
            device=device,
            dtype=torch.float32)
        largest = y is None
        if not largest:
            scores.log_()
            one = scores.new_full((), 1 + self.eps)  # no host copy
            col = 0
            for s, e in blocks:
                block = scores[:, col:col + e - s]
                # max(0, 1 - <y~_p, y~_q>) + eps
                weights = torch.addmm(
                    one, y, y_keys[s:e].t(), alpha=-1).clamp_(min=self.eps)
                torch.div(weights, block, out=block)
                col += e - s
        if own is not None:
            rows = torch.arange(num_anchors, device=device)
            fill = -1.0 if largest else float('inf')
            scores[rows, rows + (own - blocks[0][0])] = fill
        cols = scores.topk(num_neg, dim=1, largest=largest, sorted=False).indices
        return self._columns_to_keys(cols, blocks)

    @torch.no_grad()
    def _draw_rejection(self, y: Optional[Tensor], y_keys: Optional[Tensor],
                        blocks: Blocks, own: Optional[int], num_anchors: int,
                        num_neg: int, device: torch.device,
                        generator: Optional[torch.Generator]) -> Tensor:
        """Rejection draw, with replacement, from uniform proposals.

        Each round proposes ``P = max(num_neg, min_proposals)`` uniform
        candidates to every anchor still short of ``num_neg`` negatives and
        accepts each with probability ``w / (1 + eps)``, in order, until the
        anchor has ``num_neg``. Anchors still short after
        ``rejection_rounds`` rounds fill the rest by Gumbel-top-k on
        ``log w`` among all the proposals they were made. Work per round:
        (c, P, Y) gathered features.

        Args: as :meth:`_draw_exact`.

        Returns:
            Tensor: (c, num_neg) indices into the key axis.
        """
        num_cand = sum(e - s for s, e in blocks) - (own is not None)
        num_prop = max(num_neg, self.min_proposals)
        out = torch.empty(num_anchors, num_neg, dtype=torch.long,
                          device=device)
        filled = torch.zeros(num_anchors, dtype=torch.long, device=device)
        pending = torch.arange(num_anchors, device=device)
        pool_keys = pool_weights = None
        for _ in range(self.rejection_rounds):
            cols = torch.randint(
                num_cand, (pending.numel(), num_prop),
                generator=generator,
                device=device)
            if own is not None:  # skip the anchor's own pixel
                cols += cols >= (pending + own - blocks[0][0])[:, None]
            keys = self._columns_to_keys(cols, blocks)
            u = torch.rand(keys.shape, generator=generator, device=device)
            if y is None:
                weights = torch.ones_like(u)
            else:
                weights = (1 + self.eps - torch.bmm(
                    y_keys[keys], y[pending].unsqueeze(2)).squeeze(2)).clamp_(
                        min=self.eps)
            accept = u * (1 + self.eps) < weights
            slot = filled[pending, None] + accept.cumsum(dim=1) - 1
            rows, cols = (accept & (slot < num_neg)).nonzero(as_tuple=True)
            out[pending[rows], slot[rows, cols]] = keys[rows, cols]
            filled[pending] = (filled[pending] + accept.sum(dim=1)).clamp(
                max=num_neg)
            short = filled[pending] < num_neg
            pending = pending[short]
            pool_keys = keys[short] if pool_keys is None else torch.cat(
                [pool_keys[short], keys[short]], dim=1)
            pool_weights = weights[short] if pool_weights is None else \
                torch.cat([pool_weights[short], weights[short]], dim=1)
            if pending.numel() == 0:
                return out
        # Fallback: weighted draw without replacement among all proposals
        # made to the anchor (Gumbel-top-k as in _draw_exact), into the
        # missing slots.
        u = torch.rand(pool_keys.shape, generator=generator, device=device)
        order = (pool_weights / -u.log()).topk(num_neg, dim=1).indices
        slots = torch.arange(num_neg, device=device)[None]
        have = filled[pending, None]
        fill = pool_keys.gather(1, order.gather(1, (slots - have).clamp(min=0)))
        out[pending] = torch.where(slots >= have, fill, out[pending])
        return out

    @torch.no_grad()
    def sample_negatives(
            self,
            mask_logits: Optional[Tensor],
            cls_logits: Optional[Tensor],
            size: Tuple[int, int],
            batch_size: Optional[int] = None,
            device: Optional[torch.device] = None,
            generator: Optional[torch.Generator] = None,
            seed: Optional[int] = None) -> Tensor:
        """Draw the negatives exactly as :meth:`forward` does.

        With the same random state (``torch.manual_seed``, a generator in
        the same state, or the same ``seed``) and the same ``chunk_size``,
        :meth:`forward` draws the same indices. Under
        ``negatives_from='global'`` every process must call it.

        Args:
            mask_logits (Tensor, optional): (B, K, H', W') mask logits.
            cls_logits (Tensor, optional): (B, K, C + 1) class logits.
            size (tuple[int, int]): The embedding grid (h, w).
            batch_size (int, optional): B; needed only for ``'uniform'``
                without logits.
            device (torch.device, optional): Device of the draw; defaults to
                the logits' device.
            generator (torch.Generator, optional): Random generator.
            seed (int, optional): Per-image seeds (see :meth:`_iter_chunks`);
                overrides ``generator``.

        Returns:
            Tensor: (B*N, R_eff) long indices into the key axis: the flat
            (B*N) pixel axis (pixel p of image b is ``b * N + p``, row-major
            over (h, w)); under ``negatives_from='global'`` the pixels of
            every process's images in rank order.
        """
        if batch_size is None:
            batch_size = mask_logits.size(0)
        if device is None:
            device = (
                mask_logits.device
                if mask_logits is not None else torch.device('cpu'))
        num_pixels = size[0] * size[1]
        y = self.sampling_features(mask_logits, cls_logits, size)
        if y is not None:
            y = y.flatten(0, 1)
        (y_keys, ), images, first = self._key_axis([y], batch_size,
                                                   num_pixels, device)
        return torch.cat([
            neg for *_, neg in self._iter_chunks(
                y, y_keys, images, first, batch_size, num_pixels, device,
                generator, seed)
        ])

    def forward(self,
                z_weak: Tensor,
                z_strong: Tensor,
                mask_logits: Optional[Tensor] = None,
                cls_logits: Optional[Tensor] = None,
                instance_ids: Optional[Tensor] = None,
                neg_indices: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None,
                seed: Optional[int] = None) -> Dict[str, Tensor]:
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
            seed (int, optional): Per-image seeds of the draw (see
                :meth:`_iter_chunks`); overrides ``generator``.

        Returns:
            dict[str, Tensor]: ``loss_pxl`` the weighted loss, the mean over
            this process's anchors; ``pxl_margin`` (detached) the mean
            cosine distance (1 - cos) of the sampled negatives minus that of
            the positives (0 for the negatives when none exist);
            ``pxl_fnr`` (only with ``instance_ids``, detached) the share of
            sampled negatives of anchors with a non-negative id whose id
            equals the anchor's (0 when there are none).
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
            y = None
            if neg_indices is None:
                y = self.sampling_features(mask_logits, cls_logits, (h, w))
                y = None if y is None else y.flatten(0, 1)
            ids = None if instance_ids is None else instance_ids.reshape(
                -1, 1).to(device)
            (keys, y_keys, id_keys), images, first = self._key_axis(
                [z_s if self.negative_keys == 'strong' else z_w, y, ids],
                batch_size, num_pixels, device)

            loss_sum = z_w.new_zeros(())
            pos_dist = z_w.new_zeros(())
            neg_dist = z_w.new_zeros(())
            num_neg = 0
            false_neg = z_w.new_zeros(())
            num_fnr = z_w.new_zeros(())
            for start, end, neg in self._iter_chunks(
                    y, y_keys, images, first, batch_size, num_pixels, device,
                    generator, seed, neg_indices):
                anchors = z_w[start:end]
                pos_cos = (anchors * z_s[start:end]).sum(dim=1)
                neg_cos = _GatheredCosine.apply(anchors, keys, neg)
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
                        anchor_ids = ids[start:end]
                        valid = (anchor_ids >= 0).expand_as(neg)
                        false_neg += ((id_keys[neg, 0] == anchor_ids)
                                      & valid).sum()
                        num_fnr += valid.sum()

        num_anchors = batch_size * num_pixels
        losses = dict(
            loss_pxl=self.loss_weight * loss_sum / num_anchors,
            pxl_margin=neg_dist / max(num_neg, 1) - pos_dist / num_anchors)
        if ids is not None:
            losses['pxl_fnr'] = false_neg / num_fnr.clamp(min=1)
        return losses
