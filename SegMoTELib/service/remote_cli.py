"""`segmote segment --server URL`: the command's engine, computed by a `segmote serve` process.

`RemoteEngine` stands in for the predictor of `commands/segment.py`: 2D images go through
`set_image` / `predict` / `predict_auto` (the image becomes a one-slice volume with identity
geometry, so pixel x, y are voxel i, j and the mask comes back as stored), volumes through
`open_volume`, whose session has the `VolumeSegmenter` methods. The server's model is the one it
was started with; the mask written equals the in-process one for the same model settings.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..slice_prompt import SlicePrompt
from .client import EngineClient

_MODEL_DEFAULTS = {"backbone": "litemedsam", "checkpoint": None, "adapter": "default", "device": "auto", "fast": False}


@dataclass
class RemotePrediction:
    masks: np.ndarray   # bool (1, H, W)
    scores: np.ndarray  # (1,)
    decoder: str


class RemoteEngine:
    notice = None

    def __init__(self, args):
        changed = [f"--{name}" for name, default in _MODEL_DEFAULTS.items() if getattr(args, name, default) != default]
        if changed:
            print(f"note: {', '.join(changed)} ignored with --server: the server's model is the one it was started "
                  f"with (segmote serve ...)", file=sys.stderr)
        self.client = EngineClient(args.server)
        # First a call that answers at once on a live engine: a server that is down, silent or not
        # a SegMoTE engine is named within seconds (connect 5 s, answer 10 s), before any upload.
        self.client.info()
        self._image_session = None
        self._sessions = []

    # --- volumes -------------------------------------------------------------------------------
    def open_volume(self, volume, mapping=None):
        session = self.client.open_volume(volume, mapping)
        self._sessions.append(session)
        return session

    # --- 2D images (the predictor's interface) --------------------------------------------------
    def set_image(self, image: np.ndarray, modality: str = "auto", mapping=None) -> None:
        from ..intensity import IntensityMapping
        from ..volume import Volume

        rgb = image.ndim == 3
        volume = Volume(image[None], rgb=rgb)  # identity geometry: voxel (i, j) is pixel (x, y)
        self._image_session = self.open_volume(volume, mapping or IntensityMapping(modality=modality))

    def _session(self):
        if self._image_session is None:
            raise InputError("image: no image is set; call set_image(image) before predict()")
        return self._image_session

    def predict(self, prompt: SlicePrompt | None = None, *, points=None, labels=None, box=None,
                mask_input=None) -> RemotePrediction:
        """As SegMoTEPredictor.predict, on the image set last (a one-slice volume on the server)."""
        session = self._session()
        if prompt is None:
            prompt = SlicePrompt.build(points=points, labels=labels, box=box, mask_input=mask_input)
        # pixel x, y of the image as stored are voxel i, j of its one slice
        voxels = prompt.mapped(lambda xy: np.column_stack([xy, np.zeros(len(xy))]), "ijk")
        return self._prediction(session.segment_slice(voxels, "axial", slice_index=0))

    def predict_auto(self) -> RemotePrediction:
        return self._prediction(self._session().segment_auto("axial", 0))

    @staticmethod
    def _prediction(result) -> RemotePrediction:
        return RemotePrediction(masks=result.labelmap[:1], scores=np.array([result.score]), decoder=result.decoder)

    def close(self) -> None:
        for session in self._sessions:
            session.close(quiet=True)
        self._sessions.clear()
        self.client.close()

