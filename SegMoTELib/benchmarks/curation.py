"""Throughput of the curation metrics against a straightforward per-slice implementation.

`benchmark_curation()` times, in the same run and on the same slices, `metrics_batch` (stacks,
vectorised) and per-slice references — scipy.ndimage, and OpenCV when it is installed (it is a
test dependency only) — each in one process and in `workers` processes (one slice range each).
OpenCV is limited to one thread per process so that every implementation gets the same cores.
Data: deterministic synthetic slices (smooth anatomy-like blobs, noise, 1–3 blob masks), or real
pairs from a train_pool-style folder (the size×size pairs, cycled up to n_slices).
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..curation.metrics import METRIC_NAMES, metrics_batch, to_grey

_DATA: dict = {}


def synthetic_slices(n_slices: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size) uint8 images and bool masks: 32 distinct scenes, flipped and shifted."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    bases, base_masks = [], []
    for _ in range(32):
        image = np.full((size, size), rng.uniform(20, 60), np.float32)
        mask = np.zeros((size, size), bool)
        for blob in range(rng.integers(3, 7)):
            cy, cx, ry, rx = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.04, 0.25), rng.uniform(0.04, 0.25)
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            image[inside] = rng.uniform(60, 220)
            if blob < rng.integers(1, 4):
                mask |= inside
        image = ndimage.gaussian_filter(image, 1.5) + rng.normal(0, 8, image.shape)
        bases.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
        base_masks.append(mask)
    pick = rng.integers(0, 32, n_slices)
    shifts = rng.integers(-size // 8, size // 8, (n_slices, 2))
    images = np.empty((n_slices, size, size), np.uint8)
    masks = np.empty((n_slices, size, size), bool)
    for k in range(n_slices):
        images[k] = np.roll(bases[pick[k]], tuple(shifts[k]), axis=(0, 1))[:, ::1 - 2 * (k % 2)]
        masks[k] = np.roll(base_masks[pick[k]], tuple(shifts[k]), axis=(0, 1))[:, ::1 - 2 * (k % 2)]
    return images, masks


def folder_slices(folder: str | Path, n_slices: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Real size×size pairs (grey, mask > 0) from a train_pool-style folder, cycled to n_slices."""
    from PIL import Image

    images, masks = [], []
    for image_path in sorted(Path(folder).glob("**/images/*.png")):
        mask_path = image_path.parent.parent / "masks" / image_path.name
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            if image.size == (size, size) and mask.size == (size, size):
                images.append(to_grey(np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)))
                masks.append(np.asarray(mask) > 0)
        if len(images) >= n_slices:
            break
    if not images:
        raise ValueError(f"no {size}×{size} image/mask pairs under {folder}")
    order = np.arange(n_slices) % len(images)
    return np.stack(images)[order], np.stack(masks)[order]


def reference_scipy(image: np.ndarray, mask: np.ndarray) -> dict:
    """The metrics of one slice, written the obvious way with scipy.ndimage (float64)."""
    pixels = image.astype(np.float64)
    histogram = np.bincount(image.ravel(), minlength=256) / image.size
    probabilities = histogram[histogram > 0]
    square = np.ones((3, 3), bool)
    band = ndimage.binary_dilation(mask, square) & ~ndimage.binary_erosion(mask, square, border_value=1)
    magnitude = np.hypot(ndimage.sobel(pixels, axis=1, mode="mirror"), ndimage.sobel(pixels, axis=0, mode="mirror"))
    return {"mean": pixels.mean(), "std": pixels.std(), "fg_ratio": mask.mean(),
            "n_components": ndimage.label(mask, structure=square)[1],
            "sharpness": ndimage.laplace(pixels, mode="mirror").var(), "contrast": pixels.std(),
            "entropy": float(-(probabilities * np.log2(probabilities)).sum()),
            "boundary_gradient": magnitude[band].mean() if band.any() else 0.0}


def reference_opencv(image: np.ndarray, mask: np.ndarray) -> dict:
    """The metrics of one slice, written the obvious way with OpenCV."""
    import cv2

    mask_u8 = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    band = (cv2.dilate(mask_u8, kernel) - cv2.erode(mask_u8, kernel)).astype(bool)
    magnitude = cv2.magnitude(cv2.Sobel(image, cv2.CV_64F, 1, 0, ksize=3), cv2.Sobel(image, cv2.CV_64F, 0, 1, ksize=3))
    mean, std = cv2.meanStdDev(image)
    histogram = cv2.calcHist([image], [0], None, [256], [0, 256]).ravel().astype(np.float64) / image.size
    probabilities = histogram[histogram > 0]
    return {"mean": float(mean[0, 0]), "std": float(std[0, 0]), "fg_ratio": cv2.countNonZero(mask_u8) / mask.size,
            "n_components": cv2.connectedComponents(mask_u8, connectivity=8)[0] - 1,
            "sharpness": float(cv2.Laplacian(image, cv2.CV_64F).var()), "contrast": float(std[0, 0]),
            "entropy": float(-(probabilities * np.log2(probabilities)).sum()),
            "boundary_gradient": float(magnitude[band].mean()) if band.any() else 0.0}


