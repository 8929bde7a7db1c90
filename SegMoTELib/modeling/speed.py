"""The predictor's speed options, applied to a SegMoTEModel (all opt-in; defaults change nothing).

* `optimize=True`: the faster, numerically equivalent encoder (`backbones.fast_encoder`) and mask
  decoder modules (`modeling.fast_decoder`); cached image embeddings in channels-last layout so
  that the decoder reads them without a transposing copy.
* `precision="bf16"|"fp16"`: the image encoder under autocast (GPU); the decoder stays fp32.
* `cuda_graphs=True`: decoder calls replayed from CUDA graphs (`modeling.cuda_graph`).

On Linux CPUs `optimize` also raises glibc's mmap threshold (`keep_freed_memory`): tensors of tens
of MB are otherwise mapped fresh from the kernel and page-faulted in at every layer, which cost a
third of the encoder's time on the 2-core test machine. It is process-wide: freed memory stays
with the process for reuse instead of going back to the system.
"""

from __future__ import annotations

import ctypes
import sys
from typing import NamedTuple

import torch

from ..backbones.fast_encoder import accelerate_image_encoder, check_precision, encoder_autocast
from ..errors import InputError
from .cuda_graph import GraphedCall
from .fast_decoder import accelerate_mask_decoder, cache_image_features


def accelerate_model(model, device) -> None:
    """Swap the model's encoder for a faster copy and its SAM decoder modules for faster
    equivalents, in place (the adapter's parameters are untouched)."""
    backbone = model.backbone
    backbone.image_encoder = accelerate_image_encoder(backbone.image_encoder, device)
    accelerate_mask_decoder(backbone.mask_decoder)
    if model.decoder.sam is not backbone.mask_decoder:  # the fine-tuned copy of the 'decoder' modes
        accelerate_mask_decoder(model.decoder.sam)
    cache_image_features(model.adapter)
    model.dense_pe_memory_format = torch.channels_last
    if torch.device(device).type == "cpu":
        keep_freed_memory()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """glibc only: serve large allocations from the heap and keep freed memory for reuse (no
    page faults at every layer). True if applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False


def check_speed_options(device, precision: str, cuda_graphs: bool) -> str:
    precision = check_precision(precision, device)
    if cuda_graphs and torch.device(device).type != "cuda":
        raise InputError(f"cuda_graphs: CUDA graphs need a CUDA device, the predictor runs on {device}")
    return precision


def encode(model, images: torch.Tensor, device, precision: str, channels_last: bool):
    """(embedding, early features) in float32, from the encoder run at `precision`."""
    if channels_last and images.is_cuda:  # cuDNN's tensor-core convolutions want NHWC
        images = images.contiguous(memory_format=torch.channels_last)
    with encoder_autocast(device, precision):
        embedding, early = model.encode(images)
    embedding, early = embedding.float(), early.float()
    if channels_last:
        embedding = embedding.contiguous(memory_format=torch.channels_last)
    return embedding, early


class DecodedTensors(NamedTuple):
    """The DecoderOutput fields the predictor reads, as a graph returns them."""

    masks: torch.Tensor
    iou: torch.Tensor
    expert_masks: torch.Tensor
    expert_iou: torch.Tensor
    confidence: torch.Tensor


class DecoderGraphs:
    """CUDA-graph replays of the base and SegMoTE decoder calls of one model."""

    def __init__(self, model):
        self.model = model
        self._base = {(multimask, tuned): GraphedCall(self._base_call(multimask, tuned))
                      for multimask in (False, True) for tuned in (False, True)}
        self._segmote = GraphedCall(self._segmote_call)
        self._auto = GraphedCall(self._auto_call)

    def _base_call(self, multimask: bool, tuned: bool):
        def call(embedding, sparse, dense):
            if tuned:
                return self.model.decode_base(embedding, sparse, dense, multimask, tuned=True)
            return self.model.decode_base(embedding, sparse, dense, multimask)
        return call

    @staticmethod
    def _outputs(output) -> tuple:
        return output.masks, output.iou, output.expert_masks, output.expert_iou, output.confidence

    def _segmote_call(self, embedding, early, sparse, dense):
        return self._outputs(self.model.decode(embedding, early, sparse, dense))

    def _auto_call(self, embedding, early, dense):
        return self._outputs(self.model.decode(embedding, early, None, dense))

    @property
    def failures(self) -> list[str]:
        """Why some shapes run eagerly (captures that failed), if any."""
        calls = [*self._base.values(), self._segmote, self._auto]
        return sorted({reason for call in calls for reason in call.failures.values()})

    def decode_base(self, embedding, sparse, dense, multimask: bool, tuned: bool = False):
        return self._base[bool(multimask), bool(tuned)](embedding, sparse, dense)

    def decode(self, embedding, early, sparse, dense) -> DecodedTensors:
        if sparse is None:
            return DecodedTensors(*self._auto(embedding, early, dense))
        return DecodedTensors(*self._segmote(embedding, early, sparse, dense))
