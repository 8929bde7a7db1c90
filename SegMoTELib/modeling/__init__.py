"""The SegMoTE model: expert tokens with MoTE routing, HQ-style fused features and PPT."""

from .config import AdapterConfig
from .decoder import DecoderOutput, SegMoTEAdapter, SegMoTEDecoder
from .model import SegMoTEModel

__all__ = ["AdapterConfig", "DecoderOutput", "SegMoTEAdapter", "SegMoTEDecoder", "SegMoTEModel"]
