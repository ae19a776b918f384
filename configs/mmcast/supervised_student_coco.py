# Short name of cast/supervised_dinov2-s-dpt_4xb2-100k_coco-10p.py;
# kept so existing commands keep working.
_base_ = './cast/supervised_dinov2-s-dpt_4xb2-100k_coco-10p.py'  # noqa: E501
