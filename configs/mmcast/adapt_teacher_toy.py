# Short name of cast/cast-adapt-teacher_mask2former-r34_1xb4-300it_toy-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-adapt-teacher_mask2former-r34_1xb4-300it_toy-semi-10p.py'  # noqa: E501
