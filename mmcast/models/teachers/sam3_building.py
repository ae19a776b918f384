# Copyright (c) mmcast contributors. All rights reserved.
"""Build SAM 3's image model (``sam3.model.sam3_image.Sam3Image``) from the
``sam3`` package's own classes at a configurable size, and load the released
checkpoint from a local path.

:data:`SAM3_ARCH` holds the released model's sizes, exactly as
``sam3.model_builder.build_sam3_image_model`` composes it (ViT-L/14 at 1008
px with RoPE and windowed attention, a 256-d DETR-style encoder/decoder with
200 queries and a presence token, a 24-layer 1024-wide text encoder,
dot-product scoring, a pixel-decoder segmentation head and the geometry
encoder). The instance-interactive SAM-1 task (the tracker) is never built.

Differences to the package's builder, all without effect on the weights:
no download, no CUDA-only position-encoding / box-bias caches at build time
(they fill lazily on the device of the first forward), no training matcher.
"""
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

SAM3_HINT = (
    'Download it on a machine with internet access, e.g. '
    '`huggingface-cli download facebook/sam3 sam3.pt --local-dir '
    'checkpoints` (the model is gated: accept its licence first), copy it to '
    '{path} and set `sam3.checkpoint` in the config to that path.')
BPE_HINT = (
    'The sam3 wheel lacks its BPE vocabulary `bpe_simple_vocab_16e6.txt.gz`; '
    'the `open_clip_torch` package ships the same file as '
    '`open_clip/bpe_simple_vocab_16e6.txt.gz` inside its installed folder '
    '(also `mmseg/utils/bpe_simple_vocab_16e6.txt.gz` in mmsegmentation): '
    'copy it to {path} or set `sam3.bpe_path` in the config to it.')

#: The released SAM 3 image model (``build_sam3_image_model``).
SAM3_ARCH = dict(
    image_size=1008,
    patch_size=14,
    pretrain_image_size=336,
    vit_embed_dim=1024,
    vit_depth=32,
    vit_num_heads=16,
    vit_mlp_ratio=4.625,
    vit_window_size=24,
    vit_global_blocks=(7, 15, 23, 31),
    vit_drop_path_rate=0.1,
    d_model=256,
    num_heads=8,
    text_width=1024,
    text_layers=24,
    text_heads=16,
    text_context_length=32,
    vocab_size=49408,
    encoder_layers=6,
    decoder_layers=6,
    ffn_dim=2048,
    dropout=0.1,
    num_queries=200,
    scoring_ffn_dim=2048,
    geometry_layers=3,
    geometry_ffn_dim=2048,
    use_act_checkpoint=True,
)

#: Checkpoint keys of the released file that the image model never uses:
#: the SAM-2 neck of the tracker (``sam2_convs``), built only with
#: instance interactivity.
IGNORED_PREFIXES = ('backbone.vision_backbone.sam2_convs.', )


def sam3_arch(overrides: Optional[dict] = None) -> dict:
    """:data:`SAM3_ARCH` updated with ``overrides``.

    Raises:
        KeyError: an override that is not an architecture key.
    """
    arch = dict(SAM3_ARCH)
    unknown = sorted(set(overrides or {}) - set(arch))
    if unknown:
        raise KeyError(f'unknown SAM 3 arch keys {unknown}; valid keys are '
                       f'{sorted(arch)}')
    arch.update(overrides or {})
    return arch


def check_bpe_file(bpe_path: Optional[str]) -> None:
    """Refuse a missing BPE vocabulary with a clear one-line error."""
    if not isinstance(bpe_path, str) or not osp.isfile(bpe_path):
        raise FileNotFoundError(
            f'SAM 3 BPE vocabulary not found at {bpe_path!r}. ' +
            BPE_HINT.format(path=bpe_path))


def check_sam3_checkpoint(path: str) -> None:
    """Refuse a missing checkpoint file with a clear one-line error."""
    if not isinstance(path, str) or not osp.isfile(path):
        raise FileNotFoundError(
            f'SAM 3 checkpoint not found at {path!r}: mmcast loads it from a '
            'local file only (no download at run time). ' +
            SAM3_HINT.format(path=path))


