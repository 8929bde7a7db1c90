"""A procedural CT-like abdominal phantom with known organ masks.

It is the data of the README's main job (`segmote demo`) and of tests that need a volume with an
exact ground truth on a machine without `../shared`. The anatomy is written as smooth implicit
shapes in patient (RAS) millimetres around the volume centre and sampled at each voxel's RAS
position, so the masks agree with the declared geometry whatever the voxel grid's orientation
(the default grid is LPS-flipped and slightly rotated, like many real studies).

Hounsfield values follow a portal-venous abdominal CT: fat about -100, muscle 50, liver 105,
spleen 115, kidney cortex 170, aorta 185, cancellous bone 230 and cortical bone 650, with
partial-volume blur and 10 HU noise. Same seed, same voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .io import SegmentInfo
from .volume import Volume

# Voxel grid: (k, j, i) array shape, (i, j, k) spacing in mm. 56 axial slices keep a CPU walk short.
DEFAULT_SHAPE = (56, 176, 208)
DEFAULT_SPACING = (1.5, 1.5, 2.5)
ROTATION_DEGREES = 5.0  # about the superior axis: the grid is slightly oblique
CENTRE_RAS = (12.0, -25.0, -380.0)  # where the volume centre lies in RAS (a scanner-like offset)

# (label, name, colour 0-1 RGB) — colours of Slicer's GenericAnatomyColors where one exists.
STRUCTURES = (
    (1, "liver", (0.867, 0.510, 0.396)),
    (2, "spleen", (0.616, 0.424, 0.635)),
    (3, "right kidney", (0.725, 0.400, 0.325)),
    (4, "left kidney", (0.725, 0.400, 0.325)),
    (5, "aorta", (0.878, 0.380, 0.298)),
    (6, "vertebrae", (0.945, 0.839, 0.569)),
)

HU = {
    "air": -1000.0, "skin": 30.0, "fat": -100.0, "muscle": 52.0, "bowel": 35.0, "gas": -850.0,
    "liver": 105.0, "liver_vessel": 165.0, "spleen": 115.0, "kidney_cortex": 170.0,
    "kidney_medulla": 150.0, "sinus_fat": -70.0, "aorta": 185.0, "ivc": 140.0, "cancellous": 230.0,
    "cortical": 650.0, "disc": 85.0, "csf": 15.0, "rib": 420.0,
}
IVC = (18.0, -16.0, 12.0, 10.0)  # centre x, y and semi-axes (mm): anterior-medial to the right kidney
NOISE_HU = 10.0
BLUR_VOXELS = 0.6


@dataclass(frozen=True)
class Phantom:
    """The image in Hounsfield units, its label map (same geometry) and the segment table."""

    image: Volume
    labels: np.ndarray  # uint8 [k, j, i]; 0 = background, values of `segments`
    segments: tuple[SegmentInfo, ...]

    def label_of(self, name: str) -> int:
        for segment in self.segments:
            if segment.name == name:
                return segment.label
        names = ", ".join(segment.name for segment in self.segments)
        raise InputError(f"structure: the phantom has no {name!r}; it has {names}")

    def mask(self, name: str) -> np.ndarray:
        """Boolean [k, j, i] mask of one structure."""
        return self.labels == self.label_of(name)

    @property
    def label_volume(self) -> Volume:
        return self.image.with_array(self.labels)


def phantom_direction_lps(rotation_degrees: float = ROTATION_DEGREES) -> np.ndarray:
    """Columns = directions of i, j, k in LPS: i towards the patient's right, j anterior (both
    flipped from DICOM's LPS), k superior, then turned about the superior axis."""
    angle = np.deg2rad(rotation_degrees)
    turn = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    return ras_to_lps @ turn


