"""Compact wire formats of the engine service: voxels up, masks down (pure numpy + stdlib).

Voxels travel once per session as the C-order bytes of the `[k, j, i]` array, zlib-compressed;
masks come back as the bounding extent of their voxels plus the bits of that block, packed
(8 voxels a byte) and zlib-compressed, never as JSON lists of pixels. A one-slice mask is a block
one voxel thick, so a click costs a few hundred bytes.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

from ..errors import InputError

# Voxel types a client may send (what volumes hold); anything else is refused by name.
VOXEL_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool")


def encode_voxels(array: np.ndarray, level: int = 1) -> bytes:
    """zlib of the array's C-order bytes (level 1: fast, and CT compresses ~2x anyway)."""
    return zlib.compress(np.ascontiguousarray(array).tobytes(), level)


def decode_voxels(payload: bytes, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The array from `encode_voxels`; exactly the bytes announced or an InputError.

    Decompression stops one byte past the expected size, so a small payload cannot expand into
    an unbounded buffer (a "zip bomb").
    """
    if dtype not in VOXEL_DTYPES:
        raise InputError(f"volume.dtype: expected one of {', '.join(VOXEL_DTYPES)}, got {dtype!r}")
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, expected + 1)
    except zlib.error as error:
        raise InputError(f"voxels: the upload is not zlib-compressed data ({error})") from None
    if len(raw) != expected or inflater.unconsumed_tail or not inflater.eof:
        raise InputError(f"voxels: expected {expected} bytes of {dtype} for shape {list(shape)} after "
                         f"decompression, got {'more' if len(raw) > expected or inflater.unconsumed_tail else len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def encode_mask(labelmap: np.ndarray) -> dict:
    """{"extent": [[k0, k1], [j0, j1], [i0, i1]] (inclusive) or None, "bits": base64 zlib packbits}."""
    block = np.asarray(labelmap, dtype=bool)
    extent = []
    for axis in range(block.ndim):  # each axis's extent read from the block cropped so far: one full pass
        others = tuple(a for a in range(block.ndim) if a != axis)
        present = np.flatnonzero(block.any(axis=others))
        if present.size == 0:
            return {"extent": None, "bits": ""}
        low, high = int(present[0]), int(present[-1])
        extent.append([low, high])
        block = block[(slice(None),) * axis + (slice(low, high + 1),)]
    bits = zlib.compress(np.packbits(block, axis=None).tobytes(), 6)
    return {"extent": extent, "bits": base64.b64encode(bits).decode("ascii")}


def decode_mask(encoded: dict, shape: tuple[int, ...]) -> np.ndarray:
    """The bool array of `shape` that `encode_mask` described."""
    labelmap = np.zeros(shape, dtype=bool)
    extent = encoded.get("extent")
    if extent is None:
        return labelmap
    if (len(extent) != len(shape) or any(len(pair) != 2 for pair in extent)
            or any(not 0 <= low <= high < size for (low, high), size in zip(extent, shape))):
        raise InputError(f"mask: extent {extent} does not fit a volume of shape {list(shape)}")
    block_shape = tuple(high - low + 1 for low, high in extent)
    count = int(np.prod(block_shape))
    try:
        # bounded: a small payload cannot expand past the block's bytes (masks also arrive from clients)
        inflater = zlib.decompressobj()
        packed = np.frombuffer(inflater.decompress(base64.b64decode(encoded["bits"]), (count + 7) // 8),
                               dtype=np.uint8)
    except (zlib.error, ValueError) as error:
        raise InputError(f"mask: the bits are not base64 zlib data ({error})") from None
    if packed.size * 8 < count:
        raise InputError(f"mask: {packed.size * 8} bits for a block of {count} voxels")
    block = np.unpackbits(packed, count=count).astype(bool).reshape(block_shape)
    labelmap[tuple(slice(low, high + 1) for low, high in extent)] = block
    return labelmap

