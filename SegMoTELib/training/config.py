"""Training configuration: a JSON file read by `segmote train CONFIG`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import InputError
from ..modeling.config import AdapterConfig

KINDS = ("box", "click", "auto", "walk", "scribble", "lasso")  # the prompt groups of a step (`prompt_mix`)


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)   # train_pool-layout folders (e.g. a curated set)
    out_dir: str = "runs/segmote"
    backbone: str = "litemedsam"
    checkpoint: str | None = None
    adapter: dict = field(default_factory=dict)     # AdapterConfig fields
    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    val_fraction: float = 0.1
    seed: int = 0
    precision: str = "auto"                          # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    device: str = "auto"
    prompt_mix: dict = field(default_factory=lambda: {"box": 0.35, "click": 0.45, "auto": 0.2})
    max_refinement_clicks: int = 2                   # correction rounds after the first click: 1..this
    refinement_probability: float = 0.5              # share of click targets that get correction rounds
    no_click_probability: float = 0.0                # a correction round feeds back the logits only
    box_refinement_probability: float = 0.0          # share of box targets that get correction clicks too
    box_jitter: float = 0.01
    # scribble and lasso groups (prompt_mix "scribble", "lasso"; training/stroke_rounds.py)
    max_stroke_rounds: int = 2                       # strokes per scribble/lasso group: 1..this
    scribble_first_probability: float = 0.5          # the first prompt is the scribble (else a click or box)
    negative_lasso_probability: float = 0.3          # lasso groups: a click, then a negative loop on its leak
    stroke_vertices: int = 6                         # vertices of a simulated scribble
    walk_data: list[str] = field(default_factory=list)  # folders of WalkStack .npz (scripts/pack_for_gpu.py walks)
    walk_max_gap: int = 2                            # neighbour slices up to this far prompt a walk target
    walk_box_margin: float = 0.04                    # walk box grown by up to this fraction of the side
    walk_logits_probability: float = 0.5             # walk prompt also has the neighbour's logits
    walk_point_probability: float = 0.5              # walk prompt also has a point inside the neighbour's mask
    walk_end_weight: float = 1.0                     # sampling weight of walk targets where the structure ended
    presence_weight: float = 0.0                     # BCE weight of the presence head on walk steps (needs
                                                     # adapter.presence_head; 0: no presence training)
    init_adapter: str | None = None                  # fine-tune from this adapter file (its weights; modules it
                                                     # lacks, e.g. a new stroke encoder or presence head, start fresh)
    augment_views: int = 1                           # embedded views per image: the original + augmented ones
    score_temperature: float = 0.85                  # sampling weight score^(1/τ), as curation's sampler
    router_noise: bool = True                        # MoTE router noise in training (off: exact reproducibility)
    bank_dtype: str = "auto"                         # embedding storage: auto (fp16 on GPU) | fp32 | fp16
    loss_weights: dict = field(default_factory=lambda: {"focal": 20.0, "dice": 1.0, "iou": 1.0, "balance": 0.01})
    checkpoint_every: int = 500
    log_every: int = 10
    max_images: int | None = None                    # cap for quick runs / CI
    time_budget_s: float | None = None               # stop (and save) after this much training time

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise InputError("config: steps and batch_size must be positive")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise InputError(f"config: precision {self.precision!r} not in auto, fp32, bf16, fp16")
        unknown = set(self.prompt_mix) - set(KINDS)
        if unknown or not self.prompt_mix or min(self.prompt_mix.values()) < 0 or sum(self.prompt_mix.values()) <= 0:
            raise InputError(f"config: prompt_mix must weight {', '.join(KINDS)} with non-negative numbers, "
                             f"got {self.prompt_mix}")
        if self.max_stroke_rounds < 1 or self.stroke_vertices < 2:
            raise InputError("config: max_stroke_rounds must be >= 1 and stroke_vertices >= 2")
        if self.bank_dtype not in ("auto", "fp32", "fp16"):
            raise InputError(f"config: bank_dtype {self.bank_dtype!r} not in auto, fp32, fp16")
        if self.augment_views < 1 or self.max_refinement_clicks < 0 or self.walk_max_gap < 1:
            raise InputError("config: augment_views and walk_max_gap must be >= 1, max_refinement_clicks >= 0")
        if self.walk_end_weight <= 0 or self.presence_weight < 0:
            raise InputError("config: walk_end_weight must be positive and presence_weight >= 0")
        if self.presence_weight > 0 and not self.adapter.get("presence_head", False):
            raise InputError("config: presence_weight > 0 needs \"presence_head\": true in adapter")
        for name in ("refinement_probability", "no_click_probability", "box_refinement_probability",
                     "scribble_first_probability", "negative_lasso_probability",
                     "walk_logits_probability", "walk_point_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"config: {name} must be a probability in 0..1, got {getattr(self, name)}")
        AdapterConfig.from_dict(self.adapter)  # refuses unknown or invalid adapter settings now

    @property
    def adapter_config(self) -> AdapterConfig:
        return AdapterConfig.from_dict(self.adapter)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"config: file {path} does not exist") from None
        except json.JSONDecodeError as error:
            raise InputError(f"config: {path} is not valid JSON: {error}") from None
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"config: {path} has unknown settings {sorted(unknown)}")
        return cls(**values)
