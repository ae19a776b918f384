# Short name of cast/cast-distill_dinov2-s-dpt_4xb2-90k_coco-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-distill_dinov2-s-dpt_4xb2-90k_coco-semi-10p.py'  # noqa: E501
