# Short name of cast/supervised_mask2former-r18_1xb4-2000it_toy-10p.py;
# kept so existing commands keep working.
_base_ = './cast/supervised_mask2former-r18_1xb4-2000it_toy-10p.py'  # noqa: E501
