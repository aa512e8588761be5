"""Pictures of detectors' predictions on the same images, side by side."""
from typing import Dict, Sequence

import mmcv
import torch


def first_predictions(runner, num_images: int) -> list:
    """The model's predictions on the first images of the Runner's test
    dataloader (``DetDataSample``s, boxes in original image coordinates)."""
    model = runner.model
    model.eval()
    samples = []
    with torch.no_grad():
        for data in runner.test_dataloader:
            samples += model.test_step(data)
            if len(samples) >= num_images:
                break
    return samples[:num_images]


def draw_detections(predictions: Dict[str, Sequence],
                    classes: Sequence[str],
                    path: str,
                    score_thr: float = 0.3) -> str:
    """One row per model, one column per image: the image with the boxes
    scoring at least ``score_thr``.

    Args:
        predictions (dict[str, Sequence[DetDataSample]]): Each model's
            predictions on the same images, in the same order.
        classes (Sequence[str]): Class names by label.
        path (str): The PNG to write.
        score_thr (float): Lowest score drawn (mmdet's demo's default).

    Returns:
        str: ``path``.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    rows = len(predictions)
    columns = max(len(samples) for samples in predictions.values())
    figure = Figure(figsize=(3 * columns, 3.2 * rows), tight_layout=True)
    for row, (name, samples) in enumerate(predictions.items()):
        for column, sample in enumerate(samples):
            axes = figure.add_subplot(rows, columns,
                                      row * columns + column + 1)
            axes.imshow(mmcv.imread(sample.img_path, channel_order='rgb'))
            axes.set_axis_off()
            axes.set_title(f'{name}: image {sample.img_id}', fontsize='small')
            found = sample.pred_instances
            keep = found.scores >= score_thr
            for box, score, label in zip(found.bboxes[keep].tolist(),
                                         found.scores[keep].tolist(),
                                         found.labels[keep].tolist()):
                x1, y1, x2, y2 = box
                axes.add_patch(
                    Rectangle((x1, y1),
                              x2 - x1,
                              y2 - y1,
                              fill=False,
                              color='yellow',
                              linewidth=1.5))
                axes.text(
                    x1,
                    y1,
                    f'{classes[label]} {score:.2f}',
                    fontsize='x-small',
                    color='black',
                    backgroundcolor='yellow',
                    va='bottom')
    figure.savefig(path, dpi=100)
    return path
