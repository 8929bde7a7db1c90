"""The request and response bodies of the engine service (pydantic; they make the OpenAPI schema).

Coordinates are RAS millimetres in the volume's world by default (or voxel indices, see
`PromptFields`). A malformed
body is refused by FastAPI with 422 before any engine code runs; the app turns pydantic's error
list into one line naming the field (see `app.py`). NaN and infinities are refused in every
number (JSON has neither; Python's parser takes them), and so are paths no file system can hold.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import InputError
from ..slice_prompt import MAX_POINTS, MAX_STROKE_VERTICES, MAX_STROKES, WIRE_FIELDS, SlicePrompt
from .codec import VOXEL_DTYPES

Finite = Annotated[float, Field(allow_inf_nan=False)]
Vec3 = tuple[Finite, Finite, Finite]
VoxelIndex = Annotated[int, Field(ge=0)]
IJK = tuple[VoxelIndex, VoxelIndex, VoxelIndex]
Orientation = Literal["auto", "axial", "coronal", "sagittal"] | Vec3
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


class Mask(BaseModel):
    """A bool labelmap [k, j, i]: the inclusive extent of its voxels and that block's bits
    (numpy packbits, C order, zlib, base64); extent None = empty."""

    extent: list[list[int]] | None
    bits: str


Coordinate = list[Finite]


class StrokeModel(_Strict):
    vertices: list[Coordinate] = Field(min_length=1, max_length=MAX_STROKE_VERTICES,
                                       description="a scribble's polyline (1+ vertices) or a lasso's polygon (3+)")
    positive: bool = True


class PromptFields(_Strict):
    """The wire form of `SegMoTELib.slice_prompt.SlicePrompt` (its `to_wire()`; a test keeps the
    two in step). Coordinates: RAS mm ("ras"), voxel indices i, j, k ("ijk"), or pixels x, y of the
    slice named by `slice_index` ("pixel")."""

    frame: Literal["ras", "ijk", "pixel"] = "ras"
    points: list[Coordinate] = Field([], max_length=MAX_POINTS, description="clicks")
    labels: list[Literal[0, 1]] = Field([], description="1 positive, 0 negative, one per point; default all positive")
    box: list[Coordinate] | None = Field(None, description="2 opposite corners (ras: or the 4 or 8 corners of a "
                                                           "rotated box)")
    scribbles: list[StrokeModel] = Field([], max_length=MAX_STROKES)
    lassos: list[StrokeModel] = Field([], max_length=MAX_STROKES)

    def slice_prompt(self, seed_mask=None, mask_input=None) -> SlicePrompt:
        return SlicePrompt.from_wire(self.model_dump(include=set(WIRE_FIELDS)), mask_input=mask_input,
                                     seed_mask=seed_mask)


class SeedMask(_Strict):
    """A binary slice mask (H, W) in the slice's display orientation, encoded as `Mask` is."""

    shape: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]
    extent: list[list[int]] | None
    bits: str


class SliceRequest(PromptFields):
    orientation: Orientation = "axial"
    slice_index: Annotated[int, Field(ge=0)] | None = None
    previous_result: str | None = Field(None, description="refine: the result whose low-res logits go along")
    seed_mask: SeedMask | None = Field(None, description="refine a mask made elsewhere: the slice's current mask "
                                                         "goes along as the dense prompt (not with previous_result)")

    @model_validator(mode="after")
    def _consistent(self):
        if not (self.points or self.box or self.scribbles or self.lassos or self.previous_result or self.seed_mask):
            raise ValueError("give points, box, scribbles, lassos, previous_result or seed_mask")
        if self.labels and len(self.labels) != len(self.points):
            raise ValueError("labels: give one label per point of points")
        if self.previous_result is not None and self.seed_mask is not None:
            raise ValueError("give previous_result or seed_mask, not both")
        try:  # the value's own checks (vertices per frame, box corners, counts), named by field
            self.slice_prompt()
        except InputError as error:
            raise ValueError(str(error)) from None
        return self


class AutoPrompt(_Strict):
    orientation: Orientation = "axial"
    slice_index: Annotated[int, Field(ge=0)] | None = Field(None, description="default: the middle slice")


