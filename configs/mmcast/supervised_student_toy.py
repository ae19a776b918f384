# Short name of the config below (generated from configs/mmcast/stages.json
# by tools/misc/config_aliases.py); it trains in that config's work dir,
# where the next stage's config looks for its checkpoint.
_base_ = './cast/supervised_mask2former-r18_1xb4-1800it_toy-10p.py'  # noqa: E501
work_dir = './work_dirs/supervised_mask2former-r18_1xb4-1800it_toy-10p'  # noqa: E501
