"""Export a detector to ONNX and check it in ONNX Runtime.

The default graph goes from the preprocessed image tensor (normalised and
padded, as the model's data preprocessor makes it) to detections after the
config's score threshold and NMS: ``dets`` (1, M, 5: x1, y1, x2, y2, score)
and ``labels`` (1, M), as mmdeploy's end-to-end models. ``--raw`` exports
the head's outputs instead, in ``model._forward``'s order (the
classification scores of every level, then the box deltas). Height and
width are dynamic; the backbone is exported in its deploy form (BatchNorms
folded) with standard ONNX operators only.

SCConv is written in the form ONNX Runtime runs fastest. With
``--openvino`` it is written in the form OpenVINO runs fastest (both forms
compute the same numbers) and the model is also converted to OpenVINO's IR
(``.xml`` and ``.bin``, beside the ``.onnx`` or at the path given).

After exporting, the tool runs each engine (ONNX Runtime; OpenVINO too with
``--openvino``) and PyTorch on a test input and prints the relative error
``||engine - torch|| / ||torch||`` of the worst output.

Example:
    python tools/deployment/pytorch2onnx.py \
        configs/retinanet_scconv_r50_coco.py work_dirs/x/iter_180000.pth \
        --out retinanet_scconv_r50.onnx --shape 800 1216
    # OpenVINO: also writes retinanet_scconv_r50.xml and .bin
    python tools/deployment/pytorch2onnx.py \
        configs/retinanet_scconv_r50_coco.py work_dirs/x/iter_180000.pth \
        --out retinanet_scconv_r50.onnx --openvino
"""
import argparse

from mmdet_scconv.apis.cli import add_cfg_options
from mmdet_scconv.deployment import export_detector
from mmdet_scconv.deployment.openvino import ir_path_beside


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[800, 1216],
        metavar=('H', 'W'),
        help='example input size the graph is traced and checked at '
        '(height and width stay dynamic); multiples of 32')
    parser.add_argument(
        '--raw',
        action='store_true',
        help="export the head's raw outputs instead of detections")
    parser.add_argument(
        '--dynamic',
        action='store_true',
        help='leave the batch size dynamic too (with --raw)')
    parser.add_argument(
        '--openvino',
        nargs='?',
        const='',
        metavar='XML',
        help="write SCConv in OpenVINO's form and convert the model to "
        "OpenVINO's IR: XML (.bin beside it), or without XML the --out name "
        'with .xml')
    add_cfg_options(parser, 'model.test_cfg.score_thr=0.3')
    return parser.parse_args()


def main():
    args = parse_args()
    openvino_ir = args.openvino or (None if args.openvino is None else
                                    ir_path_beside(args.out))
    checks = export_detector(
        args.config,
        args.checkpoint,
        args.out,
        shape=tuple(args.shape),
        raw=args.raw,
        dynamic_batch=args.dynamic,
        cfg_options=args.cfg_options,
        openvino_ir=openvino_ir)
    form = 'ONNX Runtime' if openvino_ir is None else 'OpenVINO'
    print(f'wrote {args.out} (SCConv in the form for {form})')
    if openvino_ir is not None:
        print(f'wrote {openvino_ir} and {openvino_ir[:-len(".xml")]}.bin')
    for check in checks:
        print(check.summary())


if __name__ == '__main__':
    main()
