"""CUDA-graph replay of the prompt → mask path (opt-in: `SegMoTEPredictor(cuda_graphs=True)`).

A prompt → mask call is about 200 small kernels (prompt encoding, decoder, upscaling); on a GPU
their launch costs more than their work. `GraphCache` captures a call once per key (what the call
computes, e.g. a `PromptCall`) and set of input shapes and dtypes, and afterwards copies the inputs
into the captured buffers and replays the graph. The arithmetic is the same kernels on the same
data, so the outputs equal the eager call's.

Should a capture fail (an operation that needs the host), that key and shape run eagerly from then
on and `failures` says why. The returned tensors are the graph's own output buffers: they are
overwritten by the next replay of that graph, so copy what you keep (the predictor moves them to
numpy at once).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch

from ..errors import first_line

WARMUP_CALLS = 2  # on a side stream before capture, as torch.cuda.graphs asks (lazy init, autotuning)


class _Captured:
    def __init__(self, graph, inputs, outputs):
        self.graph, self.inputs, self.outputs = graph, inputs, outputs


class GraphCache:
    """CUDA graphs of calls keyed by (key, input shapes); the least recently used beyond `max_graphs`
    are dropped (each holds its own memory)."""

    def __init__(self, max_graphs: int = 16):
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self.failures: dict[tuple, str] = {}  # keys whose capture failed: they run eagerly

    @property
    def failure_reasons(self) -> list[str]:
        return sorted(set(self.failures.values()))

    def __call__(self, key: Hashable, make_function: Callable[[], Callable[..., tuple]], *tensors: torch.Tensor) -> tuple:
        full_key = (key, tuple((tuple(t.shape), t.dtype, t.device, t.stride()) for t in tensors))
        if full_key in self.failures:
            return tuple(make_function()(*tensors))
        captured = self._graphs.get(full_key)
        if captured is None:
            function = make_function()
            try:
                captured = self._capture(function, tensors)
            except RuntimeError as error:  # an operation that cannot be captured (a host sync, ...)
                torch.cuda.synchronize()
                self.failures[full_key] = first_line(error)
                return tuple(function(*tensors))
            self._graphs[full_key] = captured
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(full_key)
            for buffer, value in zip(captured.inputs, tensors):
                buffer.copy_(value)
        captured.graph.replay()
        return captured.outputs

    @staticmethod
    def _capture(function, tensors) -> _Captured:
        inputs = [t.clone() for t in tensors]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                function(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = tuple(function(*inputs))
        return _Captured(graph, inputs, outputs)
