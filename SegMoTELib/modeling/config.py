"""Configuration of a SegMoTE adapter (saved in every adapter file's header)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import InputError

TRAINING_MODES = ("adapter", "adapter+decoder", "decoder")


@dataclass(frozen=True)
class AdapterConfig:
    num_experts: int = 4          # E: expert tokens = experts per MoTE layer
    active_experts: int = 1       # top-k routing (1 = the paper's top-1 straight-through gate)
    expert_rank: int = 64         # low-rank expert map D -> rank
    expert_hidden: int = 64       # shared projections rank -> hidden -> D
    ppt_queries: int = 2          # Q learned prompt-free queries
    ppt_mlp_ratio: float = 8.0   # hidden width 2048 at D = 256, as SAM's token MLP
    router_noise_floor: float = 1e-2
    training_mode: str = "adapter"  # which parameters train: see TRAINING_MODES
    stroke_encoder: bool = False  # a dense channel for scribbles and lassos (modeling.stroke_encoder)
    presence_head: bool = False   # the walk's learned continuation decision (modeling/presence.py)

    def __post_init__(self):
        if self.num_experts < 1 or not 1 <= self.active_experts <= self.num_experts:
            raise InputError(f"config: need 1 <= active_experts ({self.active_experts}) <= num_experts ({self.num_experts})")
        if self.expert_rank < 1 or self.expert_hidden < 1 or self.ppt_queries < 1:
            raise InputError("config: expert_rank, expert_hidden and ppt_queries must be positive")
        if self.training_mode not in TRAINING_MODES:
            raise InputError(f"config: training_mode {self.training_mode!r} not in {TRAINING_MODES}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> AdapterConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"config: unknown adapter settings {sorted(unknown)}")
        return cls(**values)
