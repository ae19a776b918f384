# Teacher adaptation optimiser (spec "Models", stage 1): AdamW 5e-5, weight
# decay 0.01, backbone lr x0.1; poly decay, clip 0.01 and AMP as the student
# (../schedules/cast_90k.py). The same on every dataset (the ADE20K student
# schedule differs in lr and length only, both set here and by the stage
# configs), so the teacher stage configs name no schedule of their own.
_base_ = '../schedules/cast_90k.py'

optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.01))
