# Copyright (c) mmcast contributors. All rights reserved.
"""FLOP (MAC) counts of ``tools/analysis/model_cost.py`` and the extra jit
handlers of ``mmcast.utils.flop_handlers``: a ViT block and a masked
cross-attention counted against hand counts, and the command line on the
toy DINOv2 student."""
import json
import os
import os.path as osp
import subprocess
import sys

import torch
import torch.nn as nn

import mmcast  # noqa: F401  (registers the modules)
from mmcast.models.backbones import DINOv2MultiLevel
from mmcast.utils.flop_handlers import count_flops

from conftest import REPO_ROOT

TINY_STUDENT = osp.join(REPO_ROOT, 'configs', 'mmcast', '_base_', 'models',
                        'student_dinov2-tiny_dpt_toy.py')
ELEMENTWISE = {'aten::add', 'aten::mul', 'aten::gelu'}


def test_vit_block_counts_linear_attention_and_norms_exactly():
    """One block of the DINOv2 student (64-d, 2 heads, FFN 4d) on N tokens.

    From the block's code (mmpretrain ``TransformerEncoderLayer``):
    ``x + gamma1(proj(sdpa(qkv(ln1(x)))))`` then
    ``x + gamma2(fc2(gelu(fc1(ln2(x)))))``. MACs: qkv ``3 N d^2``, Q K^T and
    A V ``2 N^2 d``, proj ``N d^2``, fc1 + fc2 ``2 N d (4 d)``; the two
    LayerNorms count ``5 N d`` each (MMEngine's convention); LayerScale,
    GELU and the residual adds are elementwise and not counted.
    """
    d, heads, n = 64, 2, 1 + 6 * 12  # cls token + a 6x12 patch grid
    backbone = DINOv2MultiLevel(
        arch=dict(embed_dims=d, num_layers=1, num_heads=heads,
                  feedforward_channels=4 * d),
        img_size=(48, 96), patch_size=8, out_indices=(0, ),
        out_channels=(16, ), resize_factors=(1, ), init_cfg=None)
    block = backbone.layers[0].eval()
    with torch.no_grad():
        analyzer = count_flops(block, (torch.randn(1, n, d), ))
        by_op = analyzer.by_operator()

    assert by_op['linear'] == 3 * n * d * d + n * d * d + 2 * n * d * 4 * d
    assert by_op['scaled_dot_product_attention'] == 2 * n * n * d
    assert by_op['layer_norm'] == 2 * 5 * n * d
    assert analyzer.total() == 12 * n * d * d + 2 * n * n * d + 10 * n * d
    assert set(analyzer.unsupported_ops()) <= ELEMENTWISE


def test_masked_cross_attention_counts_the_baddbmm_scores():
    """``nn.MultiheadAttention`` with a mask (Mask2Former's masked
    cross-attention): Q K^T runs as ``aten::baddbmm``, A V as ``aten::bmm``.

    MACs: q projection ``Lq d^2``, k and v projections ``2 Lk d^2``, scores
    and weighted sum ``2 Lq Lk d``, output projection ``Lq d^2``.
    """
    d, heads, lq, lk = 32, 4, 10, 48

    class MaskedCrossAttention(nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)

        def forward(self, query: torch.Tensor, key: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
            return self.attn(query, key, key, attn_mask=mask)[0]

    query, key = torch.randn(1, lq, d), torch.randn(1, lk, d)
    mask = torch.rand(heads, lq, lk) > 0.5
    mask[..., 0] = False  # every query sees at least one key
    with torch.no_grad():
        analyzer = count_flops(MaskedCrossAttention().eval(),
                               (query, key, mask))
        by_op = analyzer.by_operator()

    assert by_op['baddbmm'] == lq * lk * d
    assert by_op['bmm'] == lq * lk * d
    assert by_op['linear'] == 2 * lq * d * d + 2 * lk * d * d
    assert 'aten::baddbmm' not in analyzer.unsupported_ops()


def test_model_cost_cli_counts_vit_attention_and_lists_uncounted_ops(
        tmp_path):
    """The command line on the toy DINOv2 student (4 blocks, 64-d, patch 8).

    A 64x128 input (a multiple of the preprocessor's 16) gives 8x16 patches
    + the cls token = 129 tokens, so the ViT's attention is exactly
    ``4 * 2 N^2 d`` MACs; the Mask2Former decoder's attention runs as
    ``bmm`` / ``baddbmm``, not as fused attention.
    """
    out = tmp_path / 'cost.json'
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/model_cost.py', TINY_STUDENT,
         '--shape', '64', '128', '--repeats', '0', '--out', str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())['results'][0]

    n, d = 1 + 8 * 16, 64
    by_op = result['flops_by_operator']
    assert result['input_shape'] == [64, 128]
    assert by_op['scaled_dot_product_attention'] == 4 * 2 * n * n * d
    assert by_op['baddbmm'] > 0
    assert result['flops'] == sum(by_op.values())
    uncounted = result['uncounted_ops']
    assert 'aten::scaled_dot_product_attention' not in uncounted
    assert 'aten::baddbmm' not in uncounted
    assert uncounted['aten::gelu'] > 0  # uncounted ops are reported
    assert 'FLOPs (MACs)' in proc.stdout
    assert 'not counted (0 FLOPs): ' in proc.stdout
    assert 'aten::gelu x' in proc.stdout