def make_phantom(seed: int = 0, shape: tuple[int, int, int] = DEFAULT_SHAPE,
                 spacing: tuple[float, float, float] = DEFAULT_SPACING,
                 rotation_degrees: float = ROTATION_DEGREES) -> Phantom:
    """Build the phantom; the same arguments give the same voxels."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise InputError(f"shape: expected three sizes of at least 8 voxels (k, j, i), got {shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError(f"spacing: expected three positive sizes in mm (i, j, k), got {spacing}")
    rng = np.random.default_rng(seed)
    direction = phantom_direction_lps(rotation_degrees)
    origin = _origin_for_centre(shape, spacing, direction)
    grid = Volume(np.zeros(shape, dtype=np.int16), origin, spacing, direction)
    x, y, z = _patient_coordinates(grid)
    jitter = _Jitter(rng)
    labels = _label_map(x, y, z, jitter)
    hu = _hounsfield(x, y, z, labels, jitter, rng, spacing)
    image = Volume(hu, origin, spacing, direction, modality="CT")
    segments = tuple(SegmentInfo(name=name, label=label, color=color) for label, name, color in STRUCTURES)
    return Phantom(image=image, labels=labels, segments=segments)


def _origin_for_centre(shape, spacing, direction_lps) -> np.ndarray:
    """LPS origin that puts the centre of the voxel grid at CENTRE_RAS."""
    centre_ijk = (np.array(shape[::-1], dtype=float) - 1.0) / 2.0
    centre_lps = np.array(CENTRE_RAS) * np.array([-1.0, -1.0, 1.0])
    return centre_lps - direction_lps @ (centre_ijk * np.array(spacing))


def _patient_coordinates(grid: Volume):
    """RAS millimetres of every voxel, relative to the volume centre: x right, y anterior, z up."""
    k, j, i = np.indices(grid.array.shape)
    ras = grid.ijk_to_ras_points(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)) - np.array(CENTRE_RAS)
    return tuple(axis.reshape(grid.array.shape).astype(np.float32) for axis in ras.T)


class _Jitter:
    """Small seeded changes of organ sizes and positions (a few per cent / mm)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def scale(self, spread: float = 0.05) -> float:
        return float(1.0 + self.rng.uniform(-spread, spread))

    def shift(self, mm: float = 3.0) -> float:
        return float(self.rng.uniform(-mm, mm))


# ---------------------------------------------------------------- shapes (patient millimetres)

def _ellipse(x, y, cx, cy, ax, ay, angle_degrees=0.0):
    """Normalised elliptic radius (<1 inside) of a rotated ellipse; ax/ay may vary per voxel."""
    angle = np.deg2rad(angle_degrees)
    dx, dy = x - cx, y - cy
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return np.sqrt((u / ax) ** 2 + (v / ay) ** 2)


def _axial_profile(z, centre, half_length, power=0.5):
    """Cross-section scale along z: 1 at the centre, 0 beyond the ends (a rounded tip)."""
    t = np.clip(1.0 - ((z - centre) / half_length) ** 2, 0.0, None)
    return t ** power


def _lobulated(x, y, cx, cy, z, amplitude, phase):
    """A smooth radial wobble that turns ellipses into organ-like outlines varying along z."""
    theta = np.arctan2(y - cy, x - cx)
    return 1.0 + amplitude * (np.cos(2 * theta + phase + z / 40.0) + 0.6 * np.sin(3 * theta - phase + z / 25.0))


def _body(x, y, z, jitter):
    """Radii of the skin, fat/muscle boundary and inner muscle wall (normalised radius < 1 inside)."""
    ax, ay = 140.0 * jitter.scale(0.03) + 4.0 * np.sin(z / 30.0), 100.0 * jitter.scale(0.03)
    skin = _ellipse(x, y, 0.0, 0.0, ax, ay)
    fat_inner = _ellipse(x, y, 0.0, 2.0, ax - 20.0, ay - 18.0)
    muscle_inner = _ellipse(x, y, 0.0, 4.0, ax - 30.0, ay - 27.0)
    return skin, fat_inner, muscle_inner


def _kidney(x, y, z, side, jitter):
    """Whole-kidney mask and its medulla and hilum (sinus fat) for side +1 (right) or -1 (left)."""
    cx, cy = side * (62.0 + jitter.shift()), -50.0 + jitter.shift()
    zc = (-32.0 if side > 0 else -22.0) + jitter.shift()
    scale = _axial_profile(z, zc, 34.0 * jitter.scale(), power=0.45)
    ax, ay = 24.0 * scale + 1e-3, 30.0 * scale + 1e-3
    angle = side * 25.0
    whole = _ellipse(x, y, cx, cy, ax, ay, angle) < 1.0
    medulla = _ellipse(x, y, cx, cy, 0.55 * ax, 0.6 * ay, angle) < 1.0
    hilum_centre = (cx - side * 0.85 * ax, cy + 6.0)
    hilum = (_ellipse(x, y, *hilum_centre, 0.55 * ax + 1e-3, 0.3 * ay + 1e-3, angle) < 1.0) & (np.abs(z - zc) < 14.0)
    return whole & ~hilum, medulla & ~hilum, hilum & whole