def _attention(arch: dict, batch_first: bool) -> nn.Module:
    from sam3.model.model_misc import MultiheadAttentionWrapper
    return MultiheadAttentionWrapper(
        num_heads=arch['num_heads'],
        dropout=arch['dropout'],
        embed_dim=arch['d_model'],
        batch_first=batch_first)


def _vision_backbone(arch: dict) -> nn.Module:
    from sam3.model.necks import Sam3DualViTDetNeck
    from sam3.model.position_encoding import PositionEmbeddingSine
    from sam3.model.vitdet import ViT
    vit = ViT(
        img_size=arch['image_size'],
        pretrain_img_size=arch['pretrain_image_size'],
        patch_size=arch['patch_size'],
        embed_dim=arch['vit_embed_dim'],
        depth=arch['vit_depth'],
        num_heads=arch['vit_num_heads'],
        mlp_ratio=arch['vit_mlp_ratio'],
        norm_layer='LayerNorm',
        drop_path_rate=arch['vit_drop_path_rate'],
        qkv_bias=True,
        use_abs_pos=True,
        tile_abs_pos=True,
        global_att_blocks=tuple(arch['vit_global_blocks']),
        rel_pos_blocks=(),
        use_rope=True,
        use_interp_rope=True,
        window_size=arch['vit_window_size'],
        pretrain_use_cls_token=True,
        retain_cls_token=False,
        ln_pre=True,
        ln_post=False,
        return_interm_layers=False,
        bias_patch_embed=False,
        use_act_checkpoint=arch['use_act_checkpoint'])
    position_encoding = PositionEmbeddingSine(
        num_pos_feats=arch['d_model'], normalize=True, temperature=10000)
    return Sam3DualViTDetNeck(
        position_encoding=position_encoding,
        d_model=arch['d_model'],
        scale_factors=[4.0, 2.0, 1.0, 0.5],
        trunk=vit,
        add_sam2_neck=False)


def _text_encoder(arch: dict, bpe_path: str) -> nn.Module:
    from sam3.model.text_encoder_ve import VETextEncoder
    from sam3.model.tokenizer_ve import SimpleTokenizer
    tokenizer = SimpleTokenizer(bpe_path=bpe_path)
    if tokenizer.vocab_size > arch['vocab_size']:
        raise ValueError(
            f'the BPE vocabulary {bpe_path!r} has {tokenizer.vocab_size} '
            f'tokens, more than the text encoder\'s vocab_size '
            f'{arch["vocab_size"]}')
    encoder = VETextEncoder(
        tokenizer=tokenizer,
        d_model=arch['d_model'],
        width=arch['text_width'],
        heads=arch['text_heads'],
        layers=arch['text_layers'],
        context_length=arch['text_context_length'],
        vocab_size=arch['vocab_size'],
        use_act_checkpoint=arch['use_act_checkpoint'])
    # open_clip initialisation of the parameters the package allocates with
    # torch.empty (the checkpoint overwrites them)
    text = encoder.encoder
    nn.init.normal_(text.token_embedding.weight, std=0.02)
    nn.init.normal_(text.positional_embedding, std=0.01)
    nn.init.normal_(text.text_projection, std=text.width**-0.5)
    return encoder


def _transformer(arch: dict) -> nn.Module:
    from sam3.model.decoder import TransformerDecoder, TransformerDecoderLayer
    from sam3.model.encoder import (TransformerEncoderFusion,
                                    TransformerEncoderLayer)
    from sam3.model.model_misc import TransformerWrapper
    d = arch['d_model']
    encoder_layer = TransformerEncoderLayer(
        activation='relu',
        d_model=d,
        dim_feedforward=arch['ffn_dim'],
        dropout=arch['dropout'],
        pos_enc_at_attn=True,
        pos_enc_at_cross_attn_keys=False,
        pos_enc_at_cross_attn_queries=False,
        pre_norm=True,
        self_attention=_attention(arch, batch_first=True),
        cross_attention=_attention(arch, batch_first=True))
    encoder = TransformerEncoderFusion(
        layer=encoder_layer,
        num_layers=arch['encoder_layers'],
        d_model=d,
        num_feature_levels=1,
        frozen=False,
        use_act_checkpoint=arch['use_act_checkpoint'],
        add_pooled_text_to_img_feat=False,
        pool_text_with_mask=True)
    decoder_layer = TransformerDecoderLayer(
        activation='relu',
        d_model=d,
        dim_feedforward=arch['ffn_dim'],
        dropout=arch['dropout'],
        cross_attention=_attention(arch, batch_first=False),
        n_heads=arch['num_heads'],
        use_text_cross_attention=True)
    decoder = TransformerDecoder(
        layer=decoder_layer,
        num_layers=arch['decoder_layers'],
        num_queries=arch['num_queries'],
        return_intermediate=True,
        box_refine=True,
        num_o2m_queries=0,
        dac=True,
        boxRPB='log',
        d_model=d,
        frozen=False,
        interaction_layer=None,
        dac_use_selfatt_ln=True,
        # resolution/stride only pre-fill a CUDA cache: filled lazily here
        resolution=None,
        stride=None,
        # the decoder asserts activation checkpointing when training
        use_act_checkpoint=True,
        presence_token=True)
    return TransformerWrapper(encoder=encoder, decoder=decoder, d_model=d)


