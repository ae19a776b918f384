# Short name of cast/supervised_dinov3-splus-dpt_4xb2-100k_cityscapes-10p.py;
# kept so existing commands keep working.
_base_ = './cast/supervised_dinov3-splus-dpt_4xb2-100k_cityscapes-10p.py'  # noqa: E501
