# Copyright (c) mmcast contributors. All rights reserved.
"""A torch-native deployable package (``.pt2``) of a Mask2Former student.

:func:`export_pt2` exports the whole static predict
(:class:`~mmcast.deploy.static_predict.StaticMask2FormerPredictor`:
normalisation and padding, network, top-k, mask scores, upsampled masks
packed 8 pixels a byte and boxes) with ``torch.export`` and compiles it
ahead of time with AOTInductor into one ``.pt2`` file. It runs with PyTorch alone (no mmcast,
MMDetection or MMCV)::

    import torch
    model = torch._inductor.aoti_load_package('student.pt2')
    scores, labels, packed_masks, boxes, left_out = model(images,
                                                         image_sizes)
    model.get_metadata()  # JSON text per key, see below

``images`` are uint8 (B, H, W, 3) BGR on the canvas the package was built
for, each image resized by the test pipeline and put top-left;
``image_sizes`` int64 (B, 2) their (h, w). B is dynamic (1 to
``max_batch``), H and W fixed. ``packed_masks`` are uint8
(B, K, H, ceil(W / 8)), bit 7 - j of byte x pixel 8 x + j
(``numpy.unpackbits(packed_masks, axis=-1, count=W)``,
:mod:`~mmcast.deploy.packed_masks`); a package exported with
``mask_format='bool'``, and any written before packed masks, returns bool
``masks`` (B, K, H, W) instead. The metadata (AOTInductor's
``aot_inductor.metadata``, readable without loading the compiled code:
:func:`read_pt2_metadata`) holds the class names, ``capacity`` (instances
kept per image: the config's ``test_cfg.max_per_image``), ``input_size``,
``precision``, ``mask_format`` (``'packed'`` or ``'bool'``; absent:
``'bool'``), ``outputs`` (their names), the test pipeline's load and
resize and the sha256 of the checkpoint it came from.

A ``.pt2`` holds compiled machine code that runs when it is loaded: load
only packages you trust. :func:`load_pt2` checks the package's sha256
before loading it when one is given. The code is compiled for the device
(CPU instruction set, or CUDA architecture) of the machine that exported
it (``AOTI_CPU_ISA`` / ``AOTI_COMPUTE_CAPABILITY`` in the metadata).
"""
import copy
import json
import os
import os.path as osp
import uuid
import zipfile
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

from mmcast.utils.file_hashing import file_sha256
from .loading import load_mask2former, runtime_metadata
from .metadata import DeployError, encode_metadata
from .packed_masks import check_mask_format
from .static_predict import (STATIC_INPUTS, STATIC_OUTPUTS,
                             StaticMask2FormerPredictor,
                             build_static_predictor)

PT2_FORMAT = 'mmcast-mask2former-static-pt2/1'
PRECISIONS = {'float32': torch.float32, 'float16': torch.float16,
              'bfloat16': torch.bfloat16}
PT2_REQUIRED_KEYS = ('format', 'classes', 'capacity', 'input_size',
                     'precision', 'inputs', 'outputs', 'load_image',
                     'resize', 'checkpoint_sha256')
METADATA_SUFFIX = 'wrapper_metadata.json'


def static_outputs(mask_format: str) -> Tuple[str, ...]:
    """The output names of a package with masks in ``mask_format``."""
    if mask_format == 'bool':
        return STATIC_OUTPUTS
    return tuple('packed_masks' if name == 'masks' else name
                 for name in STATIC_OUTPUTS)


def package_mask_format(meta: Dict[str, Any], path: str) -> str:
    """The mask format of a package's metadata: ``'bool'`` for a package
    without the key (written before packed masks); one this mmcast does not
    know is a :class:`DeployError` naming ``path``."""
    return check_mask_format(meta.get('mask_format', 'bool'), path)


