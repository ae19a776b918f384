# Copyright (c) mmcast contributors. All rights reserved.
"""The EoMT student's instance prediction as one static-shape function.

:class:`StaticEoMTPredictor` is :class:`StaticMask2FormerPredictor` with
:class:`~mmcast.models.detectors.EoMTStudent`'s network: the ViT whose
last ``L`` blocks see the ``K`` queries, and the class and mask heads of
its final prediction. The attention is never masked (the inference path of
``EoMTStudent``: mask annealing is a training matter, whatever
``attn_mask_probs`` the model holds), so the network is plain tensor code
and the whole predict compiles as one graph, exports with
``torch.export`` (AOTInductor) and ONNX as the Mask2Former students'.
``EoMTStudent.predict`` post-processes with the same
``LeanMaskFormerFusionHead`` as they do: the same top-k (query, class)
pairs, scores (class probability × mask score) and masks
(:mod:`mmcast.deploy.static_predict`'s module doc).
:func:`build_static_predictor` builds it for an ``EoMTStudent``.
"""
from typing import Tuple

from torch import Tensor, nn

from mmcast.models.detectors import EoMTStudent
from .metadata import DeployError
from .static_predict import STATIC_PREDICTORS, StaticMask2FormerPredictor


def final_logits(detector: nn.Module, inputs: Tensor) -> Tuple[Tensor, Tensor]:
    """Class logits (B, Q, C + 1) and mask logits (B, Q, h, w) of the final
    prediction of a Mask2Former (its last decoder layer) or an
    ``EoMTStudent`` (no masked attention), from the normalised, padded
    input (B, 3, H, W)."""
    if isinstance(detector, EoMTStudent):
        cls_logits, mask_logits = detector.forward_queries(inputs)
    else:
        cls_logits, mask_logits = detector.panoptic_head(
            detector.extract_feat(inputs), [])
    return cls_logits[-1], mask_logits[-1]


class StaticEoMTPredictor(StaticMask2FormerPredictor):
    """An ``EoMTStudent``'s instance predict as a static-shape function.

    Args:
        detector (nn.Module): An :class:`EoMTStudent`, instance classes
            only; used, not copied (cast it first, if at all).
        input_size (Sequence[int]): The canvas (H, W), a multiple of the
            data preprocessor's ``pad_size_divisor`` (of the ViT's patch
            size).
        capacity (int, optional): Instances kept per image; defaults to
            ``test_cfg.max_per_image`` (100 if unset), at most K × C.
        score_resolution (str): ``'low'`` or ``'input'``
            (:class:`StaticMask2FormerPredictor`).
    """

    @staticmethod
    def num_queries_of(detector: nn.Module) -> int:
        """The queries ``K`` of an ``EoMTStudent``; raises
        :class:`DeployError` for another detector."""
        if not isinstance(detector, EoMTStudent):
            raise DeployError(f'{type(detector).__name__} is not an '
                              'EoMTStudent')
        return detector.num_queries

    def network(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Class logits (B, K, C + 1) and mask logits (B, K, h, w) of the
        final prediction, the attention unmasked."""
        return final_logits(self.detector, inputs)


STATIC_PREDICTORS['EoMTStudent'] = StaticEoMTPredictor