def _liver(x, y, z, jitter):
    zc, half = 22.0 + jitter.shift(), 44.0 * jitter.scale()
    scale = _axial_profile(z, zc, half, power=0.6) * np.where(z < zc, 0.75 + 0.25 * (z - zc + half) / half, 1.0)
    cx, cy = 52.0 + 0.15 * (z - zc) + jitter.shift(), 8.0 + jitter.shift()
    right_lobe = _ellipse(x, y, cx, cy, 62.0 * scale + 1e-3, 62.0 * scale + 1e-3) < _lobulated(x, y, cx, cy, z, 0.05, 0.7)
    left_scale = _axial_profile(z, zc + 12.0, half * 0.6, power=0.5)
    left_lobe = _ellipse(x, y, -5.0, 42.0, 48.0 * left_scale + 1e-3, 24.0 * left_scale + 1e-3, -15.0) < 1.0
    return right_lobe | left_lobe


def _spleen(x, y, z, jitter):
    zc = 27.0 + jitter.shift()
    scale = _axial_profile(z, zc, 30.0 * jitter.scale(), power=0.5)
    cx, cy = -88.0 + jitter.shift(), -32.0 + jitter.shift()
    return _ellipse(x, y, cx, cy, 24.0 * scale + 1e-3, 50.0 * scale + 1e-3, 35.0) < _lobulated(x, y, cx, cy, z, 0.04, 2.0)


def _spine(x, y, z):
    """Vertebral bone (cortex, cancellous body, posterior arch), discs and canal."""
    body = _ellipse(x, y, 0.0, -60.0, 21.0, 17.0)
    disc = np.abs(((z + 8.0) % 32.0) - 16.0) > 12.5  # 7 mm discs every 32 mm
    canal = _ellipse(x, y, 0.0, -88.0, 8.5, 8.0) < 1.0
    arch = (_ellipse(x, y, 0.0, -88.0, 15.0, 13.0) < 1.0) & ~canal
    spinous = _ellipse(x, y, 0.0, -108.0, 4.5, 11.0) < 1.0
    transverse = (_ellipse(x, y, 0.0, -80.0, 34.0, 4.0) < 1.0) & ~(np.abs(((z + 8.0) % 32.0) - 16.0) > 6.0)
    posterior = (arch | spinous | transverse) & ~disc
    cortical = ((body < 1.0) & (body > 0.86) & ~disc) | posterior
    cancellous = (body <= 0.86) & ~disc
    return cortical, cancellous, (body < 1.0) & disc, canal


def _label_map(x, y, z, jitter) -> np.ndarray:
    labels = np.zeros(x.shape, dtype=np.uint8)
    _, _, muscle_inner = _body(x, y, z, jitter)
    cavity = muscle_inner < 0.97
    cortical, cancellous, _, _ = _spine(x, y, z)
    aorta = _ellipse(x, y, -14.0, -30.0, 11.0, 11.0) < 1.0
    right_kidney = _kidney(x, y, z, +1, jitter)[0]
    left_kidney = _kidney(x, y, z, -1, jitter)[0]
    kidneys_margin = _kidney_margin(right_kidney) | _kidney_margin(left_kidney)
    spleen = _spleen(x, y, z, jitter) & cavity
    ivc_margin = _ellipse(x, y, IVC[0], IVC[1], IVC[2] + 3.0, IVC[3] + 3.0) < 1.0
    liver = _liver(x, y, z, jitter) & cavity & ~kidneys_margin & ~ivc_margin
    for value, mask in ((1, liver), (2, spleen & ~liver), (3, right_kidney), (4, left_kidney),
                        (5, aorta), (6, cortical | cancellous)):
        labels[mask] = value
    return labels


