# Copyright (c) mmcast contributors. All rights reserved.
"""Build SAM 2 (``sam2.modeling.sam2_base.SAM2Base``) from a config shipped
in the ``sam2`` package or a yaml file of that format, and a local
checkpoint."""
import os.path as osp
from typing import List, Optional, Sequence

from torch import nn

from .utils import SAM2_HINT, check_local_file


def build_sam2_model(config_file: str,
                     checkpoint: Optional[str] = None,
                     hydra_overrides: Sequence[str] = (),
                     apply_postprocessing: bool = True) -> nn.Module:
    """Build a ``sam2.modeling.sam2_base.SAM2Base`` on the CPU, in eval mode.

    Args:
        config_file: a config shipped in the ``sam2`` package, e.g.
            ``'configs/sam2.1/sam2.1_hiera_l.yaml'``, or the path of a yaml
            file in the same format.
        checkpoint: local path of the official ``.pt`` checkpoint (a dict
            with the state dict under ``'model'``); ``None`` keeps the random
            initialisation (tests only).
        hydra_overrides: extra hydra overrides (``'model.image_size=256'``).
        apply_postprocessing: the official builder's post-processing
            overrides (a single requested mask falls back to the most stable
            of the multi-mask outputs when it is unstable).

    Raises:
        FileNotFoundError: ``checkpoint`` is given but no such file exists.
    """
    if checkpoint is not None:
        check_local_file(checkpoint, 'SAM 2 checkpoint', SAM2_HINT,
                         name=osp.basename(checkpoint))
    overrides = list(hydra_overrides)
    if osp.isfile(config_file):
        # a yaml outside the sam2 package: load it with OmegaConf directly.
        from hydra.utils import instantiate
        from omegaconf import OmegaConf
        from sam2.build_sam import _load_checkpoint
        if apply_postprocessing:
            overrides += _postprocessing_overrides()
        cfg = OmegaConf.load(config_file)
        dotlist = [o.lstrip('+') for o in overrides]
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
        OmegaConf.resolve(cfg)
        model = instantiate(cfg.model, _recursive_=True)
        _load_checkpoint(model, checkpoint)
        return model.eval()
    from sam2.build_sam import build_sam2
    return build_sam2(
        config_file,
        checkpoint,
        device='cpu',
        mode='eval',
        hydra_overrides_extra=overrides,
        apply_postprocessing=apply_postprocessing)


def _postprocessing_overrides() -> List[str]:
    return [
        '++model.sam_mask_decoder_extra_args.'
        'dynamic_multimask_via_stability=true',
        '++model.sam_mask_decoder_extra_args.'
        'dynamic_multimask_stability_delta=0.05',
        '++model.sam_mask_decoder_extra_args.'
        'dynamic_multimask_stability_thresh=0.98',
    ]
