"""The pure processing chain: block in -> routed, limited block out. No threads, no devices.

::

    input (frames, device channels)
      -> channel selection / mono-stereo adaptation -> (frames, model channels)
      -> streaming resampler (device rate -> model rate; skipped when equal)
      -> re-blocking to whole hops
      -> per hop: model.step on the model's torch device, dry delay line (model.latency),
                  NaN/Inf or exception -> dry fallback (counted),
                  mixer + router (one smoothed gain matrix, parameter changes at hop boundaries),
                  resampler back to the device rate, safety limiter
      -> output FIFO (primed with silence) -> exactly ``frames`` frames out

Everything after the re-blocker runs per *hop*, never per caller block, so the output does not depend
on how the input was split (bit-identical for any block sizes; see the tests). Latency, in device
samples::

    latency = prime + round((resampler_in.latency + model.latency) * device_rate / model_rate)
              + resampler_out.latency

where ``prime`` (the FIFO's initial silence) is ``hop`` at equal rates (the re-blocking delay) and
``ceil(hop * device_rate / model_rate) + 2`` otherwise (enough that the FIFO never runs dry for any
split). An impulse at input index ``t`` appears at output index ``t + latency`` (to the sample at
equal rates; within one sample when resampling).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rtsep.engine.mixer import Limiter, Mixer, Routing
from rtsep.models.base import StreamingSeparator
from rtsep.models.graph import GraphStep

__all__ = ["Processor", "ProcessorStats"]

_STEP_HISTORY = 8192


class ProcessorStats:
    """Counters and step times, written by the processing thread, readable from any thread.

    Attributes:
        hops: model steps run.
        nonfinite_hops: hops whose model output had NaN/Inf (replaced by the dry fallback).
        model_errors: hops where ``model.step`` raised (replaced by the dry fallback).
        first_error: text of the first exception, or ``""``.
        fifo_underruns: output frames the FIFO could not supply (0 unless the prime is wrong).
        step_times: seconds per step, a ring of the last 8192 (``step_count`` written so far).
    """

    def __init__(self) -> None:
        self.hops = 0
        self.nonfinite_hops = 0
        self.model_errors = 0
        self.first_error = ""
        self.fifo_underruns = 0
        self.step_times = np.zeros(_STEP_HISTORY, dtype=np.float64)
        self.step_count = 0
        self.stem_peaks = np.zeros(0, dtype=np.float64)

    def take_stem_peaks(self) -> np.ndarray:
        """Peak (linear) of each stem since the last call, then reset (for level meters)."""
        v = self.stem_peaks.copy()
        self.stem_peaks[:] = 0.0
        return v

    def step_percentiles(self) -> dict[str, float]:
        """``{"p50", "p99", "max"}`` step time in ms over the recent history (0 when empty)."""
        n = min(self.step_count, _STEP_HISTORY)
        if n == 0:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}
        t = np.array(self.step_times[:n]) * 1e3
        return {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99)), "max": float(t.max())}


class Processor:
    """Device-independent separation chain (see the module docstring).

    Args:
        model: a :class:`~rtsep.models.base.StreamingSeparator` (put in eval mode here).
        samplerate: device rate in Hz; default: the model's rate.
        input_channels: indices of the device input channels to use; default ``0..model.channels-1``.
            One channel feeds a stereo model on both channels; two feed a mono model as their mean.
        outputs: number of output channels; default ``len(sources) * model.channels``.
        routings: extra named routings ``{name: {source: [output channels]}}`` (see
            :mod:`rtsep.engine.mixer`); built-ins ``"mix"`` and ``"split"``.
        routing: initial routing name.
        smooth_ms: ramp time of every gain/routing change.
        torch_device: where ``model.step`` runs (``"cpu"``, ``"cuda"``).
        cuda_graph: on CUDA, run each hop as one CUDA graph launch with pinned host buffers
            (:class:`~rtsep.models.graph.GraphStep`): a streaming step is hundreds of small kernels, and
            launched one by one they cost 4 to 10 times the graph's time (docs/bench.md, GPU).
        limiter_db: safety limiter ceiling in dBFS.
        resample_quality: soxr quality when the device rate differs from the model rate.

    Raises:
        ValueError: on an impossible channel configuration or routing.
    """

    def __init__(
        self,
        model: StreamingSeparator,
        *,
        samplerate: int | None = None,
        input_channels: Sequence[int] | None = None,
        outputs: int | None = None,
        routings: Mapping[str, Routing] | None = None,
        routing: str | None = None,
        smooth_ms: float = 20.0,
        torch_device: str | torch.device = "cpu",
        limiter_db: float = -1.0,
        resample_quality: str = "HQ",
        cuda_graph: bool = True,
    ) -> None:
        self.model = model.eval().to(torch_device)
        self.torch_device = torch.device(torch_device)
        self._graph: GraphStep | None = None
        if cuda_graph and self.torch_device.type == "cuda":
            self._graph = GraphStep(self.model, batch=1, use_graph=True)
        self.model_rate = int(model.sample_rate)
        self.samplerate = int(samplerate or self.model_rate)
        self.channels = int(model.channels)
        self.hop = int(model.hop)
        self.stems: tuple[str, ...] = tuple(model.sources)
        sel = list(range(self.channels)) if input_channels is None else [int(c) for c in input_channels]
        if not sel or min(sel) < 0:
            raise ValueError(f"Processor: input_channels must be non-negative indices, got {sel}")
        if len(sel) not in (1, 2) or (len(sel) != self.channels and self.channels not in (1, 2)):
            raise ValueError(
                f"Processor: {len(sel)} input channels {sel} cannot feed a {self.channels}-channel model; "
                "give 1 or 2 channels (or as many as the model has)"
            )
        self.input_channels = tuple(sel)
        self.device_input_channels = max(sel) + 1  # minimal device channel count to open
        self.outputs = int(outputs or len(self.stems) * self.channels)
        smooth = max(1, round(smooth_ms * 1e-3 * self.model_rate))
        self.mixer = Mixer(
            self.stems, self.channels, self.outputs, routings=routings, routing=routing, smooth=smooth
        )
        self.limiter = Limiter(self.samplerate, threshold_db=limiter_db)
        self.resampling = self.samplerate != self.model_rate
        if self.resampling:
            from rtsep.dsp import StreamingResampler

            self._rs_in: Any = StreamingResampler(
                self.samplerate, self.model_rate, self.channels, resample_quality
            )
            self._rs_out: Any = StreamingResampler(
                self.model_rate, self.samplerate, self.outputs, resample_quality
            )
            ratio = self.samplerate / self.model_rate
            self.prime = math.ceil(self.hop * ratio) + 2
            self.latency = (
                self.prime + round((self._rs_in.latency + self.model.latency) * ratio) + self._rs_out.latency
            )
        else:
            self._rs_in = self._rs_out = None
            self.prime = self.hop
            self.latency = self.hop + int(self.model.latency)
        self.stats = ProcessorStats()
        self.stats.stem_peaks = np.zeros(len(self.stems), dtype=np.float64)
        n_rows = self.mixer.rows
        self._rows = np.zeros((self.hop, n_rows), dtype=np.float32)
        self._mixed = np.zeros((self.hop, self.outputs), dtype=np.float32)
        self._acc = np.zeros((self.hop, self.channels), dtype=np.float32)
        self._dry = np.zeros((int(self.model.latency) + self.hop, self.channels), dtype=np.float32)
        self._chunk = torch.zeros((1, self.channels, self.hop), dtype=torch.float32, device=self.torch_device)
        self._fifo = np.zeros((max(4 * self.prime, 4096), self.outputs), dtype=np.float32)
        self.reset()

    # ------------------------------------------------------------------ control protocol (delegated)
    def set_gain_db(self, stem: str, db: float) -> None:
        """Gain of one stem in dB."""
        self.mixer.set_gain_db(stem, db)

    def set_mute(self, stem: str, on: bool) -> None:
        """Mute one stem."""
        self.mixer.set_mute(stem, on)

    def set_solo(self, stem: str, on: bool) -> None:
        """Solo one stem."""
        self.mixer.set_solo(stem, on)

    def set_dry_db(self, db: float) -> None:
        """Dry (latency-aligned input) level in dB; ``-inf`` off."""
        self.mixer.set_dry_db(db)

    def set_master_db(self, db: float) -> None:
        """Master gain in dB."""
        self.mixer.set_master_db(db)

    def set_routing(self, name: str) -> None:
        """Switch to a named routing preset."""
        self.mixer.set_routing(name)

    def snapshot(self) -> dict[str, object]:
        """Current mixer settings (see :meth:`Mixer.snapshot`)."""
        return self.mixer.snapshot()

    @property
    def routings(self) -> tuple[str, ...]:
        return self.mixer.routings

    # ------------------------------------------------------------------ processing
    def reset(self) -> None:
        """Fresh streaming state (model state, resamplers, FIFO primed with ``prime`` zeros)."""
        self._reset_model()
        self._acc_n = 0
        self._dry[:] = 0.0
        self._fifo[: self.prime] = 0.0
        self._fifo_n = self.prime
        self.limiter.reset()
        if self._rs_in is not None:
            self._rs_in.reset()
            self._rs_out.reset()

    def _reset_model(self) -> None:
        if self._graph is not None:
            self._graph.reset()  # the graph reads and writes its own state buffers, in place
        else:
            self._state = self.model.init_state(1, self.torch_device)

    def _step(self, x: np.ndarray) -> np.ndarray:
        """One hop through the model: ``(hop, channels)`` in, ``(sources, channels, hop)`` out."""
        if self._graph is not None:
            self._graph.host_in[0].copy_(torch.from_numpy(x.T))
            return self._graph()[0].numpy()  # the pinned output buffer, valid until the next hop
        self._chunk.copy_(torch.from_numpy(x.T.copy()).unsqueeze(0))
        with torch.inference_mode():
            y, self._state = self.model.step(self._chunk, self._state)
        return y[0].detach().to("cpu", torch.float32).numpy()

    def reset_stats(self) -> None:
        """Fresh counters and step times (after a warm-up), limiter counters included."""
        stats = ProcessorStats()
        stats.stem_peaks = np.zeros(len(self.stems), dtype=np.float64)
        self.stats = stats
        self.limiter.state[1] = 0.0

    def fallback_matrix(self) -> np.ndarray:
        """``(len(input_channels), outputs)`` float32: device input (selected) -> fallback output.

        Multiply the selected device input, delayed by :attr:`latency`, by this to get what the
        output falls back to when no separated audio is available.
        """
        fb = self.mixer.fallback  # (channels, outputs)
        k = len(self.input_channels)
        if k == self.channels:
            return fb.copy()
        if k == 1:  # mono input duplicated to the model's channels
            return fb.sum(axis=0, keepdims=True)
        return np.repeat(fb / 2.0, 2, axis=0)  # stereo input averaged for a mono model

    def _select(self, block: np.ndarray) -> np.ndarray:
        if block.ndim != 2 or block.shape[1] < self.device_input_channels:
            raise ValueError(
                f"Processor.process: expected (frames, >= {self.device_input_channels}) input, "
                f"got {block.shape}"
            )
        sel = self.input_channels
        if len(sel) == self.channels:
            x = block[:, list(sel)]
        elif len(sel) == 1:
            x = np.repeat(block[:, sel[0] : sel[0] + 1], self.channels, axis=1)
        else:
            x = 0.5 * (block[:, sel[0] : sel[0] + 1] + block[:, sel[1] : sel[1] + 1])
        return np.ascontiguousarray(x, dtype=np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process any number of frames.

        Args:
            block: ``(frames, channels)`` float32 with at least ``max(input_channels) + 1`` channels.

        Returns:
            ``(frames, outputs)`` float32, delayed by :attr:`latency`, every sample within [-1, 1].
        """
        n = block.shape[0]
        x = self._select(block)
        if self._rs_in is not None:
            x = self._rs_in.process(x)
        pos = 0
        m = x.shape[0]
        while pos < m:
            take = min(self.hop - self._acc_n, m - pos)
            self._acc[self._acc_n : self._acc_n + take] = x[pos : pos + take]
            self._acc_n += take
            pos += take
            if self._acc_n == self.hop:
                self._acc_n = 0
                self._run_hop()
        out = np.zeros((n, self.outputs), dtype=np.float32)
        take = min(n, self._fifo_n)
        out[:take] = self._fifo[:take]
        if take < n:
            self.stats.fifo_underruns += n - take
        rest = self._fifo_n - take
        self._fifo[:rest] = self._fifo[take : self._fifo_n]
        self._fifo_n = rest
        return out

    def _run_hop(self) -> None:
        hop, c, lat = self.hop, self.channels, int(self.model.latency)
        x = self._acc
        # dry delay line: dry[t] = x[t - model.latency]
        self._dry[lat:] = x
        dry = self._dry[:hop].copy()
        self._dry[:lat] = self._dry[hop:]
        t0 = time.perf_counter()
        stems: np.ndarray | None = None
        try:
            stems = self._step(x)  # (sources, channels, hop)
        except Exception as exc:
            self.stats.model_errors += 1
            if not self.stats.first_error:
                self.stats.first_error = f"{type(exc).__name__}: {exc}"
            self._reset_model()
        dt = time.perf_counter() - t0
        st = self.stats
        st.step_times[st.step_count % _STEP_HISTORY] = dt
        st.step_count += 1
        st.hops += 1
        rows = self._rows
        n_stems = len(self.stems)
        if stems is not None and not np.isfinite(stems).all():
            st.nonfinite_hops += 1
            stems = None
        if stems is None:  # fallback: every stem carries dry / n_stems -> output = fallback @ dry
            share = dry / n_stems
            for s in range(n_stems):
                rows[:, s * c : (s + 1) * c] = share
        else:
            rows[:, : n_stems * c] = stems.reshape(n_stems * c, hop).T
            peaks = np.abs(stems).reshape(n_stems, -1).max(axis=1)
            np.maximum(st.stem_peaks, peaks, out=st.stem_peaks)
        rows[:, n_stems * c :] = dry
        self.mixer.begin_hop()
        self.mixer.process(rows, self._mixed)
        out = self._mixed
        out = self._rs_out.process(out) if self._rs_out is not None else out.copy()
        self.limiter.process(out)
        self._fifo_push(out)

    def _fifo_push(self, y: np.ndarray) -> None:
        k = y.shape[0]
        if self._fifo_n + k > self._fifo.shape[0]:
            grown = np.zeros((2 * (self._fifo_n + k), self.outputs), dtype=np.float32)
            grown[: self._fifo_n] = self._fifo[: self._fifo_n]
            self._fifo = grown
        self._fifo[self._fifo_n : self._fifo_n + k] = y
        self._fifo_n += k

    def describe(self) -> dict[str, Any]:
        """Configuration summary (rates, hop, latency in samples and ms, stems, routing)."""
        return {
            "arch": getattr(self.model, "arch", type(self.model).__name__),
            "samplerate": self.samplerate,
            "model_rate": self.model_rate,
            "hop": self.hop,
            "model_latency": int(self.model.latency),
            "latency": self.latency,
            "latency_ms": 1000.0 * self.latency / self.samplerate,
            "stems": list(self.stems),
            "outputs": self.outputs,
            "routing": self.mixer.snapshot()["routing"],
        }
