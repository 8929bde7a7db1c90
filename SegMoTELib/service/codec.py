"""Compact wire formats of the engine service: voxels up, masks down (pure numpy + stdlib).

Voxels travel once per session as the C-order bytes of the `[k, j, i]` array, zlib-compressed,
whole or in slabs of slices (`voxel_slabs`: the client compresses one slab at a time straight from
the array, so an upload holds the volume plus one compressed slab, never a second copy; the
server inflates each slab into the session's array as its bytes arrive, `VoxelInflater`); masks come back as the bounding extent of their voxels plus the bits of that block, packed
(8 voxels a byte) and zlib-compressed, never as JSON lists of pixels. A one-slice mask is a block
one voxel thick, so a click costs a few hundred bytes.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterator

import numpy as np

from ..errors import InputError

# Voxel types a client may send (what volumes hold); anything else is refused by name.
VOXEL_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool")
SLAB_BYTES = 16 * 1024 * 1024  # raw bytes of one uploaded slab at most (at least one slice)
SLABS_AT_LEAST = 8  # a volume goes up in at least this many slabs (when it has the slices)


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
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, expected + 1)
    except zlib.error as error:
        raise InputError(f"voxels: the upload is not zlib-compressed data ({error})") from None
    if len(raw) != expected or inflater.unconsumed_tail or not inflater.eof:
        raise InputError(f"voxels: expected {expected} bytes of {dtype} for shape {list(shape)} after "
                         f"decompression, got {'more' if len(raw) > expected or inflater.unconsumed_tail else len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def slab_slices(shape: tuple[int, ...], itemsize: int, slab_bytes: int = SLAB_BYTES) -> int:
    """Slices per slab: at most `slab_bytes` of raw voxels and an eighth of the volume, at least one
    slice (what an upload holds besides the volume: one compressed slab)."""
    slice_bytes = max(1, math.prod(shape[1:]) * itemsize)
    return max(1, min(slab_bytes // slice_bytes, shape[0] // SLABS_AT_LEAST))


def voxel_slabs(array: np.ndarray, wire_dtype=None, slab_bytes: int = SLAB_BYTES,
                level: int = 1) -> Iterator[tuple[int, bytes]]:
    """(first slice, zlib of the slab's C-order bytes) for consecutive slabs of `array` [k, ...].

    Each slab is compressed from a view of the array (converted to `wire_dtype` one slab at a time
    when it differs), so no copy of the whole volume is ever made."""
    dtype = np.dtype(wire_dtype or array.dtype)
    step = slab_slices(array.shape, dtype.itemsize, slab_bytes)
    for first in range(0, array.shape[0], step):
        slab = array[first:first + step]
        if slab.dtype != dtype or not slab.flags.c_contiguous:
            slab = np.ascontiguousarray(slab, dtype=dtype)
        yield first, zlib.compress(memoryview(slab).cast("B"), level)


class VoxelInflater:
    """Inflates zlib data into `array` (C order) from byte `offset` on, chunk by chunk, as it arrives.

    Never writes past the array, never inflates more than the space left (a "zip bomb" ends in an
    InputError), and `finish` says how many bytes the stream held."""

    def __init__(self, array: np.ndarray, offset: int = 0):
        self._view = memoryview(array).cast("B")
        self._position = self._start = int(offset)
        self._inflater = zlib.decompressobj()

    def feed(self, data: bytes) -> None:
        room = len(self._view) - self._position
        try:
            out = self._inflater.decompress(data, room + 1)
        except zlib.error as error:
            raise InputError(f"voxels: the upload is not zlib-compressed data ({error})") from None
        if len(out) > room or self._inflater.unconsumed_tail:
            raise InputError(f"voxels: more bytes than the volume announced ({len(self._view)} bytes in all)")
        self._view[self._position:self._position + len(out)] = out
        self._position += len(out)

    def finish(self) -> int:
        """The number of bytes inflated; an InputError when the stream was cut short."""
        tail = self._inflater.flush()
        if tail:
            self.feed(tail)
        if not self._inflater.eof:
            raise InputError("voxels: the upload ended before its compressed data did")
        return self._position - self._start


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
    return MaskBlock.decode(encoded, shape).to_array()


class MaskBlock:
    """A mask of a volume of `shape` as the block holding its voxels (`where`: slices; None = empty).

    What a slice result is until someone asks for the whole labelmap: `paste_into` writes it into an
    existing array (the Segment Editor's modifier labelmap) without a full-volume allocation."""

    def __init__(self, shape: tuple[int, ...], where: tuple[slice, ...] | None, block: np.ndarray | None):
        self.shape, self.where, self.block = tuple(shape), where, block

    @classmethod
    def decode(cls, encoded: dict, shape: tuple[int, ...]) -> MaskBlock:
        extent = encoded.get("extent")
        if extent is None:
            return cls(shape, None, None)
        if (len(extent) != len(shape) or any(len(pair) != 2 for pair in extent)
                or any(not 0 <= low <= high < size for (low, high), size in zip(extent, shape))):
            raise InputError(f"mask: extent {extent} does not fit a volume of shape {list(shape)}")
        block_shape = tuple(high - low + 1 for low, high in extent)
        count = math.prod(block_shape)
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
        return cls(shape, tuple(slice(low, high + 1) for low, high in extent), block)

    @property
    def empty(self) -> bool:
        return self.where is None

    def paste_into(self, out: np.ndarray) -> np.ndarray:
        """`out` (the volume's shape) set to this mask: zeroed in place, then the block written."""
        if tuple(out.shape) != self.shape:
            raise InputError(f"mask: expected an array of shape {list(self.shape)}, got {list(out.shape)}")
        out[...] = 0
        if self.where is not None:
            out[self.where] = self.block
        return out

    def to_array(self) -> np.ndarray:
        return self.paste_into(np.zeros(self.shape, dtype=bool))

    def __getitem__(self, index) -> np.ndarray:
        """The mask on a box of the volume, `index` a tuple of slices (step 1): an array of that box's
        size only, so code that takes the slab of a labelmap (`labelmap[slab]`) never needs the whole."""
        index = tuple(index) + (slice(None),) * (len(self.shape) - len(tuple(index)))
        spans = [part.indices(size)[:2] for part, size in zip(index, self.shape)]
        out = np.zeros([max(0, stop - start) for start, stop in spans], dtype=bool)
        if self.where is None:
            return out
        source, target = [], []
        for (start, stop), block_part in zip(spans, self.where):
            low, high = max(start, block_part.start), min(stop, block_part.stop)
            if low >= high:
                return out
            source.append(slice(low - block_part.start, high - block_part.start))
            target.append(slice(low - start, high - start))
        out[tuple(target)] = self.block[tuple(source)]
        return out

    @property
    def ndim(self) -> int:
        return len(self.shape)