def _kidney_margin(kidney) -> np.ndarray:
    """The kidney grown by two voxels in-plane: a fat plane keeps the liver off it."""
    from scipy import ndimage

    return ndimage.binary_dilation(kidney, structure=np.ones((1, 5, 5), dtype=bool))


def _hounsfield(x, y, z, labels, jitter, rng, spacing) -> np.ndarray:
    from scipy import ndimage

    skin, fat_inner, muscle_inner = _body(x, y, z, jitter)
    hu = np.full(x.shape, HU["air"], dtype=np.float32)
    hu[skin < 1.0] = HU["fat"]
    hu[(skin < 1.0) & (skin > 0.985)] = HU["skin"]
    hu[(fat_inner < 1.0) & (muscle_inner >= 1.0)] = HU["muscle"]
    cavity = muscle_inner < 1.0
    hu[cavity] = HU["fat"]
    # Bowel loops: a smooth seeded random field thresholded into soft tissue with a few gas pockets.
    field = ndimage.gaussian_filter(rng.standard_normal(x.shape).astype(np.float32), sigma=(1.6, 4.0, 4.0))
    field /= field.std() + 1e-6
    bowel = cavity & (field > 0.2) & (y > -40.0)
    hu[bowel] = HU["bowel"]
    hu[bowel & (field > 1.9)] = HU["gas"]
    # Back muscles and psoas beside the spine.
    for side in (-1.0, 1.0):
        hu[(_ellipse(x, y, side * 32.0, -85.0, 22.0, 15.0) < 1.0) & (skin < 1.0)] = HU["muscle"]
        psoas_scale = np.clip((10.0 - z) / 60.0, 0.0, 1.0)
        hu[_ellipse(x, y, side * 34.0, -58.0, 17.0 * psoas_scale + 1e-3, 14.0 * psoas_scale + 1e-3) < 1.0] = HU["muscle"]
    _paint_ribs(x, y, z, hu, muscle_inner)
    cortical, cancellous, disc, canal = _spine(x, y, z)
    hu[disc] = HU["disc"]
    hu[canal] = HU["csf"]
    hu[_ellipse(x, y, IVC[0], IVC[1], IVC[2], IVC[3]) < 1.0] = HU["ivc"]
    for side in (+1, -1):
        whole, medulla, hilum = _kidney(x, y, z, side, jitter)
        hu[hilum] = HU["sinus_fat"]
        hu[whole] = HU["kidney_cortex"]
        hu[medulla] = HU["kidney_medulla"]
    hu[labels == 1] = HU["liver"]
    # Hepatic vessels: thin tubes along the zero set of a smooth random field.
    vessels = ndimage.gaussian_filter(rng.standard_normal(x.shape).astype(np.float32), sigma=(1.5, 6.0, 6.0))
    hu[(labels == 1) & (np.abs(vessels) < 0.05 * vessels.std())] = HU["liver_vessel"]
    hu[labels == 2] = HU["spleen"]
    hu[labels == 5] = HU["aorta"]
    hu[cancellous] = HU["cancellous"]
    hu[cortical] = HU["cortical"]
    # Partial volume (in-plane blur, less across the thick slices), then scanner noise.
    sigma_k = BLUR_VOXELS * spacing[0] / spacing[2]
    hu = ndimage.gaussian_filter(hu, sigma=(sigma_k, BLUR_VOXELS, BLUR_VOXELS))
    hu += rng.normal(0.0, NOISE_HU, size=hu.shape).astype(np.float32)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def _paint_ribs(x, y, z, hu, muscle_inner):
    """Rib cross-sections along the inner body wall of the upper slices (lower thorax)."""
    theta = np.arctan2(y, x)
    near_wall = (muscle_inner > 0.97) & (muscle_inner < 1.05)
    for index, centre in enumerate(np.deg2rad([25, 55, 125, 155, -20, -160])):
        band = np.abs(np.angle(np.exp(1j * (theta - centre)))) < 0.07
        present = np.sin(2 * np.pi * (z - 6.0 * index) / 28.0) > 0.55
        hu[near_wall & band & present & (z > -10.0)] = HU["rib"]
