# Short name of cast/cast-adapt-teacher-selftrain_sam3-tiny_1xb4-500it_toy-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-adapt-teacher-selftrain_sam3-tiny_1xb4-500it_toy-semi-10p.py'  # noqa: E501
