"""Engine start/stop without a device: warm-up in the worker thread, prompt stop with a backlog."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from rtsep.engine import Engine, EngineConfig, Processor
from rtsep.engine.testmodels import BandSplit, _Wrapper
from rtsep.models.base import State

RATE, BLOCK = 48000, 256


class _Probe(_Wrapper):
    """Records the thread and torch's thread count of every step; sleeps ``delay`` s per step."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(BandSplit(sample_rate=RATE, channels=2, hop=BLOCK), "test:probe", {})
        self.delay = delay
        self.threads: set[int] = set()
        self.torch_threads: set[int] = set()

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:
        self.threads.add(threading.get_ident())
        self.torch_threads.add(torch.get_num_threads())
        if self.delay:
            time.sleep(self.delay)
        return super().step(chunk, state)


class _FakeStream:
    latency = (0.0, 0.0)
    device = (0, 0)
    active = True

    def __init__(self) -> None:
        self.started_after_steps = -1
        self.model: _Probe | None = None

    def start(self) -> None:
        assert self.model is not None
        self.started_after_steps = self.model.steps

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def _engine(model: _Probe, **cfg: Any) -> tuple[Engine, _FakeStream]:
    p = Processor(model, outputs=6)
    e = Engine(p, EngineConfig(blocksize=BLOCK, **cfg), on_event=lambda msg: None)
    stream = _FakeStream()
    stream.model = model
    e._open_stream = lambda: stream  # type: ignore[method-assign]
    e._device_latency = lambda: (0.0, BLOCK / RATE)  # type: ignore[method-assign]
    return e, stream


def test_warm_up_runs_in_the_worker_before_the_stream_starts() -> None:
    model = _Probe()
    e, stream = _engine(model, torch_threads=1, warmup_hops=8)
    with e:
        worker = e._worker
        assert worker is not None
        assert stream.started_after_steps >= 8  # the model ran before real time started
        assert model.threads == {worker.ident}  # in the worker thread, where torch's settings matter
        assert model.torch_threads == {1}
        st = e.stats()
        assert st["hops"] == 0 and st["step_ms"]["max"] == 0.0  # the warm-up is not in the statistics
        assert e.out_ring.readable == e.prefill and e.processor._fifo_n == e.processor.prime  # fresh state
    assert e._worker is None and not worker.is_alive()


def test_stop_is_prompt_with_a_backlog() -> None:
    model = _Probe()
    e, _ = _engine(model, warmup_hops=1)
    e.start()
    model.delay = 0.005  # ~ a hop's duration per step: 2 s of backlog would take 2 s
    e.in_ring.write(np.zeros((2 * RATE, 2), dtype=np.float32))
    time.sleep(0.05)
    t0 = time.monotonic()
    e.stop()
    assert time.monotonic() - t0 < 0.5  # stopped between blocks, not after the whole backlog
    assert not e.worker_stuck


def test_too_few_device_channels_name_the_device_and_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """PortAudio says only "Invalid number of channels"; the engine says which device has how many."""
    import sounddevice as sd

    from rtsep.engine.engine import check_channels

    info = {"name": "system", "max_input_channels": 2, "max_output_channels": 2}
    monkeypatch.setattr(sd, "query_devices", lambda device=None, kind=None: info)
    check_channels(None, "input", 2)
    check_channels(3, "output", 2)
    with pytest.raises(
        ValueError, match=r"input device 'system' has 2 input channel\(s\), but input channel 2"
    ):
        check_channels(None, "input", 3)
    with pytest.raises(
        ValueError, match=r"output device 'system' has 2 output channel\(s\), but 8 are needed"
    ):
        check_channels(0, "output", 8)