def _scoring(arch: dict) -> nn.Module:
    from sam3.model.model_misc import MLP, DotProductScoring
    d = arch['d_model']
    prompt_mlp = MLP(
        input_dim=d,
        hidden_dim=arch['scoring_ffn_dim'],
        output_dim=d,
        num_layers=2,
        dropout=arch['dropout'],
        residual=True,
        out_norm=nn.LayerNorm(d))
    return DotProductScoring(d_model=d, d_proj=d, prompt_mlp=prompt_mlp)


def _segmentation_head(arch: dict) -> nn.Module:
    from sam3.model.maskformer_segmentation import (PixelDecoder,
                                                    UniversalSegmentationHead)
    d = arch['d_model']
    pixel_decoder = PixelDecoder(
        num_upsampling_stages=3, interpolation_mode='nearest', hidden_dim=d)
    cross_attend_prompt = _attention(dict(arch, dropout=0), batch_first=False)
    return UniversalSegmentationHead(
        hidden_dim=d,
        upsampling_stages=3,
        aux_masks=False,
        presence_head=False,
        dot_product_scorer=None,
        act_ckpt=arch['use_act_checkpoint'],
        cross_attend_prompt=cross_attend_prompt,
        pixel_decoder=pixel_decoder)


def _cpu_safe_geometry_encoder_cls() -> type:
    from sam3.model.box_ops import box_cxcywh_to_xyxy
    from sam3.model.geometry_encoders import SequenceGeometryEncoder
    from torchvision.ops import roi_align

    class CPUSafeSequenceGeometryEncoder(SequenceGeometryEncoder):
        """SAM 3's geometry encoder whose box pooling also runs on machines
        without a CUDA driver (the package pins a host tensor there).

        Same parameters and state-dict keys as the package's class.
        """

        def _encode_boxes(self, boxes, boxes_mask, boxes_labels, img_feats):
            if torch.cuda.is_available() or self.boxes_pool_project is None:
                return super()._encode_boxes(boxes, boxes_mask, boxes_labels,
                                             img_feats)
            pool = self.boxes_pool_project
            self.boxes_pool_project = None
            try:
                embed, mask = super()._encode_boxes(boxes, boxes_mask,
                                                    boxes_labels, img_feats)
            finally:
                self.boxes_pool_project = pool
            n_boxes, bs = boxes.shape[:2]
            h, w = img_feats.shape[-2:]
            xyxy = box_cxcywh_to_xyxy(boxes) * boxes.new_tensor(
                [w, h, w, h]).view(1, 1, 4)
            sampled = roi_align(img_feats,
                                xyxy.float().transpose(0, 1).unbind(0),
                                self.roi_size)
            pooled = pool(sampled).view(bs, n_boxes, self.d_model)
            return embed + pooled.transpose(0, 1), mask

    return CPUSafeSequenceGeometryEncoder


