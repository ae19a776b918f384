# Short name of cast/cast-finetune_dinov3-splus-dpt_4xb2-20k_ade20k-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-finetune_dinov3-splus-dpt_4xb2-20k_ade20k-semi-10p.py'  # noqa: E501
