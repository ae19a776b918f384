# Your own COCO-format instance dataset for the CAST configs of this folder.
#
# THIS is the file to edit: the block "EDIT" below (where the data are, the
# class names, the labeled share). Every config of configs/mmcast/custom/
# reads it, and every model follows the class names: Mask2Former's
# num_things_classes (head and fusion head, teacher and student) and its
# loss_cls.class_weight (one weight per class + "no object") are computed
# here from `classes`.
#
# Layout (plain COCO; file names adjustable in the block):
#   <data_root>images/...                          every image (train + val);
#                                                  file_name in the jsons is
#                                                  relative to images/
#   <data_root>annotations/instances_train.json    COCO instance annotations
#   <data_root>annotations/instances_val.json      (polygons or RLE)
#   <data_root>annotations/instances_train.<seed>@<percent>.json
#   <data_root>annotations/instances_train.<seed>@<percent>-unlabeled.json
# The last two are the labeled split D_l and the unlabeled rest D_u, written
# by (tools/cast_pipeline.py runs it when they are missing):
#   python tools/split_semi.py <data_root>annotations/instances_train.json \
#       --percent <percent> --seed <split_seed>
#
# Two sizes of the stages (one config per stage each):
#   <stage>_custom.py      the paper's sizes: Mask2Former Swin-L teacher,
#                          DINOv2-S + DPT student, LSJ 1024, 4 GPUs x 2
#   <stage>_custom-cpu.py  R-34 teacher / R-18 student of the toy
#                          pipeline, 256 px, batch 4: a laptop-sized try
# Run them all (1a -> 1b -> 2 -> 3 + the labels-only baseline):
#   python tools/cast_pipeline.py custom --work-dir work_dirs/cast_custom \
#       --pretrained-teacher <theta_T^0 checkpoint>

# ================================ EDIT ======================================
# The dataset folder (with a trailing '/').
data_root = 'data/custom/'
# The class names: "name"s of the annotation files' "categories", in their
# order there (CocoDataset numbers the labels in that order); a subset is
# fine, instances of the other categories are ignored.
classes = ('balloon', )
# The labeled share of the train images (percent) and the seed of the draw.
percent = 10
split_seed = 1
# File names inside data_root.
img_prefix = 'images/'
train_ann_file = 'annotations/instances_train.json'
val_ann_file = 'annotations/instances_val.json'
# ============================================================================

# tools/cast_pipeline.py --data-root / --classes / --percent / --split-seed
# replace the four above (it passes them to every stage as the environment
# variables MMCAST_CUSTOM_ROOT / _CLASSES / _PERCENT / _SPLIT_SEED, Python
# literals); leave these lines as they are.
data_root = {{'$MMCAST_CUSTOM_ROOT:None'}} or data_root
classes = tuple({{'$MMCAST_CUSTOM_CLASSES:None'}} or classes)
percent = {{'$MMCAST_CUSTOM_PERCENT:None'}} or percent
command_line_split_seed = {{'$MMCAST_CUSTOM_SPLIT_SEED:None'}}
if command_line_split_seed is not None:
    split_seed = command_line_split_seed

# ---------------------- derived from the block: leave as is ----------------
metainfo = dict(classes=classes)
num_dataset_classes = len(classes)
# Mask2Former's classification loss: 1.0 per class, 0.1 for "no object".
dataset_class_weight = [1.0] * num_dataset_classes + [0.1]
# What every Mask2Former of the stage configs (teacher and student) takes
# from `classes`: `model = dict(_base_.head_classes, ...)`.
head_classes = dict(
    panoptic_head=dict(
        num_things_classes=num_dataset_classes,
        loss_cls=dict(class_weight=dataset_class_weight)),
    panoptic_fusion_head=dict(num_things_classes=num_dataset_classes))
# tools/split_semi.py's names: <stem>.<seed>@<percent>[-unlabeled].json,
# beside the train annotation file.
split_stem = train_ann_file.rsplit('.', 1)[0] + f'.{split_seed}@{percent:g}'
labeled_ann_file = split_stem + '.json'
unlabeled_ann_file = split_stem + '-unlabeled.json'
# Paths with the data root, for what does not join data_root itself (the
# pseudo-labeled dataset has data_root='' and the evaluators none).
unlabeled_ann_path = data_root + unlabeled_ann_file
img_dir = data_root + img_prefix
val_ann_path = data_root + val_ann_file