TOY_DINOV3_STUDENT = osp.join(REPO_ROOT, 'configs', 'mmcast', '_base_',
                              'models', 'student_dinov3-tiny_dpt_toy.py')
TOY_EOMT = osp.join(REPO_ROOT, 'configs', 'mmcast', '_base_', 'models',
                    'eomt_dinov3-tiny_toy.py')


def test_model_cost_cli_counts_eomt_attention_with_its_queries(tmp_path):
    """The toy EoMT and its DPT twin measured in one run (the comparison of
    the real-size students in the model zoo), FLOPs at ``--flops-shape``
    and the timed pass at ``--shape``.

    Both ViTs: 4 blocks, 64-d, patch 8, 1 class + 4 register tokens; a
    64x128 input gives 8x16 = 128 patches, N = 133 tokens. The EoMT's 20
    queries join the tokens of its last 2 blocks (N = 153 there): its fused
    attention is ``2 d (2 * 133^2 + 2 * 153^2)`` MACs, the DPT ViT's
    ``4 * 2 d 133^2``. Inference never masks EoMT's attention, so it is
    the whole product.
    """
    out = tmp_path / 'cost.json'
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/model_cost.py', TOY_DINOV3_STUDENT,
         TOY_EOMT, '--shape', '32', '64', '--flops-shape', '64', '128',
         '--repeats', '1', '--threads', '1', '--out', str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cost = json.loads(out.read_text())
    assert (cost['shape'], cost['flops_shape']) == ([32, 64], [64, 128])
    dpt, eomt = cost['results']
    d, n, n_queries = 64, 5 + 8 * 16, 5 + 20 + 8 * 16
    assert eomt['input_shape'] == dpt['input_shape'] == [64, 128]
    assert eomt['flops_by_operator']['scaled_dot_product_attention'] == \
        2 * d * (2 * n * n + 2 * n_queries * n_queries)
    assert dpt['flops_by_operator']['scaled_dot_product_attention'] == \
        4 * 2 * d * n * n
    # the DPT decoder's masked cross-attention; none in the EoMT
    assert dpt['flops_by_operator']['baddbmm'] > 0
    assert 'baddbmm' not in eomt['flops_by_operator']
    for result in (dpt, eomt):
        assert result['flops'] == sum(result['flops_by_operator'].values())
        assert 'aten::scaled_dot_product_attention' not in \
            result['uncounted_ops']
        assert result['latency_s'] > 0
    ratios = cost['ratios_config2_over_config1']
    assert ratios['flops'] == eomt['flops'] / dpt['flops'] < 1
    assert ratios['params'] == eomt['params'] / dpt['params'] < 1
    assert 'FLOPs at 64x128' in proc.stdout
