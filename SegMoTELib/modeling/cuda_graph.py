"""CUDA-graph replay of a decoder call (opt-in: `SegMoTEPredictor(cuda_graphs=True)`).

A prompt → mask decode is about 150 small kernels; on a GPU their launch costs more than their
work. `GraphedCall(function)` captures `function(*tensors)` once per distinct set of input shapes
and dtypes and afterwards copies the inputs into the captured buffers and replays the graph. The
arithmetic is the same kernels on the same data, so the outputs equal the eager call's.

Should a capture fail (an operation that needs the host), that shape runs eagerly from then on and
`failures` says why. The returned tensors are the graph's own output buffers: they are overwritten by the next call
with the same shapes, so copy what you keep (the predictor moves them to numpy at once).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch

WARMUP_CALLS = 2  # on a side stream before capture, as torch.cuda.graphs asks (lazy init, autotuning)


class _Captured:
    def __init__(self, graph, inputs, outputs):
        self.graph, self.inputs, self.outputs = graph, inputs, outputs


class GraphedCall:
    """Replays `function` (tensors in, a tuple of tensors out) from CUDA graphs keyed by input shapes."""

    def __init__(self, function: Callable[..., tuple], max_graphs: int = 16):
        self.function = function
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self.failures: dict[tuple, str] = {}  # input shapes whose capture failed: run eagerly

    @staticmethod
    def _key(tensors) -> tuple:
        return tuple((tuple(t.shape), t.dtype, t.device) for t in tensors)

    def __call__(self, *tensors: torch.Tensor) -> tuple:
        key = self._key(tensors)
        if key in self.failures:
            return tuple(self.function(*tensors))
        captured = self._graphs.get(key)
        if captured is None:
            try:
                captured = self._capture(tensors)
            except RuntimeError as error:  # an operation that cannot be captured (a host sync, ...)
                torch.cuda.synchronize()
                self.failures[key] = str(error).splitlines()[0][:200]
                return tuple(self.function(*tensors))
            self._graphs[key] = captured
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
            for buffer, value in zip(captured.inputs, tensors):
                buffer.copy_(value)
        captured.graph.replay()
        return captured.outputs

    def _capture(self, tensors) -> _Captured:
        inputs = [t.clone() for t in tensors]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self.function(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = tuple(self.function(*inputs))
        return _Captured(graph, inputs, outputs)
