# The concept-prompted teacher for Cityscapes: the released SAM 3 segments
# every instance of each thing class from text prompts (a class's instances
# are the union over its prompts), scores = sigmoid(logit) x
# sigmoid(presence). Frames are 2:1 and SAM 3 sees a 1008-px square: each
# frame is cut into three overlapping 1024x1024 tiles (the short side; 512
# px shared by neighbours), an instance cut by a tile border is merged back
# into one (mask IoU in the shared band), and cross-class mask NMS keeps the
# higher-scored of overlapping instances (person vs rider, car vs truck).
# Outputs are at the original resolution in the dataset's class order.
# teachers/sam3_cityscapes.py labels with it, teachers/adapt_sam3_cityscapes.py
# adapts it (stage 1a).
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

# SAM 3 re-reads the original image from img_path at full resolution (and
# tiles it); the batch inputs only carry the metadata (a small resize keeps
# them cheap).
sam3_test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1024, 512), keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
