"""The predictor's speed options, applied to a SegMoTEModel (all opt-in; defaults change nothing).

* `optimize=True`: the faster, numerically equivalent encoder (`backbones.fast_encoder`) and mask
  decoder modules (`modeling.fast_decoder`); cached image embeddings in channels-last layout so
  that the decoder reads them without a transposing copy.
* `precision="bf16"|"fp16"`: the image encoder under autocast (GPU); the decoder stays fp32.
* `cuda_graphs=True`: prompt → mask calls replayed from CUDA graphs (`modeling.prompt_path`).
* `compile_encoder=True`: the image encoder through `torch.compile` for batches of slices (CUDA).

On Linux CPUs `optimize` also raises glibc's mmap threshold (`keep_freed_memory`): tensors of tens
of MB are otherwise mapped fresh from the kernel and page-faulted in at every layer, which cost a
third of the encoder's time on the 2-core test machine. It is process-wide: freed memory stays
with the process for reuse instead of going back to the system.
"""

from __future__ import annotations

import ctypes
import sys
import torch

from ..backbones.fast_encoder import accelerate_image_encoder, check_precision, encoder_autocast
from ..errors import InputError, first_line
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


def fast_options(device) -> dict:
    """The speed options for interactive use on `device` (keyword arguments of SegMoTEPredictor).

    Everywhere the equivalent faster modules (`optimize`: masks equal to the default path on the
    test images); on CUDA also the encoder in fp16 (mean mask Dice ≥ 0.99 against fp32 on the 78
    dev_eval targets) and the prompt → mask path as CUDA graphs (the same kernels). The compiled
    encoder is left out: its first batch waits 8–32 s for the compilation. Apple MPS gets none:
    the faster modules were never run there."""
    from ..device import select_device

    kind = select_device(device).type
    if kind == "cuda":
        return {"optimize": True, "precision": "fp16", "cuda_graphs": True}
    return {"optimize": True} if kind == "cpu" else {}


def check_speed_options(device, precision: str, cuda_graphs: bool, compile_encoder: bool = False) -> str:
    precision = check_precision(precision, device)
    if cuda_graphs and torch.device(device).type != "cuda":
        raise InputError(f"cuda_graphs: CUDA graphs need a CUDA device, the predictor runs on {device}")
    if compile_encoder and torch.device(device).type != "cuda":
        raise InputError(f"compile_encoder: compiling the encoder is offered on CUDA devices only (on this "
                         f"machine's CPU it took 4 minutes to compile for a 1.5× gain); the predictor runs on {device}")
    return precision


class CompiledEncoder:
    """`model.encode` through torch.compile, for batches of slices.

    The compiled graph has one fixed batch size, `chunk` (dynamic batch sizes failed to compile on
    torch 2.11, and each new size would compile anew): batches run in chunks of that size, a last
    partial chunk of at least half of it is padded (the padding's results are dropped), smaller
    remainders and single slices — the interactive `set_image` — run eagerly, so nobody waits for a
    compilation before their first click; the first full chunk waits for it (20–50 s on an H100).
    Should compilation fail, the encoder runs eagerly from then on and `failure` says why."""

    def __init__(self, model, chunk: int = 32):
        self.model = model
        self.chunk = chunk
        self.failure: str | None = None
        self._compiled = torch.compile(model.encode, dynamic=False)

    def __call__(self, images: torch.Tensor):
        parts = [self._encode_chunk(images[start:start + self.chunk]) for start in range(0, images.shape[0], self.chunk)]
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _encode_chunk(self, images: torch.Tensor):
        count = images.shape[0]
        if self.failure is not None or count < self.chunk // 2:
            return self.model.encode(images)
        if count < self.chunk:
            padding = images[-1:].expand(self.chunk - count, *images.shape[1:])
            images = torch.cat([images, padding]).contiguous(memory_format=_memory_format(images))
        try:
            embedding, early = self._compiled(images)
        except Exception as error:  # noqa: BLE001 — a compiler fault must not stop segmentation
            self.failure = f"{type(error).__name__}: {first_line(error)}"
            return self.model.encode(images[:count])
        return embedding[:count], early[:count]


def _memory_format(images: torch.Tensor):
    return torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def encode(encoder, images: torch.Tensor, device, precision: str, channels_last: bool):
    """(embedding, early features) in float32, from `encoder` (a model's `encode`, or a
    CompiledEncoder) run at `precision`."""
    if channels_last and images.is_cuda:  # cuDNN's tensor-core convolutions want NHWC
        images = images.contiguous(memory_format=torch.channels_last)
    with encoder_autocast(device, precision):
        embedding, early = encoder(images)
    embedding, early = embedding.float(), early.float()
    if channels_last:
        embedding = embedding.contiguous(memory_format=torch.channels_last)
    return embedding, early
