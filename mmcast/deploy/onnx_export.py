# Copyright (c) mmcast contributors. All rights reserved.
"""Export a Mask2Former instance-segmentation model to ONNX.

The graph takes the float32 image batch ``images`` (B, 3, H, W) in the test
pipeline's channel order (BGR, as loaded by ``LoadImageFromFile``) and
0-255 range, already resized and padded to a multiple of the data
preprocessor's ``pad_size_divisor`` with ``pad_value`` (the preprocessor's
mean in that order, so that padded pixels normalise to the value the
preprocessor pads with). Inside: channel flip and mean/std normalisation,
backbone (+ neck), pixel decoder and masked-attention decoder (or the
EoMT student's ViT with its queries, the attention unmasked). Outputs are
the last decoder layer's (EoMT: the final prediction's) ``cls_logits``
(B, Q, C + 1) and ``mask_logits`` (B, Q, H / s, W / s), s the stride of
the mask features (4 for ResNet + MSDeformAttn and for EoMT, 3.5 for
DINOv2-S/14 + DPT). The instance post-processing
(top-k pairs, mask resampling, scores, boxes) stays outside the graph:
:func:`mmcast.models.seg_heads.lean_instance_results` on the outputs gives
what the eager model's ``predict`` gives.

Export uses PyTorch's TorchScript exporter (``torch.onnx.export(...,
dynamo=False)``), which needs no ``onnxscript``. The exported model is
checked with ``onnx.checker`` and, unless ``verify=False``, run with ONNX
Runtime against the eager network (at the traced shape and, for dynamic
H/W, at a second shape and batch size), which catches shapes that tracing
froze into constants. Models must fit ONNX's 2 GB protobuf limit.
"""
import io
import os.path as osp
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from torch import Tensor, nn

from mmcast.utils.atomic_io import atomic_open
from .half_precision import cast_network
from .loading import load_mask2former, runtime_metadata
from .metadata import INPUT_NAME, OUTPUT_NAMES, DeployError, encode_metadata
from .static_eomt import final_logits


class Mask2FormerONNXWrapper(nn.Module):
    """A Mask2Former as a function of the padded 0-255 image batch.

    Args:
        detector (nn.Module): An mmdet ``Mask2Former`` (or subclass) whose
            ``panoptic_head`` is a ``Mask2FormerHead``, or an
            ``EoMTStudent`` (its final prediction, no masked attention:
            :func:`~mmcast.deploy.static_eomt.final_logits`).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        pre = detector.data_preprocessor
        self.flip_channels = bool(getattr(pre, '_channel_conversion', False))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        if self.normalize:
            self.register_buffer('mean', pre.mean.detach().float().view(
                1, -1, 1, 1).clone(), persistent=False)
            self.register_buffer('std', pre.std.detach().float().view(
                1, -1, 1, 1).clone(), persistent=False)

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, 3, H, W) float32 → ``cls_logits`` (B, Q, C + 1) and
        ``mask_logits`` (B, Q, H / s, W / s) of the last decoder layer,
        float32 (a half-precision detector, :func:`cast_network`, runs
        in it between the float32 normalisation and outputs)."""
        if self.flip_channels:
            images = images[:, [2, 1, 0]]
        if self.normalize:
            images = (images - self.mean) / self.std
        half = next(self.detector.parameters()).dtype != torch.float32
        if half:
            images = images.to(next(self.detector.parameters()).dtype)
        cls_logits, mask_logits = final_logits(self.detector, images)
        if half:
            return cls_logits.float(), mask_logits.float()
        return cls_logits, mask_logits


def _compare(session, wrapper: nn.Module, shape: Sequence[int], seed: int,
             where: str) -> float:
    """Largest |ORT - eager| of both outputs on a random batch, relative to
    the eager outputs' largest magnitude."""
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
    x = x * 255
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(x)]
    try:
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x.numpy()})
    except Exception as e:  # noqa: BLE001 - ORT raises its own types
        raise DeployError(
            f'{where}: the exported graph fails at input {tuple(shape)}: a '
            'shape frozen by tracing? Export at a fixed input_shape or '
            f'another trace_shape ({str(e).splitlines()[0][:300]})') from e
    worst = 0.
    for name, e, g in zip(OUTPUT_NAMES, expected, got):
        if e.shape != g.shape:
            raise DeployError(f'{where}: ONNX output {name} is {g.shape} at '
                              f'input {tuple(shape)}, eager {e.shape}')
        worst = max(worst, float(np.abs(e - g).max() /
                                 max(1., np.abs(e).max())))
    return worst


def _checked_shape(shape: Sequence[int], divisor: int, name: str,
                   where: str) -> Tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or any(s <= 0 or s % divisor for s in shape):
        raise DeployError(f'{name}={shape}: (H, W) must be positive '
                          f'multiples of {where}\'s pad_size_divisor '
                          f'{divisor}')
    return shape


