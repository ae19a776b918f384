# Copyright (c) mmcast contributors. All rights reserved.
"""Instance segmentation with an exported student on ONNX Runtime.

From a published model to predictions on a directory of images::

    python tools/deploy/export_onnx.py checkpoints/cast_r18_toy.py \
        checkpoints/cast_r18_toy-<sha8>.pth checkpoints/cast_r18_toy.onnx
    python tools/deploy/onnx_infer.py checkpoints/cast_r18_toy.onnx \
        data/toy/leftImg8bit/val/ --out-dir outputs/cast_r18_toy
    # -> outputs/cast_r18_toy/vis/<image name>   (drawn predictions)
    #    outputs/cast_r18_toy/preds/<image>.json (labels, scores, bboxes,
    #                                             COCO RLE masks)

On a GPU pass ``--providers CUDAExecutionProvider CPUExecutionProvider``
(onnxruntime-gpu) or ``TensorrtExecutionProvider CUDAExecutionProvider
CPUExecutionProvider`` (TensorRT).
"""
import argparse

from mmcast.deploy import ONNXInferencer
from mmcast.deploy import DeployError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run an exported mmcast student with ONNX Runtime')
    parser.add_argument('model', help='the .onnx file')
    parser.add_argument('inputs', nargs='+',
                        help='image files or directories of images')
    parser.add_argument('--out-dir', default='outputs',
                        help='writes vis/ and preds/ (default: outputs)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='minimum score of an instance (default: 0.3)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--providers', nargs='+', default=['CPUExecutionProvider'],
        help='ONNX Runtime execution providers, in order of preference')
    parser.add_argument('--no-save-vis', action='store_true',
                        help='do not draw the predictions')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        inferencer = ONNXInferencer(args.model, providers=args.providers,
                                    score_thr=args.score_thr,
                                    batch_size=args.batch_size)
        results = inferencer(args.inputs, out_dir=args.out_dir,
                             no_save_vis=args.no_save_vis)
    except (DeployError, FileNotFoundError) as e:
        raise SystemExit(f'onnx_infer: {e}')
    for line in inferencer.summary(results, args.score_thr, args.out_dir):
        print(line)


if __name__ == '__main__':
    main()
