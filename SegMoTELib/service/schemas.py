"""The request and response bodies of the engine service (pydantic; they make the OpenAPI schema).

Coordinates are RAS millimetres in the volume's world, as everywhere in SegMoTELib. A malformed
body is refused by FastAPI with 422 before any engine code runs; the app turns pydantic's error
list into one line naming the field (see `app.py`). NaN and infinities are refused in every
number (JSON has neither; Python's parser takes them), and so are paths no file system can hold.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .codec import VOXEL_DTYPES

Finite = Annotated[float, Field(allow_inf_nan=False)]
Vec3 = tuple[Finite, Finite, Finite]
Orientation = Literal["axial", "coronal", "sagittal"] | Vec3
VoxelType = Literal[VOXEL_DTYPES]  # type: ignore[valid-type]
MAX_PATH_CHARACTERS = 4096  # PATH_MAX on Linux; Windows and macOS allow less
MAX_DIMENSION = 2**31 - 1   # voxels along one axis


class _Strict(BaseModel):
    # A misspelt field is an error, not silently ignored; NaN/Infinity are refused in every float.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MappingModel(_Strict):
    """How intensities become 8-bit (SegMoTELib.intensity.IntensityMapping)."""

    modality: str = "auto"
    preset: str | None = None
    window: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    level: Finite | None = None
    percentiles: tuple[Annotated[float, Field(ge=0, le=100)], Annotated[float, Field(ge=0, le=100)]] = (0.5, 99.5)


class VolumeSpec(_Strict):
    """An uploaded volume: its array layout and ITK/LPS geometry (the voxels follow with PUT .../voxels)."""

    shape: list[Annotated[int, Field(ge=1, le=MAX_DIMENSION)]] = Field(min_length=3, max_length=4, description="[k, j, i] (, 3 for RGB)")
    dtype: VoxelType
    origin_lps: Vec3 = (0.0, 0.0, 0.0)
    spacing: tuple[Annotated[float, Field(gt=0, allow_inf_nan=False)], ...] = Field((1.0, 1.0, 1.0),
                                                                                     min_length=3, max_length=3)
    direction_lps: tuple[Vec3, Vec3, Vec3] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    rgb: bool = False
    modality: str | None = None


class SessionCreate(_Strict):
    volume: VolumeSpec | None = Field(None, description="upload the voxels next with PUT /v1/sessions/{id}/voxels")
    path: str | None = Field(None, min_length=1, max_length=MAX_PATH_CHARACTERS,
                             description="a volume file the server can read (only under its --data-root)")
    mapping: MappingModel = MappingModel()

    @field_validator("path")
    @classmethod
    def _usable_path(cls, path):
        if path is not None and "\x00" in path:
            raise ValueError("a file name cannot hold a NUL character")
        return path

    @model_validator(mode="after")
    def _one_source(self):
        if (self.volume is None) == (self.path is None):
            raise ValueError("give exactly one of 'volume' (then upload the voxels) or 'path'")
        return self


class SessionInfo(BaseModel):
    session_id: str
    state: Literal["awaiting_voxels", "ready"]
    shape: list[int]
    idle_limit_s: float
    upload: str | None = Field(None, description="while slabs arrive: how many slices have been received")


class SeedMask(_Strict):
    """A binary slice mask (H, W) in the slice's display orientation, encoded as `Mask` is."""

    shape: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]
    extent: list[list[int]] | None
    bits: str


class SlicePrompt(_Strict):
    orientation: Orientation = "axial"
    points_ras: list[Vec3] | None = Field(None, min_length=1)
    labels: list[Literal[0, 1]] | None = Field(None, description="1 positive, 0 negative; default all positive")
    box_ras: list[Vec3] | None = Field(None, description="2 opposite corners or the 8 corners of a rotated box")
    slice_index: Annotated[int, Field(ge=0)] | None = None
    previous_result: str | None = Field(None, description="refine: the result whose low-res logits go along")
    seed_mask: SeedMask | None = Field(None, description="refine a mask made elsewhere: the slice's current mask "
                                                         "goes along as the dense prompt (not with previous_result)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.points_ras is None and self.box_ras is None and self.previous_result is None and self.seed_mask is None:
            raise ValueError("give points_ras, box_ras, previous_result or seed_mask")
        if self.previous_result is not None and self.seed_mask is not None:
            raise ValueError("give previous_result or seed_mask, not both")
        if self.labels is not None and (self.points_ras is None or len(self.labels) != len(self.points_ras)):
            raise ValueError("labels: give one label per point of points_ras")
        if self.box_ras is not None and len(self.box_ras) not in (2, 8):
            raise ValueError(f"box_ras: expected 2 or 8 corners, got {len(self.box_ras)}")
        return self


class AutoPrompt(_Strict):
    orientation: Orientation = "axial"
    slice_index: Annotated[int, Field(ge=0)] | None = Field(None, description="default: the middle slice")


class Rules(_Strict):
    """When a propagation stops (SegMoTELib.segment3d.PropagationRules)."""

    min_score: Annotated[float, Field(ge=0, le=1)] = 0.5
    min_area_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.2
    use_logits: bool = False
    box_margin: Annotated[float, Field(ge=0, lt=0.5)] = 0.02
    max_intensity_shift: Annotated[float, Field(gt=0, le=255)] | None = 40.0


class PropagateRequest(_Strict):
    seed_result: str = Field(description="the slice result to extend through the volume")
    slice_range: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = None
    rules: Rules = Rules()


class Box3DRequest(_Strict):
    corners_ras: list[Vec3] = Field(min_length=2, max_length=8, description="2 opposite corners or 8 ROI corners")
    orientation: Orientation = "axial"
    rules: Rules = Rules()

    @model_validator(mode="after")
    def _corner_count(self):
        if len(self.corners_ras) not in (2, 8):
            raise ValueError(f"corners_ras: expected 2 or 8 corners, got {len(self.corners_ras)}")
        return self


class PrefetchRequest(_Strict):
    orientation: Orientation = "axial"
    slice_index: Annotated[int, Field(ge=0)] | None = None
    point_ras: Vec3 | None = Field(None, description="the slice through this point (when slice_index is not given)")

    @model_validator(mode="after")
    def _which_slice(self):
        if (self.slice_index is None) == (self.point_ras is None):
            raise ValueError("give exactly one of slice_index or point_ras")
        return self


class MaskIn(_Strict):
    """A mask sent to the server, in the format of `Mask` below."""

    extent: list[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]] | None = Field(
        min_length=3, max_length=3)
    bits: str


class SeedRequest(_Strict):
    """A slice result made from a mask the client holds (a result the server forgot, or a segment
    drawn by another tool), so that it can be refined or propagated like any other."""

    axis: Annotated[int, Field(ge=0, le=2)] = Field(description="the voxel axis the slice is normal to")
    index: Annotated[int, Field(ge=0)]
    mask: MaskIn = Field(description="the slice's mask, one voxel thick, as the server returns masks")


class Mask(BaseModel):
    """A bool labelmap [k, j, i]: the inclusive extent of its voxels and that block's bits
    (numpy packbits, C order, zlib, base64); extent None = empty."""

    extent: list[list[int]] | None
    bits: str


class SliceResponse(BaseModel):
    result_id: str
    axis: int
    index: int
    score: float
    decoder: str
    area: int
    mask: Mask


class JobResponse(BaseModel):
    job_id: str
    state: Literal["running", "done", "failed", "cancelled"]
    done: int
    total: int
    error: str | None = None
    mask: Mask | None = None
