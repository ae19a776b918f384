# A concept-prompted teacher: the released SAM 3 segments every instance of
# each Cityscapes thing class from text prompts (a class's instances are the
# union over its prompts), scores = sigmoid(logit) x sigmoid(presence).
# Cityscapes frames are 2:1, SAM 3 sees a 1008-px square: each frame is cut
# into three overlapping 1024x1024 tiles (the short side; 512 px shared by
# neighbours), an instance cut by a tile border is merged back into one
# (mask IoU in the shared band), and cross-class mask NMS keeps the
# higher-scored of overlapping instances (person vs rider, car vs truck).
# Outputs are at the original resolution in the dataset's class order.
#
# Local files (nothing is downloaded at run time):
#   checkpoints/sam3.pt  (gated: accept the licence of facebook/sam3, then
#       `huggingface-cli download facebook/sam3 sam3.pt --local-dir checkpoints`)
#   checkpoints/bpe_simple_vocab_16e6.txt.gz  (not in the sam3 wheel; the same
#       file ships with open_clip_torch as open_clip/bpe_simple_vocab_16e6.txt.gz)
#
#   mim test mmdet configs/mmcast/teachers/sam3_cityscapes.py \
#       --checkpoint checkpoints/sam3.pt
# (the released file loads into the teacher as it is; a checkpoint of an
# adapted teacher works as well).
_base_ = [
    'mmdet::_base_/datasets/cityscapes_instance.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

sam3_checkpoint = 'checkpoints/sam3.pt'
bpe_path = 'checkpoints/bpe_simple_vocab_16e6.txt.gz'
class_names = ('person', 'rider', 'car', 'truck', 'bus', 'train',
               'motorcycle', 'bicycle')

model = dict(
    type='ConceptPromptedTeacher',
    sam3=dict(
        checkpoint=sam3_checkpoint,
        bpe_path=bpe_path,
        mask_threshold=0.0,
        autocast='bfloat16',
        prompt_batch_size=16),
    classes=class_names,
    class_prompts=dict(
        person=['person', 'pedestrian'],
        rider=['rider', 'cyclist', 'person riding a bicycle'],
        car=['car'],
        truck=['truck'],
        bus=['bus'],
        train=['train', 'tram'],
        motorcycle=['motorcycle'],
        bicycle=['bicycle']),
    # rarer, more confusable classes need a higher score
    score_thr=dict(
        person=0.4,
        rider=0.4,
        car=0.4,
        truck=0.5,
        bus=0.5,
        train=0.5,
        motorcycle=0.5,
        bicycle=0.4),
    nms_iou_thr=0.7,
    max_per_img=100,
    tiling=dict(tile_size=0, overlap=0.5, merge_iou_thr=0.5),
    image_source='auto')

# SAM 3 re-reads the original image from img_path at full resolution; the
# batch inputs only carry the metadata (a small resize keeps them cheap).
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1024, 512), keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# inference only: MMEngine's Runner (mim test) wants the dataloader, loop
# and evaluator (optimiser) of each of train / val / test all set or all None
train_dataloader = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
