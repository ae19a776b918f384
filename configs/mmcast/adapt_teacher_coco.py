# Short name of cast/cast-adapt-teacher_mask2former-swin-l_4xb2-20k_coco-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-adapt-teacher_mask2former-swin-l_4xb2-20k_coco-semi-10p.py'  # noqa: E501
