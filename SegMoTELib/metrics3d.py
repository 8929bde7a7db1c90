"""3D overlap and surface metrics of a predicted labelmap against the truth, in millimetres.

* Dice — 2|P∩T| / (|P| + |T|).
* HD95 — the 95th percentile Hausdorff distance (mm): the larger of the two directed 95th
  percentiles of the distances from each surface voxel of one mask to the other mask's surface
  (MONAI's `compute_hausdorff_distance(percentile=95)` convention). None when either mask is empty.
* NSD — normalised surface Dice at a tolerance τ mm (Nikolov et al. 2021): the share of both
  surfaces lying within τ of the other surface. 0 when one mask is empty, 1 when both are.

Surfaces are the mask voxels with a face-neighbour outside the mask (or at the volume's edge), and
distances are Euclidean between voxel centres with the voxel spacing, computed on the two masks'
bounding box (grown by the tolerance) rather than the whole volume.
"""

from __future__ import annotations

import numpy as np

DEFAULT_NSD_TOLERANCE_MM = 2.0


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = int(np.count_nonzero(prediction)) + int(np.count_nonzero(truth))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(prediction & truth)) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    padded = np.pad(mask, 1, constant_values=False)
    eroded = ndimage.binary_erosion(padded, structure=ndimage.generate_binary_structure(3, 1))[1:-1, 1:-1, 1:-1]
    return mask & ~eroded


def _crop(prediction: np.ndarray, truth: np.ndarray, margin_voxels: np.ndarray):
    present = np.argwhere(prediction | truth)
    low = np.maximum(present.min(axis=0) - margin_voxels, 0)
    high = np.minimum(present.max(axis=0) + margin_voxels + 1, prediction.shape)
    window = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    return prediction[window], truth[window]


def surface_distances(prediction: np.ndarray, truth: np.ndarray, spacing_kji) -> tuple[np.ndarray, np.ndarray]:
    """(distances from each predicted surface voxel to the truth's surface, and the reverse), in mm."""
    from scipy import ndimage

    spacing = np.asarray(spacing_kji, dtype=float)
    pred_surface, truth_surface = _surface(prediction), _surface(truth)
    to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return to_truth[pred_surface], to_pred[truth_surface]


def hd95_and_nsd(prediction, truth, spacing_ijk, tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM):
    """(HD95 in mm or None, NSD at `tolerance_mm`) of two bool labelmaps [k, j, i]; spacing (i, j, k) mm."""
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    has_prediction, has_truth = prediction.any(), truth.any()
    if not (has_prediction and has_truth):
        return None, 1.0 if has_prediction == has_truth else 0.0
    spacing_kji = np.asarray(spacing_ijk, dtype=float)[::-1]
    # enough room around the masks for the 95th percentile and the tolerance to be exact in most cases
    margin = np.ceil(np.maximum(tolerance_mm, 10.0) / spacing_kji).astype(int) + 1
    prediction, truth = _crop(prediction, truth, margin)
    from_pred, from_truth = surface_distances(prediction, truth, spacing_kji)
    hd95 = float(max(np.percentile(from_pred, 95), np.percentile(from_truth, 95)))
    nsd = float((np.count_nonzero(from_pred <= tolerance_mm) + np.count_nonzero(from_truth <= tolerance_mm))
                / (from_pred.size + from_truth.size))
    return hd95, nsd
