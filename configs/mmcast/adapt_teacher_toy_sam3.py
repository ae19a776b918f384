# Short name of cast/cast-adapt-teacher_sam3-tiny_1xb4-300it_toy-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-adapt-teacher_sam3-tiny_1xb4-300it_toy-semi-10p.py'  # noqa: E501