def _geometry_encoder(arch: dict) -> nn.Module:
    from sam3.model.encoder import TransformerEncoderLayer
    from sam3.model.position_encoding import PositionEmbeddingSine
    d = arch['d_model']
    layer = TransformerEncoderLayer(
        activation='relu',
        d_model=d,
        dim_feedforward=arch['geometry_ffn_dim'],
        dropout=arch['dropout'],
        pos_enc_at_attn=False,
        pre_norm=True,
        self_attention=_attention(arch, batch_first=False),
        pos_enc_at_cross_attn_queries=False,
        pos_enc_at_cross_attn_keys=True,
        cross_attention=_attention(arch, batch_first=False))
    return _cpu_safe_geometry_encoder_cls()(
        pos_enc=PositionEmbeddingSine(
            num_pos_feats=d, normalize=True, temperature=10000),
        encode_boxes_as_points=False,
        points_direct_project=True,
        points_pool=True,
        points_pos_enc=True,
        boxes_direct_project=True,
        boxes_pool=True,
        boxes_pos_enc=True,
        d_model=d,
        num_layers=arch['geometry_layers'],
        layer=layer,
        use_act_ckpt=arch['use_act_checkpoint'],
        add_cls=True,
        add_post_encode_proj=True)


def build_sam3_image(arch: Optional[dict] = None,
                     bpe_path: Optional[str] = None) -> nn.Module:
    """Build a randomly initialised ``Sam3Image`` on the CPU, in eval mode.

    Args:
        arch (dict, optional): overrides of :data:`SAM3_ARCH` (image size,
            ViT embed dim / depth / heads / window / global blocks, d_model,
            text width / layers / heads / vocab size, encoder / decoder
            layers, num_queries, FFN dims, ...).
        bpe_path (str): the CLIP BPE merges file (gzip) of the tokenizer.

    Raises:
        FileNotFoundError: ``bpe_path`` is no file.
    """
    check_bpe_file(bpe_path)
    from sam3.model.sam3_image import Sam3Image
    from sam3.model.vl_combiner import SAM3VLBackbone
    arch = sam3_arch(arch)
    backbone = SAM3VLBackbone(
        visual=_vision_backbone(arch),
        text=_text_encoder(arch, bpe_path),
        scalp=1)
    model = Sam3Image(
        backbone=backbone,
        transformer=_transformer(arch),
        input_geometry_encoder=_geometry_encoder(arch),
        segmentation_head=_segmentation_head(arch),
        num_feature_levels=1,
        o2m_mask_predict=True,
        dot_prod_scoring=_scoring(arch),
        use_instance_query=False,
        multimask_output=True,
        inst_interactive_predictor=None,
        matcher=None)
    return model.eval()


def released_to_image_state(state: Dict[str, torch.Tensor]
                            ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Map a released SAM 3 state dict to ``Sam3Image`` keys.

    The released file holds ``{'model': {'detector.<key>': ...,
    'tracker.<key>': ...}}``; the image model is the ``detector.`` part.

    Returns:
        tuple: the image model's state dict, and the released keys left out
        (tracker keys and :data:`IGNORED_PREFIXES`).
    """
    if 'model' in state and isinstance(state['model'], dict):
        state = state['model']
    out, dropped = {}, []
    for key, value in state.items():
        if key.startswith('detector.'):
            sub = key[len('detector.'):]
            if sub.startswith(IGNORED_PREFIXES):
                dropped.append(key)
            else:
                out[sub] = value
        else:
            dropped.append(key)
    return out, dropped


def load_sam3_checkpoint(model: nn.Module,
                         path: str,
                         strict: bool = True) -> Dict[str, List[str]]:
    """Load the released SAM 3 checkpoint into a ``Sam3Image``.

    Args:
        model: a model of :func:`build_sam3_image` with the released sizes.
        path: local path of ``sam3.pt``.
        strict: raise when image-model keys are missing or unexpected.

    Returns:
        dict: ``missing`` and ``unexpected`` keys of the image model, and
        ``dropped`` released keys (tracker, SAM-2 neck).

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: ``strict`` and keys do not match (names the keys).
    """
    check_sam3_checkpoint(path)
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    state, dropped = released_to_image_state(ckpt)
    if not state:
        raise RuntimeError(f'{path!r} holds no `detector.*` keys: not a '
                           'released SAM 3 checkpoint')
    result = model.load_state_dict(state, strict=False)
    report = dict(
        missing=list(result.missing_keys),
        unexpected=list(result.unexpected_keys),
        dropped=dropped)
    if strict and (report['missing'] or report['unexpected']):
        raise RuntimeError(
            f'SAM 3 checkpoint {path!r} does not match the model: missing '
            f'keys {report["missing"][:10]} ({len(report["missing"])}), '
            f'unexpected keys {report["unexpected"][:10]} '
            f'({len(report["unexpected"])})')
    return report
