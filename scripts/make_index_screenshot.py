"""Draw the Extensions Index screenshot (1280 x 800 PNG) headless: the CT phantom and a real result.

No Slicer here, so this is not a capture of Slicer's window: it draws what the effect shows, from real
data: the project's CT phantom (the self-tests' volume) and the engine's own masks of the self-test
prompts (SegMoTE/Testing/Python/References, made by scripts/make_selftest_references.py with LiteMedSAM
and the shipped adapter): the box prompt on the middle axial slice with the liver mask, the mask
propagated through the volume in a coronal and a sagittal reformat, and the click markers.

    .venv/bin/python scripts/make_index_screenshot.py [--out docs/images/segmote-screenshot.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SELF_TESTS = REPO / "SegMoTE" / "Testing" / "Python"
DEFAULT_OUT = REPO / "docs" / "images" / "segmote-screenshot.png"
SIZE_PIXELS = (1280, 800)
LIVER_COLOUR = (0.867, 0.510, 0.396)  # the phantom's (Slicer's GenericAnatomyColors) liver


def _overlay(axes, grey, mask, aspect, title):
    from SegMoTELib.intensity import IntensityMapping, to_uint8

    axes.imshow(to_uint8(grey, IntensityMapping(modality="CT", preset="abdomen")), cmap="gray", aspect=aspect,
                interpolation="nearest")
    colour = np.zeros((*mask.shape, 4))
    colour[mask] = (*LIVER_COLOUR, 0.55)
    axes.imshow(colour, aspect=aspect, interpolation="nearest")
    axes.contour(mask, levels=[0.5], colors=[LIVER_COLOUR], linewidths=1.2)
    axes.set_title(title, color="white", fontsize=13, loc="left")
    axes.set_xticks([])
    axes.set_yticks([])


def draw(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(SELF_TESTS))
    from SegMoTESelfTestCase import BOX_IJK, CLICK_IJK, makeSelfTestPhantom, readReference

    phantom = makeSelfTestPhantom()
    voxels = phantom.image.array  # [k, j, i]
    box_mask, propagated = readReference("box"), readReference("box_propagated")
    spacing_i, spacing_j, spacing_k = phantom.image.spacing
    (i0, j0, k), (i1, j1, _) = BOX_IJK
    dpi = 100
    figure = plt.figure(figsize=(SIZE_PIXELS[0] / dpi, SIZE_PIXELS[1] / dpi), dpi=dpi, facecolor="#1e1e1e")
    grid = figure.add_gridspec(2, 2, width_ratios=(1.35, 1), left=0.02, right=0.98, top=0.9, bottom=0.03,
                               wspace=0.04, hspace=0.12)
    axial = figure.add_subplot(grid[:, 0])
    _overlay(axial, voxels[k], box_mask[k], spacing_j / spacing_i, f"Axial slice {k}: a box prompt")
    axial.add_patch(plt.Rectangle((i0, j0), i1 - i0, j1 - j0, fill=False, edgecolor="#ffd91a", linewidth=2))
    axial.plot([CLICK_IJK[0]], [CLICK_IJK[1]], marker="+", color="#33e64d", markersize=16, markeredgewidth=3)
    coronal = figure.add_subplot(grid[0, 1])
    row = CLICK_IJK[1]
    _overlay(coronal, voxels[::-1, row, :], propagated[::-1, row, :], spacing_k / spacing_i,
             "Coronal: propagated to 3D")
    sagittal = figure.add_subplot(grid[1, 1])
    column = CLICK_IJK[0]
    _overlay(sagittal, voxels[::-1, :, column], propagated[::-1, :, column], spacing_k / spacing_j,
             "Sagittal: propagated to 3D")
    figure.suptitle("SegMoTE: a box prompt, then propagation to 3D  -  the engine's result on the CT phantom (liver)",
                    color="white", fontsize=16, x=0.02, ha="left")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=dpi, facecolor=figure.get_facecolor())
    plt.close(figure)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    arguments = parser.parse_args(argv)
    print(draw(arguments.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
