# An ensemble teacher for Cityscapes: the paper's Grounding-DINO + SAM 2
# teacher together with MMDetection's Mask2Former Swin-L (COCO panoptic,
# instance outputs). Predictions are mapped to the Cityscapes classes by name
# (COCO has no "rider": the Mask2Former member only contributes the other 7)
# and duplicates across members (same class, mask IoU >= 0.5) are fused:
# score-weighted mask average thresholded at 0.5, box from mask, and as score
# the mean over the members that can name the class of each one's best score
# ('vote': a rider keeps the Grounding-DINO's score; a plain mean would count
# the Mask2Former's low-scored duplicate queries, which on the toy's D_l cut
# the pseudo-labels' recall at 0.3 from 0.82-0.86 to 0.61-0.65; not measured
# on Cityscapes yet).
#
# Local files: those of grounding_dino_sam2_cityscapes.py plus
#   checkpoints/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic_20220407_104949-82f8d28d.pth
#       (`mim download mmdet --config mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic --dest checkpoints`)
# The members load their own checkpoints. `mim test` still requires a
# --checkpoint: give the Grounding-DINO one; none of its keys matches the
# ensemble's (teachers.0.detector...), so nothing of it is loaded again:
#   mim test mmdet configs/mmcast/teachers/teacher_ensemble_cityscapes.py \
#       --checkpoint checkpoints/grounding_dino_swin-l_pretrain_all-56d69e78.pth
_base_ = ['./grounding_dino_sam2_cityscapes.py']

gdino_checkpoint = 'checkpoints/grounding_dino_swin-l_pretrain_all-56d69e78.pth'
mask2former_checkpoint = (
    'checkpoints/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_'
    'coco-panoptic_20220407_104949-82f8d28d.pth')

model = dict(
    _delete_=True,
    type='TeacherEnsemble',
    classes={{_base_.class_names}},
    teachers=[
        dict(
            # already predicts in the Cityscapes order
            config='{{ fileDirname }}/grounding_dino_sam2_cityscapes.py',
            checkpoint=gdino_checkpoint),
        dict(
            config='mmdet::mask2former/mask2former_swin-l-p4-w12-384-in21k_'
            '16xb1-lsj-100e_coco-panoptic.py',
            cfg_options={
                'backbone.init_cfg': None,
                'test_cfg.panoptic_on': False,
                'test_cfg.semantic_on': False,
                'test_cfg.instance_on': True,
                'test_cfg.max_per_image': 100,
            },
            checkpoint=mask2former_checkpoint,
            # label order of the member: COCO panoptic (80 things first)
            classes='CocoPanopticDataset',
            class_name_map={
                'person': 'person',
                'car': 'car',
                'truck': 'truck',
                'bus': 'bus',
                'train': 'train',
                'motorcycle': 'motorcycle',
                'bicycle': 'bicycle',
            }),
    ],
    fusion=dict(type='weighted', iou_thr=0.5, score_agg='vote',
                max_per_img=100))
