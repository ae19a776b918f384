# Short name of cast/cast-finetune_mask2former-r18_1xb4-400it_toy-semi-10p.py;
# kept so existing commands keep working.
_base_ = './cast/cast-finetune_mask2former-r18_1xb4-400it_toy-semi-10p.py'  # noqa: E501
