# Short name of cast/cast-distill_mask2former-r18_gdino-tiny-sam2-tiny-teacher_1xb4-1600it_toy-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-distill_mask2former-r18_gdino-tiny-sam2-tiny-teacher_1xb4-1600it_toy-semi-10p.py'  # noqa: E501
