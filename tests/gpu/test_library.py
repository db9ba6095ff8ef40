"""The in-process library ``opsctl.gpu``: registered steps, per-framework cleanup, agent
requests. Frameworks are stand-in modules put into ``sys.modules``, shaped like the real
APIs the adapters call; TensorRT's stand-ins record the order they are destroyed in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import opsctl.gpu
from opsctl.gpu._frameworks._library import Cleaner
from opsctl.gpu._frameworks.tensorflow import RESTART_NOTE

MIB = 1 << 20


@pytest.fixture(autouse=True)
def fresh_cleaner(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test registers into a registry of its own, and starts with no framework loaded."""
    monkeypatch.setattr(opsctl.gpu, "_cleaner", Cleaner())
    for name in ("cupy", "torch", "tensorflow", "tensorrt", "keras", "tf_keras"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield


class Pool:
    """CuPy's MemoryPool: cached blocks are returned by free_all_blocks."""

    def __init__(self, used: int, cached: int) -> None:
        self.used, self.cached, self.calls = used, cached, 0

    def used_bytes(self) -> int:
        return self.used

    def total_bytes(self) -> int:
        return self.used + self.cached

    def free_all_blocks(self) -> None:
        self.calls += 1
        self.cached = 0


class PinnedPool:
    def __init__(self, blocks: int) -> None:
        self.blocks = blocks

    def n_free_blocks(self) -> int:
        return self.blocks

    def free_all_blocks(self) -> None:
        self.blocks = 0


def install_cupy(monkeypatch: pytest.MonkeyPatch, *, used: int, cached: int) -> Pool:
    pool, pinned = Pool(used, cached), PinnedPool(3)
    module = types.ModuleType("cupy")
    module.get_default_memory_pool = lambda: pool  # type: ignore[attr-defined]
    module.get_default_pinned_memory_pool = lambda: pinned  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", module)
    return pool


class TorchCuda:
    """torch.cuda's caching allocator over two devices."""

    def __init__(self, *, initialized: bool = True) -> None:
        self.reserved = {0: 600 * MIB, 1: 300 * MIB}
        self.allocated = {0: 100 * MIB, 1: 0}
        self.initialized = initialized
        self.calls: list[str] = []

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        return 2

    def memory_reserved(self, device: int) -> int:
        return self.reserved[device]

    def memory_allocated(self, device: int) -> int:
        return self.allocated[device]

    def empty_cache(self) -> None:
        self.calls.append("empty_cache")
        self.reserved = dict(self.allocated)

    def ipc_collect(self) -> None:
        self.calls.append("ipc_collect")


def install_torch(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> TorchCuda:
    cuda = TorchCuda(**kwargs)
    module = types.ModuleType("torch")
    module.cuda = cuda  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", module)
    return cuda


class TensorFlowMemory:
    def __init__(self) -> None:
        self.current = 900 * MIB
        self.cleared = 0

    def get_memory_info(self, device: str) -> dict[str, int]:
        assert device == "/device:GPU:0"
        return {"current": self.current, "peak": 1000 * MIB}

    def clear_session(self) -> None:
        self.cleared += 1
        self.current = 200 * MIB


def install_tensorflow(
    monkeypatch: pytest.MonkeyPatch, *, keras: bool = True, started: bool = True
) -> TensorFlowMemory:
    memory = TensorFlowMemory()
    module = types.ModuleType("tensorflow")
    module.config = types.SimpleNamespace(  # type: ignore[attr-defined]
        list_logical_devices=lambda kind: [types.SimpleNamespace(name="/device:GPU:0")],
        experimental=types.SimpleNamespace(get_memory_info=memory.get_memory_info),
    )
    monkeypatch.setitem(sys.modules, "tensorflow", module)
    eager = types.ModuleType("tensorflow.python.eager.context")
    runtime = types.SimpleNamespace(_initialized=started)
    eager.context = lambda: runtime  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorflow.python.eager.context", eager)
    if keras:
        keras_module = types.ModuleType("keras")
        keras_module.backend = types.SimpleNamespace(clear_session=memory.clear_session)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "keras", keras_module)
    return memory


def test_cupy_pools_are_freed_and_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Soft cleanup frees both CuPy pools; freed bytes are the cached blocks, and what live
    arrays hold is reported as still held.
    """
    pool = install_cupy(monkeypatch, used=64 * MIB, cached=448 * MIB)

    report = opsctl.gpu.cleanup("soft")

    entry = report.to_dict()["frameworks"]["cupy"]
    assert pool.calls == 1
    assert entry["freed_bytes"] == 448 * MIB
    assert entry["held_bytes"] == 64 * MIB
    assert "pinned memory pool: free_all_blocks (3 free blocks)" in entry["actions"]
    assert "back live CuPy arrays" in entry["notes"][0]
    assert report.freed_bytes == 448 * MIB


def test_torch_cache_is_emptied_and_ipc_collected_only_when_hard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PyTorch: empty_cache at both levels, ipc_collect at hard; freed is reserved before
    minus after over every device.
    """
    cuda = install_torch(monkeypatch)

    soft = opsctl.gpu.cleanup("soft").to_dict()["frameworks"]["torch"]
    assert cuda.calls == ["empty_cache"]
    assert soft["freed_bytes"] == 800 * MIB
    assert soft["held_bytes"] == 100 * MIB

    opsctl.gpu.cleanup("hard")
    assert cuda.calls == ["empty_cache", "empty_cache", "ipc_collect"]


def test_torch_without_cuda_context_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """When CUDA was never initialised, cleaning would create a context: nothing is called."""
    cuda = install_torch(monkeypatch, initialized=False)

    entry = opsctl.gpu.cleanup("hard").to_dict()["frameworks"]["torch"]

    assert cuda.calls == []
    assert entry["freed_bytes"] == 0
    assert entry["notes"] == ["CUDA is not initialised by PyTorch in this process"]


def test_tensorflow_soft_keeps_the_session_and_says_a_restart_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Soft cleanup does not clear the Keras session; it reports what TensorFlow holds and
    that only a restart returns it to the driver.
    """
    memory = install_tensorflow(monkeypatch)

    entry = opsctl.gpu.cleanup("soft").to_dict()["frameworks"]["tensorflow"]

    assert memory.cleared == 0
    assert entry["freed_bytes"] == 0
    assert entry["held_bytes"] == 900 * MIB
    assert RESTART_NOTE in entry["notes"]
    assert any("hard level only" in note for note in entry["notes"])


def test_tensorflow_hard_clears_the_session_but_frees_nothing_for_the_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hard cleanup clears the session; memory goes back to TensorFlow's allocator, which is
    said plainly, and freed bytes stay 0.
    """
    memory = install_tensorflow(monkeypatch)

    entry = opsctl.gpu.cleanup("hard").to_dict()["frameworks"]["tensorflow"]

    assert memory.cleared == 1
    assert entry["actions"] == ["keras.backend.clear_session", "gc.collect"]
    assert entry["freed_bytes"] == 0
    assert entry["held_bytes"] == 200 * MIB
    assert f"{700 * MIB} bytes went back to TensorFlow's own allocator" in " ".join(entry["notes"])
    assert entry["notes"][-1] == RESTART_NOTE


def test_tensorflow_without_keras_loaded_does_not_load_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorFlow loads Keras lazily: with Keras never used, there is no session to clear."""
    install_tensorflow(monkeypatch, keras=False)

    entry = opsctl.gpu.cleanup("hard").to_dict()["frameworks"]["tensorflow"]

    assert entry["actions"][0] == "no Keras session to clear (Keras is not loaded)"
    assert "keras" not in sys.modules


def test_tensorflow_runtime_not_started_is_not_started_by_cleanup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TensorFlow imported but never run has no GPU context: cleanup does not ask for its
    memory (that would start the runtime and take memory).
    """
    memory = install_tensorflow(monkeypatch, started=False)
    asked: list[str] = []
    monkeypatch.setattr(memory, "get_memory_info", lambda device: asked.append(device) or {})
    sys.modules["tensorflow"].config.experimental.get_memory_info = memory.get_memory_info  # type: ignore[attr-defined]

    entry = opsctl.gpu.cleanup("soft").to_dict()["frameworks"]["tensorflow"]

    assert asked == []
    assert entry["held_bytes"] is None


class TrtObject:
    """Stands in for a TensorRT object: notes its destruction, like TensorRT's ``__del__``."""

    def __init__(self, label: str, journal: list[str]) -> None:
        self.label, self.journal = label, journal

    def __del__(self) -> None:
        self.journal.append(self.label)


def test_tensorrt_objects_are_released_contexts_then_engines_then_runtimes() -> None:
    """Registered in any order, they are destroyed contexts first, engines next, runtimes
    last, and only at hard level.
    """
    journal: list[str] = []
    opsctl.gpu.register_tensorrt(runtime=TrtObject("runtime", journal))
    opsctl.gpu.register_tensorrt(engine=TrtObject("engine-a", journal))
    opsctl.gpu.register_tensorrt(
        context=TrtObject("context-a", journal), engine=TrtObject("engine-b", journal)
    )
    opsctl.gpu.register_tensorrt(context=TrtObject("context-b", journal))

    soft = opsctl.gpu.cleanup("soft").to_dict()["frameworks"]["tensorrt"]
    assert journal == []
    assert soft["notes"] == ["5 registered TensorRT objects are released at hard level only"]

    hard = opsctl.gpu.cleanup("hard").to_dict()["frameworks"]["tensorrt"]
    assert journal == ["context-b", "context-a", "engine-b", "engine-a", "runtime"]
    assert hard["actions"] == ["released context"] * 2 + ["released engine"] * 2 + [
        "released runtime"
    ]
    assert hard["error"] is None


def test_tensorrt_object_still_referenced_is_reported() -> None:
    """An engine the application still holds cannot be freed by dropping opsctl's reference:
    the report says so instead of claiming it.
    """
    journal: list[str] = []
    kept = TrtObject("engine", journal)
    opsctl.gpu.register_tensorrt(engine=kept)

    entry = opsctl.gpu.cleanup("hard").to_dict()["frameworks"]["tensorrt"]

    assert journal == []
    assert "still referenced by the application" in entry["notes"][0]
    del kept
    assert journal == ["engine"]


def test_application_steps_run_before_their_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step registered under a framework's name runs just before that framework's cleanup,
    and the bytes it returns are added to the framework's figure.
    """
    pool = install_cupy(monkeypatch, used=64 * MIB, cached=0)
    order: list[str] = []

    def drop_cache() -> int:
        order.append(f"app step, pool calls so far: {pool.calls}")
        pool.used, pool.cached = 0, 64 * MIB
        return 5

    opsctl.gpu.register_cleanup("CuPy", drop_cache)

    entry = opsctl.gpu.cleanup().to_dict()["frameworks"]["cupy"]

    assert order == ["app step, pool calls so far: 0"]
    assert entry["freed_bytes"] == 64 * MIB + 5
    assert entry["actions"][0].endswith("drop_cache")


def test_named_steps_levels_and_failures() -> None:
    """Named steps get their own entries; hard-only steps wait for hard; a failing step is
    reported and the others still run.
    """
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("cache server gone")

    opsctl.gpu.register_cleanup("embeddings", lambda: ran.append("embeddings") or 7 * MIB)
    opsctl.gpu.register_cleanup("embeddings", broken)
    opsctl.gpu.register_cleanup("models", lambda: ran.append("models"), level="hard")

    soft = opsctl.gpu.cleanup("soft").to_dict()
    assert ran == ["embeddings"]
    assert soft["frameworks"]["embeddings"]["freed_bytes"] == 7 * MIB
    assert "RuntimeError: cache server gone" in soft["frameworks"]["embeddings"]["error"]
    assert soft["frameworks"]["models"]["freed_bytes"] is None
    assert soft["frameworks"]["models"]["actions"] == []

    opsctl.gpu.cleanup("hard")
    assert ran == ["embeddings", "embeddings", "models"]


def test_a_failing_framework_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter that raises is reported with its error; the next framework still runs."""
    cuda = install_torch(monkeypatch)
    module = types.ModuleType("cupy")
    module.get_default_memory_pool = lambda: (_ for _ in ()).throw(OSError("driver gone"))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", module)

    report = opsctl.gpu.cleanup("soft").to_dict()

    assert report["frameworks"]["cupy"]["error"] == "OSError: driver gone"
    assert cuda.calls == ["empty_cache"]
    assert report["freed_bytes"] == 800 * MIB


def test_unknown_levels_are_refused() -> None:
    """A level other than soft or hard is a ValueError naming it."""
    with pytest.raises(ValueError, match="unknown cleanup level 'medium'"):
        opsctl.gpu.cleanup("medium")
    with pytest.raises(ValueError, match="unknown cleanup level"):
        opsctl.gpu.register_cleanup("x", lambda: None, level="extreme")  # type: ignore[arg-type]


class StandInAgent:
    """Records handlers the way opsctl.agent.Agent.on_request does."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

    def on_request(self, kind: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.handlers[kind] = handler


def test_serve_requests_answers_free_caches_within_its_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gpu.free_caches handler runs a cleanup and replies with the freed bytes; a hard
    request to a process allowing soft only is run soft, with a note.
    """
    install_cupy(monkeypatch, used=0, cached=32 * MIB)
    journal: list[str] = []
    opsctl.gpu.register_tensorrt(engine=TrtObject("engine", journal))
    agent = StandInAgent()

    opsctl.gpu.serve_requests(agent, max_level="soft")
    reply = agent.handlers["gpu.free_caches"]({"level": "hard"})

    assert reply["freed_bytes"] == 32 * MIB
    assert reply["level"] == "soft"
    assert reply["notes"][0] == "asked for hard cleanup; this process allows soft at most"
    assert journal == []
    assert set(reply["frameworks"]) == {"cupy", "tensorrt"}
    json.dumps(reply)  # the reply travels as JSON


FAKE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
"""


def test_cleanup_never_imports_a_framework(tmp_path: Path) -> None:
    """In a process that imported no framework, cleanup at hard level imports none, though
    all four are installed (their import would leave a marker file), and says they were idle.
    """
    fakes, markers = tmp_path / "fakes", tmp_path / "markers"
    markers.mkdir()
    for name in ("cupy", "tensorflow", "tensorrt", "torch", "keras"):
        (fakes / name).mkdir(parents=True)
        (fakes / name / "__init__.py").write_text(FAKE.format(marker=str(markers / name)))
    script = textwrap.dedent(
        """
        import json, sys
        import opsctl.gpu
        report = opsctl.gpu.cleanup("hard")
        names = ("cupy", "tensorflow", "tensorrt", "torch", "keras", "pynvml", "redis")
        print(json.dumps({"loaded": [n for n in names if n in sys.modules],
                          "report": report.to_dict()}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{fakes}:{Path(opsctl.gpu.__file__).parents[2]}", "PATH": "/usr/bin"},
    )

    answer = json.loads(result.stdout)
    assert answer["loaded"] == []
    assert answer["report"]["frameworks"] == {}
    assert answer["report"]["notes"] == [
        "installed but not loaded in this process, nothing to clean: "
        "TensorRT, CuPy, PyTorch, TensorFlow"
    ]
    assert list(markers.iterdir()) == []