def export_onnx(config: Union[str, Config],
                checkpoint: str,
                out_file: str,
                input_shape: Optional[Sequence[int]] = None,
                opset: int = 17,
                cfg_options: Optional[dict] = None,
                trace_shape: Optional[Sequence[int]] = None,
                verify: bool = True,
                tolerance: Optional[float] = None,
                precision: str = 'float32') -> Dict[str, Any]:
    """Export a (published) Mask2Former checkpoint to an ONNX file.

    Args:
        config (str | Config): The model's config (e.g. the ``<name>.py``
            that ``tools/publish_model.py`` writes).
        checkpoint (str): Its checkpoint (e.g. ``<name>-<sha8>.pth``).
        out_file (str): The ``.onnx`` file, written atomically.
        input_shape (Sequence[int], optional): Fixed padded input (H, W),
            multiples of ``pad_size_divisor``; None: dynamic H and W. The
            batch size is dynamic in both cases.
        opset (int): ONNX opset. Defaults to 17.
        cfg_options (dict, optional): Overrides of the config.
        trace_shape (Sequence[int], optional): (H, W) traced for a dynamic
            export; defaults to (4 d, 6 d), d = ``pad_size_divisor``. Not
            the size whose patch grid a ViT's ``pos_embed`` has (mmpretrain
            skips the resize there, and the trace would keep that size).
        verify (bool): Run the export with ONNX Runtime against the eager
            network. Defaults to True.
        tolerance (float, optional): Largest accepted output difference,
            relative to the largest output magnitude. Defaults to 1e-4
            (float32) or 2e-2 (float16).
        precision (str): ``'float32'`` or ``'float16'``: the network's
            weights and activations (norms in float32,
            :func:`mmcast.deploy.cast_network`); input and outputs stay
            float32. The float16 graph holds only standard ONNX ops
            (TensorRT's and ONNX Runtime's).

    Returns:
        dict: ``file``, ``metadata`` and ``max_rel_diff`` (None without
        ``verify``).

    Raises:
        FileNotFoundError, DeployError, CheckpointError: Naming the bad
            file or config key (see :func:`.loading.load_mask2former`).
    """
    import onnx
    where = config if isinstance(config, str) else config.filename
    if precision not in ('float32', 'float16'):
        raise DeployError(f'precision must be float32 or float16, got '
                          f'{precision!r}')
    model, cfg, ckpt = load_mask2former(config, checkpoint, cfg_options)
    cast_network(model, getattr(torch, precision))
    wrapper = Mask2FormerONNXWrapper(model).eval()
    divisor = max(1, int(model.data_preprocessor.pad_size_divisor))
    if input_shape is not None:
        input_shape = _checked_shape(input_shape, divisor, 'input_shape',
                                     where)
    shape = input_shape or _checked_shape(
        trace_shape or (4 * divisor, 6 * divisor), divisor, 'trace_shape',
        where)
    meta = runtime_metadata(model, cfg, ckpt, checkpoint, input_shape,
                            where)
    meta.update(opset=opset, precision=precision)
    example = torch.rand(1, 3, *shape,
                         generator=torch.Generator().manual_seed(0)) * 255
    dynamic = {0: 'batch'} if input_shape else {
        0: 'batch', 2: 'height', 3: 'width'}
    mask_dynamic = {0: 'batch'} if input_shape else {
        0: 'batch', 2: 'mask_height', 3: 'mask_width'}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # tracing mmcv's deformable attention warns of shape-dependent
        # Python values; verify=True checks the graph at other shapes
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(
                wrapper, (example, ), buffer, dynamo=False,
                opset_version=opset, input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={INPUT_NAME: dynamic,
                              OUTPUT_NAMES[0]: {0: 'batch'},
                              OUTPUT_NAMES[1]: mask_dynamic},
                do_constant_folding=True)
        except Exception as e:
            raise RuntimeError(
                f'torch.onnx.export(dynamo=False) of {where} failed: '
                f'{type(e).__name__}: {e}') from e
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in encode_metadata(meta).items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f'mmcast Mask2Former of {osp.basename(checkpoint)}'
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    worst = None
    if verify:
        import onnxruntime as ort
        session = ort.InferenceSession(
            data, providers=['CPUExecutionProvider'])
        worst = _compare(session, wrapper, (1, 3, *shape), 1, where)
        if input_shape is None:
            other = (2, 3, shape[0] + 2 * divisor, shape[1] + divisor)
            worst = max(worst, _compare(session, wrapper, other, 2, where))
        if tolerance is None:
            tolerance = 1e-4 if precision == 'float32' else 2e-2
        if worst > tolerance:
            raise DeployError(
                f'{where}: ONNX Runtime differs from PyTorch by {worst:.2e} '
                f'(relative) > {tolerance:.0e}: a shape frozen by tracing? '
                'Export at a fixed input_shape')
    with atomic_open(out_file, 'wb') as f:
        f.write(data)
    print_log(f'exported {where} ({osp.basename(checkpoint)}) to {out_file}',
              logger='current')
    return dict(file=out_file, metadata=meta, max_rel_diff=worst)
