# Copyright (c) mmcast contributors. All rights reserved.
"""FLOP handlers that MMEngine's :class:`FlopAnalyzer` lacks.

MMEngine's analyzer (fvcore's jit handlers) counts a traced op only if it
has a handler; every other op is reported as *unsupported* and counts 0.
Fused attention is such an op: mmpretrain's ViT (the DINOv2 student) and
``nn.MultiheadAttention`` without attention weights call
``F.scaled_dot_product_attention``, traced as one
``aten::scaled_dot_product_attention`` node, so the ``Q K^T`` and ``A V``
products -- at 1024x2048 more than all the ViT's linear layers -- were
missing. ``nn.MultiheadAttention`` with an attention mask (Mask2Former's
masked cross-attention) computes ``Q K^T`` with ``aten::baddbmm``, also
without a handler.

Convention (fvcore / MMEngine): one multiply-add is one "flop", i.e. the
counts are MACs; GFLOPs in the strict sense are twice the number.

Ops that stay uncounted by design (elementwise ``add``/``mul``/``gelu``/
``softmax``/``sigmoid``, reductions): they are listed by
``FlopAnalyzer.unsupported_ops()``. mmcv's ``MultiScaleDeformableAttention``
on CPU runs its PyTorch path (``F.grid_sample``, counted by MMEngine as 4
per sampled value, plus an elementwise weighted sum that is not counted);
on CUDA it is a custom autograd function (``prim::PythonOp``), which no
jit handler can count.
"""
from math import prod
from typing import Any, Dict, List, Optional

import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import Handle, get_shape


def _shapes(inputs: List[Any], n: int) -> List[List[int]]:
    """Static shapes of the first ``n`` tensor inputs of a traced op."""
    shapes = [get_shape(v) for v in inputs[:n]]
    if any(s is None for s in shapes):
        raise ValueError(
            f'flop handler: incomplete tensor shapes {shapes} in the trace')
    return shapes  # type: ignore[return-value]


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of scaled dot-product attention (fused or not).

    ``query (..., L, E)``, ``key (..., S, E)``, ``value (..., S, Ev)``
    (``...`` = batch, heads; ``key``/``value`` may have fewer heads,
    grouped-query attention): ``Q K^T`` costs ``L * S * E`` and ``A V``
    ``L * S * Ev`` per batch-head of the query. The scale, mask and softmax
    are elementwise and not counted. A causal mask is counted as full
    attention (as ``torch.utils.flop_counter`` does). The first three inputs
    are ``query, key, value`` in every ``aten::*scaled_dot_product*`` op.
    """
    q, k, v = _shapes(inputs, 3)
    *batch, seq_q, dim_qk = q
    seq_k, dim_v = k[-2], v[-1]
    return prod(batch) * seq_q * seq_k * (dim_qk + dim_v)


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``baddbmm(input, batch1 (n, c, t), batch2 (n, t, d))``.

    ``n * c * t * d``; the scaled addition of ``input`` is elementwise.
    """
    _, batch1, batch2 = _shapes(inputs, 3)
    n, c, t = batch1
    return n * c * t * batch2[-1]


#: Extra handlers, keyed by traced op name.
FLOP_HANDLERS: Dict[str, Handle] = {
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::_scaled_dot_product_attention_math': sdpa_flop_jit,
    'aten::_scaled_dot_product_efficient_attention': sdpa_flop_jit,
    'aten::_scaled_dot_product_flash_attention': sdpa_flop_jit,
    'aten::_scaled_dot_product_flash_attention_for_cpu': sdpa_flop_jit,
    'aten::_scaled_dot_product_cudnn_attention': sdpa_flop_jit,
    'aten::baddbmm': baddbmm_flop_jit,
}


def register_flop_handlers(analyzer: FlopAnalyzer) -> FlopAnalyzer:
    """Add :data:`FLOP_HANDLERS` to ``analyzer`` (``set_op_handle``).

    Returns the analyzer, whose ``unsupported_ops()`` then lists only the
    ops that are still not counted.
    """
    return analyzer.set_op_handle(**FLOP_HANDLERS)


def count_flops(model: nn.Module, inputs: tuple) -> FlopAnalyzer:
    """A :class:`FlopAnalyzer` of ``model(*inputs)`` with the extra handlers.

    The analyzer's own log warnings are off: the uncounted ops are returned
    by ``unsupported_ops()`` for the caller to report.

    Args:
        model (nn.Module): Model to trace (its ``forward`` is traced).
        inputs (tuple): Positional inputs of ``forward``.

    Returns:
        FlopAnalyzer: Counts in MACs (``total()``, ``by_module()``,
        ``by_operator()``) and the uncounted ops (``unsupported_ops()``).
    """
    analyzer = register_flop_handlers(FlopAnalyzer(model, inputs=inputs))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def format_uncounted(unsupported: Optional[Dict[str, int]]) -> str:
    """``{'aten::add': 3, ...}`` -> ``'aten::add x3, ...'`` (most first)."""
    if not unsupported:
        return 'none'
    items = sorted(unsupported.items(), key=lambda kv: (-kv[1], kv[0]))
    return ', '.join(f'{op} x{n}' for op, n in items)
