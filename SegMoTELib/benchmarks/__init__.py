"""`segmote bench`: our speed against the reference LiteMedSAM pipeline, measured in one run.

Sections: encoder latency (one slice), prompt → mask latency with a cached embedding (box, click,
3-click refinement, prompt-free), embedding throughput of a volume's slices, end-to-end 3D
propagation of one structure, curation throughput. Every figure is a median with its
interquartile range over repeats, the contenders timed in turns; inputs are generated (a phantom
CT slice, a CT-like volume with a tube), so no data files are needed.
"""

from .suite import SECTIONS, BenchConfig, run_benchmarks

__all__ = ["SECTIONS", "BenchConfig", "run_benchmarks"]
