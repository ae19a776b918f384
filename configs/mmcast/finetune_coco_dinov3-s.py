# Short name of cast/cast-finetune_dinov3-s-dpt_4xb2-10k_coco-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-finetune_dinov3-s-dpt_4xb2-10k_coco-semi-10p.py'  # noqa: E501