def _ours(images, masks):
    return metrics_batch(images, masks)["mean"].size


def _per_slice(function):
    def run(images, masks):
        for image, mask in zip(images, masks):
            function(image, mask)
        return len(images)
    return run


IMPLEMENTATIONS = {"segmote (stacks)": _ours, "reference scipy (per slice)": _per_slice(reference_scipy),
                   "reference opencv (per slice)": _per_slice(reference_opencv)}


def _opencv_available() -> bool:
    try:
        import cv2
    except ImportError:
        return False
    cv2.setNumThreads(1)
    return True


def _load(n_slices, size, data, seed):
    if data is None:
        return synthetic_slices(n_slices, size, seed)
    return folder_slices(data, n_slices, size)


def _worker_init(n_slices, size, data, seed, parts):
    _opencv_available()
    images, masks = _load(n_slices, size, data, seed)
    _DATA.update(images=images, masks=masks, bounds=np.linspace(0, n_slices, parts + 1).astype(int))


def _worker_part(job) -> float:
    """Run one implementation on this worker's slice range; returns the CPU seconds it took."""
    name, part = job
    start, stop = _DATA["bounds"][part], _DATA["bounds"][part + 1]
    started = time.process_time()
    IMPLEMENTATIONS[name](_DATA["images"][start:stop], _DATA["masks"][start:stop])
    return time.process_time() - started


def _measure(run, n_slices: int, repeats: int, processes: int) -> dict:
    """Wall-clock slices/s (median, min, max) and slices per CPU-second of `repeats` runs.

    `run()` returns the CPU seconds it used (summed over worker processes), so the CPU figure
    shows the cost of the code itself when other programs share the cores.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        cpu_seconds = run()
        wall.append(n_slices / (time.perf_counter() - started))
        cpu.append(n_slices / max(cpu_seconds, 1e-9))
    return {"processes": processes, "slices_per_second_median": statistics.median(wall), "min": min(wall),
            "max": max(wall), "runs": wall, "slices_per_cpu_second_median": statistics.median(cpu)}


def _timed_here(function, images, masks) -> float:
    started = time.process_time()
    function(images, masks)
    return time.process_time() - started


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def max_difference(images, masks) -> dict:
    """Largest relative difference of each metric between ours and the scipy reference."""
    ours = metrics_batch(images, masks)
    reference = [reference_scipy(image, mask) for image, mask in zip(images, masks)]
    return {name: float(np.max(np.abs(ours[name] - np.array([r[name] for r in reference], dtype=np.float64))
                               / np.maximum(1.0, np.abs([r[name] for r in reference]))))
            for name in METRIC_NAMES}


def benchmark_curation(n_slices: int = 1024, size: int = 256, repeats: int = 5, workers: int | None = None,
                       data: str | Path | None = None, seed: int = 0) -> dict:
    """Slices per second of our metrics and of the per-slice references (median, min, max)."""
    workers = int(workers or os.cpu_count() or 1)
    names = [name for name in IMPLEMENTATIONS if "opencv" not in name or _opencv_available()]
    images, masks = _load(n_slices, size, data, seed)
    results = {}
    load_before = os.getloadavg()
    for name in names:  # one process
        IMPLEMENTATIONS[name](images[:16], masks[:16])  # warm-up (imports, caches)
        results[f"{name}, 1 process"] = _measure(lambda n=name: _timed_here(IMPLEMENTATIONS[n], images, masks),
                                                 n_slices, repeats, 1)
    if workers > 1:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with context.Pool(workers, initializer=_worker_init, initargs=(n_slices, size, data, seed, workers)) as pool:
            for name in names:
                jobs = [(name, part) for part in range(workers)]
                pool.map(_worker_part, jobs)  # warm-up
                results[f"{name}, {workers} processes"] = _measure(lambda j=jobs: sum(pool.map(_worker_part, j)),
                                                                   n_slices, repeats, workers)
    check = max_difference(images[:64], masks[:64])
    return {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                        "numpy": np.__version__, "scipy": __import__("scipy").__version__},
            "n_slices": n_slices, "size": size, "repeats": repeats, "workers": workers,
            "data": "synthetic" if data is None else str(data), "results": results,
            "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "max_relative_difference_vs_scipy": check}


def format_markdown(result: dict) -> str:
    """A markdown table of a `benchmark_curation` result."""
    lines = [f"{result['n_slices']} slices of {result['size']}×{result['size']} ({result['data']}), "
             f"{result['repeats']} repeats, CPU: {result['machine']['cpu']} ({result['machine']['cores']} cores), "
             f"1-min load average before/after: {result['load_average_before_after']}", "",
             "| implementation | processes | wall slices/s, median | min – max | slices per CPU-second |",
             "|---|---|---|---|---|"]
    for name, stats in result["results"].items():
        lines.append(f"| {name.rsplit(',', 1)[0]} | {stats['processes']} | {stats['slices_per_second_median']:.0f} "
                     f"| {stats['min']:.0f} – {stats['max']:.0f} | {stats['slices_per_cpu_second_median']:.0f} |")
    return "\n".join(lines)