class Rules(_Strict):
    """How the walk prompts each slice and when it stops (SegMoTELib.walk_rules.PropagationRules, field
    for field). Fields left out take the engine's defaults: the prompt the adapter declares, the learned
    decision when the adapter has a presence head."""

    use_box: bool | None = None
    box_margin: Annotated[float, Field(ge=0, lt=0.5)] | None = None
    use_logits: bool | None = None
    use_point: bool | None = None
    refine: bool | None = None
    decision: Literal["auto", "learned", "rules"] | None = None
    presence_threshold: Annotated[float, Field(gt=0, lt=1)] | None = None
    patience: Annotated[int, Field(ge=0, le=3)] | None = None
    min_score: Annotated[float, Field(ge=0, le=1)] | None = None
    min_area_ratio: Annotated[float, Field(ge=0, lt=1)] | None = None
    max_area_growth: Annotated[float, Field(gt=1, allow_inf_nan=False)] | None = None
    max_centroid_shift: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    max_intensity_shift: Annotated[float, Field(gt=0, le=255)] | None = None
    grey_reference: Literal["seed", "previous"] | None = None
    trust_box: bool | None = None
    sweep_box: bool | None = None
    off: list[Literal["max_area_growth", "max_centroid_shift", "max_intensity_shift"]] = Field(
        default_factory=list, description="hand rules to turn off (their value None)")

    def given(self) -> dict:
        """The fields the client set, as PropagationRules takes them."""
        values = {k: v for k, v in self.model_dump(exclude={"off"}).items() if v is not None}
        return {**values, **{name: None for name in self.off}}


class PropagateRequest(_Strict):
    seed_result: str = Field(description="the slice result to extend through the volume")
    slice_range: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = None
    rules: Rules = Rules()


class Box3DRequest(_Strict):
    corners_ras: list[Vec3] | None = Field(None, min_length=2, max_length=8,
                                           description="2 opposite corners or 8 ROI corners")
    corners_ijk: list[IJK] | None = Field(None, min_length=2, max_length=2,
                                          description="2 opposite voxels i, j, k (inclusive), instead of corners_ras")
    orientation: Orientation = "auto"
    rules: Rules = Rules()

    @model_validator(mode="after")
    def _corner_count(self):
        if (self.corners_ras is None) == (self.corners_ijk is None):
            raise ValueError("give exactly one of corners_ras or corners_ijk")
        if self.corners_ras is not None and len(self.corners_ras) not in (2, 8):
            raise ValueError(f"corners_ras: expected 2 or 8 corners, got {len(self.corners_ras)}")
        return self


class CorrectRequest(PromptFields):
    """Correct one slice of a segment with the prompt value (clicks, a box, scribbles, lassos) and
    carry the fix to its neighbours (SegMoTELib.corrections)."""

    segment: "Mask" = Field(description="the segment as it is now (a labelmap of the volume's shape)")
    orientation: Orientation = "auto"
    slice_index: Annotated[int, Field(ge=0)] | None = None
    agreement: Annotated[float, Field(gt=0, le=1)] = Field(0.9, description="Dice with the old mask that ends the "
                                                          "re-walk on a slice")
    rules: Rules = Rules()

    @model_validator(mode="after")
    def _prompt(self):
        if not (self.points or self.box or self.scribbles or self.lassos):
            raise ValueError("give the correcting click(s), a box, scribbles or lassos")
        if self.labels and len(self.labels) != len(self.points):
            raise ValueError("labels: give one label per point of points")
        try:
            self.slice_prompt()
        except InputError as error:
            raise ValueError(str(error)) from None
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


class SliceResponse(BaseModel):
    result_id: str
    axis: int
    index: int
    score: float
    decoder: str
    area: int
    mask: Mask


class WalkStopModel(BaseModel):
    direction: int
    last_index: int
    reason: str
    detail: str = ""


class JobResponse(BaseModel):
    job_id: str
    state: Literal["running", "done", "failed", "cancelled"]
    done: int
    total: int
    error: str | None = None
    mask: Mask | None = None
    stops: list[WalkStopModel] = Field(default_factory=list, description="where and why each direction of the "
                                       "walk ended (when done)")
    changed: list[int] | None = Field(None, description="corrections: the slice indices re-segmented")
    corrected_slice: list[int] | None = Field(None, description="corrections: [axis, index] of the corrected slice")


CorrectRequest.model_rebuild()