def example_inputs(input_size: Sequence[int], batch_size: int = 2,
                   device: Union[str, torch.device] = 'cpu',
                   seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 images (B, H, W, 3) filling the canvas but the last,
    which is a smaller image (so that the padding path is traced and
    checked), and their sizes (B, 2)."""
    gen = torch.Generator().manual_seed(seed)
    height, width = input_size
    images = torch.randint(0, 256, (batch_size, height, width, 3),
                           dtype=torch.uint8, generator=gen)
    sizes = torch.tensor([[height, width]] * batch_size)
    sizes[-1] = torch.tensor([height - height // 4, width - width // 3])
    return images.to(device), sizes.to(device)


def export_static_program(predictor: nn.Module, max_batch: int = 64
                          ) -> torch.export.ExportedProgram:
    """``torch.export`` of a static predictor with a dynamic batch size
    (1 to ``max_batch``, at least 2) and its fixed canvas."""
    device = predictor.mean.device
    images, sizes = example_inputs(predictor.input_size, 2, device)
    batch = torch.export.Dim('batch', min=1, max=max(2, max_batch))
    with torch.no_grad():
        return torch.export.export(
            predictor, (images, sizes),
            dynamic_shapes=({0: batch}, {0: batch}), strict=False)


def _sorted_score_gap(a: Sequence[torch.Tensor],
                      b: Sequence[torch.Tensor]) -> float:
    """Largest difference of the two outputs' scores, each image's sorted
    (ties between near-equal pairs may swap their order)."""
    return float((a[0].float().sort(dim=1).values -
                  b[0].float().sort(dim=1).values).abs().max())


def export_pt2(config: Union[str, Config],
               checkpoint: str,
               out_file: str,
               input_size: Sequence[int],
               precision: str = 'float32',
               device: str = 'cpu',
               score_resolution: str = 'low',
               mask_format: str = 'packed',
               max_batch: int = 64,
               cfg_options: Optional[dict] = None,
               verify: bool = True,
               tolerance: Optional[float] = None) -> Dict[str, Any]:
    """Export a (published) Mask2Former checkpoint to a ``.pt2`` package.

    Args:
        config (str | Config): The model's config.
        checkpoint (str): Its checkpoint.
        out_file (str): The ``.pt2`` file, written atomically.
        input_size (Sequence[int]): The canvas (H, W): the padded size
            after the test resize, a multiple of ``pad_size_divisor``.
        precision (str): ``'float32'``, ``'float16'`` or ``'bfloat16'``
            (weights cast, norms in float32: :func:`cast_network`).
        device (str): ``'cpu'`` or ``'cuda'``: where the package runs.
        score_resolution (str): ``'low'`` or ``'input'``
            (:class:`StaticMask2FormerPredictor`).
        mask_format (str): ``'packed'`` (uint8 masks, 8 pixels a byte) or
            ``'bool'`` (:mod:`.packed_masks`).
        max_batch (int): Largest batch size it takes. Defaults to 64.
        cfg_options (dict, optional): Overrides of the config.
        verify (bool): Load the package and compare it with the eager
            predictor of the same precision on a random batch.
        tolerance (float, optional): Largest accepted score difference;
            defaults to 1e-3 (float32) or 2e-2 (half precision).

    Returns:
        dict: ``file``, ``metadata``, ``sha256`` (of the package) and
        ``max_score_diff`` (None without ``verify``).
    """
    if precision not in PRECISIONS:
        raise DeployError(f'precision must be one of {list(PRECISIONS)}, '
                          f'got {precision!r}')
    where = config if isinstance(config, str) else config.filename
    model, cfg, ckpt = load_mask2former(config, checkpoint, cfg_options)
    meta = runtime_metadata(model, cfg, ckpt, checkpoint, input_size, where)
    predictor = build_static_predictor(
        model.to(device), input_size, PRECISIONS[precision],
        score_resolution=score_resolution, mask_format=mask_format)
    meta.update(
        format=PT2_FORMAT, capacity=predictor.capacity,
        input_size=list(predictor.input_size), precision=precision,
        score_resolution=score_resolution, mask_format=mask_format,
        inputs=list(STATIC_INPUTS),
        outputs=list(static_outputs(mask_format)), max_batch=max_batch,
        device=torch.device(device).type, torch_version=torch.__version__)
    try:
        program = export_static_program(predictor, max_batch)
    except Exception as e:
        raise DeployError(
            f'{where}: torch.export failed ({type(e).__name__}: '
            f'{str(e).splitlines()[0][:300]}); the static predict needs a '
            'network without host synchronisation (the DINOv2 / DINOv3 DPT '
            'and MSDeformAttn pixel decoders export; another module that '
            'reads device data or shapes back on the host does not)') from e
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{uuid.uuid4().hex}.pt2')
    try:
        torch._inductor.aoti_compile_and_package(
            program, package_path=tmp,
            inductor_configs={
                'aot_inductor.metadata': encode_metadata(meta)})
        gap = None
        if verify:
            gap = _verify(tmp, predictor, precision, tolerance, where)
        os.replace(tmp, out_file)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    print_log(f'exported {where} ({osp.basename(checkpoint)}) to {out_file}',
              logger='current')
    return dict(file=out_file, metadata=meta, max_score_diff=gap,
                sha256=file_sha256(out_file, use_cache=False))


def _verify(path: str, predictor: StaticMask2FormerPredictor,
            precision: str, tolerance: Optional[float], where: str) -> float:
    """The package's largest score difference from the eager predictor;
    raises above ``tolerance``."""
    if tolerance is None:
        tolerance = 1e-3 if precision == 'float32' else 2e-2
    images, sizes = example_inputs(predictor.input_size, 3,
                                   predictor.mean.device, seed=1)
    package = torch._inductor.aoti_load_package(path)
    with torch.no_grad():
        gap = _sorted_score_gap(package(images, sizes),
                                predictor(images, sizes))
    if not gap <= tolerance:
        raise DeployError(f'{where}: the .pt2 package\'s scores differ from '
                          f'the eager model\'s by {gap:.2e} > {tolerance:.0e}')
    return gap


def read_pt2_metadata(path: str) -> Dict[str, Any]:
    """The metadata of a package written by :func:`export_pt2`, read from
    the archive without loading its compiled code.

    Raises:
        FileNotFoundError: Naming a missing file.
        DeployError: Naming a file that is no ``.pt2`` package or has no
            mmcast metadata.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'.pt2 package not found: {path}')
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist()
                     if n.endswith(METADATA_SUFFIX)]
            props = json.loads(archive.read(names[0])) if names else {}
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as e:
        raise DeployError(f'{path}: not a .pt2 package ({e})') from e
    if 'format' not in props:
        raise DeployError(f'{path}: no mmcast metadata (key "format"): '
                          'export the model with tools/deploy/export_pt2.py')
    meta = {}
    for key, value in props.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value  # AOTInductor's own keys are plain text
    if meta['format'] != PT2_FORMAT:
        raise DeployError(f'{path}: metadata format {meta["format"]!r}, '
                          f'this mmcast reads {PT2_FORMAT!r}')
    missing = [k for k in PT2_REQUIRED_KEYS if k not in meta]
    if missing:
        raise DeployError(f'{path}: metadata key {missing[0]!r} missing')
    meta['mask_format'] = package_mask_format(meta, path)
    return meta


