# The MultiBranch ends of the semi-supervised CAST pipelines, shared by every
# semi_<dataset>_instance.py (and custom/_base_/semi_custom_instance.py). A
# dataset base inherits this file next to its own dataset base and puts its
# geometric augmentation in front, on image and masks together, so that
# pseudo-masks stay aligned with the student's view:
#   sup_pipeline = geometric_pipeline + _base_.sup_pipeline
#   unsup_pipeline = geometric_pipeline + _base_.unsup_pipeline
#   unlabeled_pool_pipeline = [...geometric, no annotations...] + \
#       _base_.unsup_pipeline
# The names are the dataset bases' own (here only their MultiBranch end), so
# that the configs built on them hold no variable of this file's alone.
branch_field = ['sup', 'unsup']
# D_l with ground truth, in the "sup" branch
sup_pipeline = [
    dict(
        type='MultiBranch',
        branch_field=branch_field,
        sup=dict(type='PackDetInputs'))
]
# D_u with the teacher's offline pseudo-labels (and Guided Distillation's
# unlabeled pool, without annotations), in the "unsup" branch
unsup_pipeline = [
    dict(
        type='MultiBranch',
        branch_field=branch_field,
        unsup=dict(type='PackDetInputs'))
]