def load_pt2(path: str, sha256: Optional[str] = None,
             device_index: int = -1) -> Tuple[Any, Dict[str, Any]]:
    """Check and load a ``.pt2`` package: the compiled model and its
    metadata.

    Args:
        path (str): The package.
        sha256 (str, optional): The sha256 the file must have (e.g. as
            published beside it); checked before anything is loaded.
        device_index (int): The CUDA device of a CUDA package (-1: the
            current one).

    Raises:
        FileNotFoundError, DeployError: Naming the file (missing, another
            sha256, no mmcast metadata).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'.pt2 package not found: {path}')
    if sha256 is not None:
        actual = file_sha256(path, use_cache=False)
        if actual != sha256.lower():
            raise DeployError(
                f'{path}: sha256 {actual} is not the expected {sha256}: '
                'the package was changed or is another one; not loaded')
    meta = read_pt2_metadata(path)
    if meta.get('device') == 'cuda' and not torch.cuda.is_available():
        raise DeployError(f'{path}: a CUDA package and no CUDA device is '
                          'visible; export one with --device cpu')
    return torch._inductor.aoti_load_package(
        path, device_index=device_index), meta


def eager_reference(model: nn.Module, meta: Dict[str, Any]
                    ) -> StaticMask2FormerPredictor:
    """The eager predictor a package of ``meta`` was made from (a copy of
    ``model`` cast to the package's precision), for comparisons."""
    return build_static_predictor(
        copy.deepcopy(model), meta['input_size'],
        PRECISIONS[meta['precision']], capacity=meta['capacity'],
        score_resolution=meta['score_resolution'],
        mask_format=meta.get('mask_format', 'bool'))
