"""Live engine: a sounddevice duplex stream, two lock-free rings and a worker thread around a Processor.

::

    device in -> callback: input ring + dry delay line ...... worker: Processor.process ...
    device out <- callback: output ring (crossfaded with the latency-aligned dry signal when late)

The callback copies and nothing else; it is one Numba kernel (:func:`callback_kernel`) that runs
either from a Python sounddevice callback (``callback="python"``) or as a Numba ``cfunc`` handed to
PortAudio directly (``callback="cfunc"``, the default), so it never needs the GIL, as python-rtmixer
does with C.

Timeline. The output ring is prefilled with ``prefill = blocksize + margin * hop`` frames of silence
(device rate), and the Processor's output at index ``t`` is its input at ``t - processor.latency``;
so output frame ``n`` of the stream carries input frame ``n - latency`` with
``latency = prefill + processor.latency`` (plus what the device/driver adds, ``stream.latency``).

Degradation. The dry delay line holds the selected input; ``fallback @ input[n - latency]`` is what
the output falls back to. At each callback, when the output ring holds less than
``blocksize + xfade`` frames the worker is late: the output crossfades to the dry signal over
``xfade`` samples (the ring still holds enough wet frames for the whole fade), stays dry, skips the
wet frames whose time has passed when the worker catches up, and crossfades back once the ring holds
``blocksize + 2 * xfade`` frames again (the steady-state level is ``prefill``, so ``xfade`` is at most
``(prefill - blocksize) / 2``; with ``margin=0`` there is no room for a crossfade and switches
are hard). Every event is counted. A hard switch (wet missing in the
middle of a block) happens only when the worker stalls with less than that reserve; it is counted
separately. A worker that owes more than ``config.catch_up`` seconds of output does not work that
backlog off (at a real-time factor near 1 that keeps the output dry for many times the stall): it
drops the stale input, resets the processor and resumes at the live edge (:meth:`Engine.catch_up`),
writing placeholder frames that the callback skips, so the timeline and the latency do not move.

Worker. It warms up in its own thread before the stream starts (torch's intra-op thread count is per
thread: a fresh thread gets OpenMP's default team, whose spinning threads made every step 100x slower
on a loaded machine and starved JACK; the first torch calls, oneDNN primitives and the Numba kernels
are paid there too), then the rings, the delay line and the Processor are reset. Running, it polls
the controller (MIDI) before each block, so a change applies to the oldest unprocessed input, and
works a backlog off one block at a time, so output reaches the ring as soon as each block is done
and :meth:`Engine.stop` is honoured between blocks. A worker still inside torch when the interpreter
exits aborts the process ("terminate called without an active exception"), so ``stop`` joins it.

Statistics (:meth:`Engine.stats`) read plain integers and numpy arrays that only one side writes; no
lock is taken anywhere.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

from rtsep.dsp import RingBuffer, ring_read, ring_readable, ring_write
from rtsep.engine.mixer import soft_clip
from rtsep.engine.processor import Processor

__all__ = [
    "CALLBACK_KINDS",
    "Engine",
    "EngineConfig",
    "Poller",
    "callback_kernel",
    "find_device",
    "list_devices",
]

CALLBACK_KINDS = ("cfunc", "python")

# int64 state (ist) slots, written by the callback only
I_FRAMES, I_DELAY, I_MODE, I_LATE, I_DRY_FRAMES, I_DEBT, I_XFADE, I_CALLBACKS = 0, 1, 2, 3, 4, 5, 6, 7
I_IN_UNDERFLOW, I_IN_OVERFLOW, I_OUT_UNDERFLOW, I_OUT_OVERFLOW, I_PRIMING = 8, 9, 10, 11, 12
I_HARD, I_RECOVER, I_MISSING, I_MAX_BLOCK, I_RECOVER_LEVEL = 13, 14, 15, 16, 17
I_LAST_LATE_AT, I_LAST_RECOVER_AT, I_FLAGGED, I_MIN_LEVEL = 18, 19, 20, 21
# the first DRY_SPANS dry stretches, [late at, back to wet at) in callback frames (NEVER: still dry)
I_SPANS, DRY_SPANS = 24, 16
IST_SIZE = I_SPANS + 2 * DRY_SPANS
NEVER = np.iinfo(np.int64).max  # I_MIN_LEVEL before the first wet callback
# float64 state (fst): wet weight, then per-output peak (decaying) for meters
F_WET, F_PEAK0 = 0, 1

PA_FLAGS = (
    1,
    2,
    4,
    8,
    16,
)  # paInputUnderflow, paInputOverflow, paOutputUnderflow, paOutputOverflow, paPrimingOutput


class Poller(Protocol):
    """What MIDI plugs in through: ``poll(mixer)``, called by the worker before each block it processes
    (and about every quarter block while it waits for input)."""

    def poll(self, mixer: Any) -> None: ...


@njit(nogil=True, cache=True)
def callback_kernel(
    indata: np.ndarray,
    outdata: np.ndarray,
    flags: int,
    in_buf: np.ndarray,
    in_idx: np.ndarray,
    out_buf: np.ndarray,
    out_idx: np.ndarray,
    dline: np.ndarray,
    fb: np.ndarray,
    scratch: np.ndarray,
    ist: np.ndarray,
    fst: np.ndarray,
) -> None:
    """The whole audio callback: copy in, copy out, crossfade to dry when the worker is late.

    Args:
        indata: ``(frames, in_channels)`` float32 device input.
        outdata: ``(frames, outputs)`` float32 device output, written.
        flags: PortAudio status flags of this callback.
        in_buf, in_idx: input ring (device input channels).
        out_buf, out_idx: output ring (outputs).
        dline: ``(capacity, in_channels)`` float32 dry delay line, capacity a power of two.
        fb: ``(in_channels, outputs)`` float32 fallback matrix.
        scratch: ``(max frames, outputs)`` float32 work buffer.
        ist: int64 state (see the ``I_*`` slots).
        fst: float64 state (wet weight, output peaks).
    """
    n = indata.shape[0]
    n_in = indata.shape[1]
    n_out = outdata.shape[1]
    ist[I_CALLBACKS] += 1
    if n > ist[I_MAX_BLOCK]:
        ist[I_MAX_BLOCK] = n
    if flags & 15:  # an xrun reported by the host (JACK: any xrun of the graph sets both flags)
        ist[I_FLAGGED] += 1
    for k in range(5):
        if flags & (1 << k):
            ist[I_IN_UNDERFLOW + k] += 1
    # 1. input -> ring for the worker, and into the dry delay line
    ring_write(in_buf, in_idx, indata)
    pos = ist[I_FRAMES]
    mask = dline.shape[0] - 1
    for t in range(n):
        for c in range(n_in):
            dline[(pos + t) & mask, c] = indata[t, c]
    # 2. wet frames: skip those whose time has passed, then read this block's
    avail = ring_readable(out_idx)
    debt = ist[I_DEBT]
    while debt > 0 and avail > 0:
        k = min(debt, avail, scratch.shape[0])
        ring_read(out_buf, out_idx, scratch[:k])
        debt -= k
        avail -= k
    xf = ist[I_XFADE]
    mode = ist[I_MODE]  # 0 wet, 1 dry
    if mode == 0 and avail >= n + xf and avail < ist[I_MIN_LEVEL]:
        ist[I_MIN_LEVEL] = avail  # the least wet output queued: how much of the margin a late worker used
    if mode == 0 and avail < n + xf:
        mode = 1
        ist[I_LATE] += 1
        ist[I_LAST_LATE_AT] = pos
        if ist[I_LATE] <= DRY_SPANS:
            ist[I_SPANS + 2 * ist[I_LATE] - 2] = pos
    elif mode == 1 and debt == 0 and avail >= n + ist[I_RECOVER_LEVEL]:
        mode = 0
        ist[I_RECOVER] += 1
        ist[I_LAST_RECOVER_AT] = pos
        if ist[I_RECOVER] <= DRY_SPANS:
            ist[I_SPANS + 2 * ist[I_RECOVER] - 1] = pos
    ist[I_MODE] = mode
    r = min(n, avail, scratch.shape[0])
    if r > 0:
        ring_read(out_buf, out_idx, scratch[:r])
    if r < n:
        debt += n - r
        ist[I_MISSING] += n - r
    ist[I_DEBT] = debt
    # 3. mix wet and dry per sample
    delay = ist[I_DELAY]
    w = fst[F_WET]
    step = 1.0 / xf if xf > 0 else 1.0
    target = 1.0 if mode == 0 else 0.0
    dry_frames = 0
    for t in range(n):
        if w < target:
            w = min(target, w + step)
        elif w > target:
            w = max(target, w - step)
        if t >= r and w > 0.0:
            w = 0.0
            ist[I_HARD] += 1
        if w < 1.0:
            dry_frames += 1
        src = (pos + t - delay) & mask
        for o in range(n_out):
            d = 0.0
            if w < 1.0:
                for c in range(n_in):
                    d += dline[src, c] * fb[c, o]
            v = d
            if w > 0.0:
                v = w * scratch[t, o] + (1.0 - w) * d
            v = soft_clip(v, 0.95)
            outdata[t, o] = v
            a = abs(v)
            if a > fst[F_PEAK0 + o]:
                fst[F_PEAK0 + o] = a
    fst[F_WET] = w
    ist[I_DRY_FRAMES] += dry_frames
    ist[I_FRAMES] = pos + n


# ---------------------------------------------------------------------------- cfunc callback
@intrinsic
def _voidptr(typingctx: Any, addr: Any) -> Any:
    """int64 address -> ``void*``."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))

    return types.voidptr(addr), codegen


# table layout (int64): addresses, then shapes
T_IN_BUF, T_IN_IDX, T_OUT_BUF, T_OUT_IDX, T_DLINE, T_FB, T_SCRATCH, T_IST, T_FST = range(9)
T_N_IN, T_N_OUT, T_IN_CAP, T_OUT_CAP, T_DCAP, T_SCRATCH_N, T_IST_N, T_FST_N = range(9, 17)
TABLE_SIZE = 17

_PA_SIG = types.int32(
    types.voidptr, types.voidptr, types.uint64, types.voidptr, types.uint64, types.CPointer(types.int64)
)


@cfunc(_PA_SIG, nopython=True, cache=True)
def _pa_callback(iptr: Any, optr: Any, frames: int, time_info: Any, status: int, table_ptr: Any) -> int:
    tb = carray(table_ptr, (TABLE_SIZE,))
    n = np.int64(frames)
    n_in = tb[T_N_IN]
    n_out = tb[T_N_OUT]
    indata = carray(iptr, (n, n_in), np.float32)
    outdata = carray(optr, (n, n_out), np.float32)
    in_buf = carray(_voidptr(tb[T_IN_BUF]), (tb[T_IN_CAP], n_in), np.float32)
    in_idx = carray(_voidptr(tb[T_IN_IDX]), (32,), np.int64)
    out_buf = carray(_voidptr(tb[T_OUT_BUF]), (tb[T_OUT_CAP], n_out), np.float32)
    out_idx = carray(_voidptr(tb[T_OUT_IDX]), (32,), np.int64)
    dline = carray(_voidptr(tb[T_DLINE]), (tb[T_DCAP], n_in), np.float32)
    fb = carray(_voidptr(tb[T_FB]), (n_in, n_out), np.float32)
    scratch = carray(_voidptr(tb[T_SCRATCH]), (tb[T_SCRATCH_N], n_out), np.float32)
    ist = carray(_voidptr(tb[T_IST]), (tb[T_IST_N],), np.int64)
    fst = carray(_voidptr(tb[T_FST]), (tb[T_FST_N],), np.float64)
    callback_kernel(
        indata, outdata, np.int64(status), in_buf, in_idx, out_buf, out_idx, dline, fb, scratch, ist, fst
    )
    return 0


# ---------------------------------------------------------------------------- devices
def list_devices() -> list[dict[str, Any]]:
    """Audio devices: index, name, host API, channels in/out, default rate, default flags."""
    import sounddevice as sd

    apis = sd.query_hostapis()
    default_in, default_out = sd.default.device
    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append(
            {
                "index": i,
                "name": d["name"],
                "hostapi": apis[d["hostapi"]]["name"],
                "max_input_channels": d["max_input_channels"],
                "max_output_channels": d["max_output_channels"],
                "default_samplerate": d["default_samplerate"],
                "default_input": i == default_in,
                "default_output": i == default_out,
            }
        )
    return out


def find_device(spec: int | str | None, kind: str) -> int | None:
    """Resolve a device by index or case-insensitive name substring (``None``: the default).

    A substring that matches no device name may match a host API name (``"JACK"``). Prefers JACK
    devices when several match; the device must have ``kind`` channels. Raises ``ValueError``
    listing the devices that exist.
    """
    if spec is None or spec == "":
        return None
    devs = list_devices()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    listing = "\n".join(
        f"  {d['index']:3d}  {d['name']} ({d['hostapi']}, {d['max_input_channels']} in, "
        f"{d['max_output_channels']} out)"
        for d in devs
    )
    if isinstance(spec, int) or str(spec).isdigit():
        i = int(spec)
        if 0 <= i < len(devs) and devs[i][key] > 0:
            return i
        raise ValueError(f"no {kind} device with index {i}; devices:\n{listing}")
    key_s = str(spec).lower()
    matches = [d for d in devs if key_s in d["name"].lower() and d[key] > 0]
    if not matches:  # a host API name ("JACK", "ALSA") selects that API's first device
        matches = [d for d in devs if key_s in d["hostapi"].lower() and d[key] > 0]
    if not matches:
        raise ValueError(f"no {kind} device matches {spec!r}; devices:\n{listing}")
    matches.sort(key=lambda d: ("JACK" not in d["hostapi"], d["index"]))
    return int(matches[0]["index"])


def check_channels(device: int | None, kind: str, need: int) -> None:
    """Raise ``ValueError`` naming the device and its channel count when it has fewer ``kind``
    channels than ``need`` (PortAudio itself says only "Invalid number of channels").

    ``device``: an index from :func:`find_device`, or ``None`` for the default device of ``kind``.
    """
    import sounddevice as sd

    try:
        info = sd.query_devices(device, kind=kind)
    except (ValueError, sd.PortAudioError):  # no default device: PortAudio's own error follows
        return
    have = int(info["max_input_channels" if kind == "input" else "max_output_channels"])
    if have < need:
        asked = (
            f"input channel {need - 1} (0-based) was asked for; pick channels below {have}"
            if kind == "input"
            else f"{need} are needed; pick fewer outputs"
        )
        raise ValueError(
            f"{kind} device {info['name']!r} has {have} {kind} channel(s), but {asked} or another device "
            "('rtsep devices' lists them)"
        )


# ---------------------------------------------------------------------------- engine
@dataclass(frozen=True)
class EngineConfig:
    """Live engine settings.

    Attributes:
        input_device / output_device: index, name substring, or ``None`` (default device).
        blocksize: frames per callback (0 lets the host choose; then set ``max_blocksize``).
        margin: safety margin of output prefill, in hops (device rate).
        xfade: crossfade length wet <-> dry in samples; default ``min(64, hop / 4)``.
        callback: ``"cfunc"`` (no GIL) or ``"python"``.
        ring_seconds: input/output ring capacity.
        switch_interval: ``sys.setswitchinterval`` while running (``None``: leave as is).
        max_blocksize: largest callback block the engine accepts when ``blocksize`` is 0.
        torch_threads: intra-op threads of torch *in the worker thread* (``None``: the count of the
            thread that starts the engine, ``torch.get_num_threads()``). A new thread gets OpenMP's
            default team (every core), which oneDNN uses directly: on a loaded machine its spinning
            threads made a 0.1 ms step take 40 ms, so the worker sets this explicitly.
        warmup_hops: model hops of silence run in the worker before the stream starts (first torch
            calls, oneDNN primitive creation, Numba kernels), then the state is reset.
        catch_up: seconds of output a late worker may owe before it stops working the backlog off and
            jumps to the live input instead (``None``: never). A model at a real-time factor ``r``
            works off a backlog of ``b`` seconds in ``b * r / (1 - r)`` s, all of it dry: 9 s after a
            1 s stall at ``r = 0.9``, and never at ``r >= 1`` (the input ring overflows after
            ``ring_seconds``). Jumping drops the stale input, resets the model and feeds it
            :attr:`Engine.catch_up_warm` frames before the live edge, so the output is wet again after
            about ``(catch_up_warm + prefill) * r / (1 - r)`` frames, starting from a fresh model
            state as at stream start; the timeline (and so the latency) is unchanged.
        start_timeout: seconds to wait for the worker's warm-up.
        stop_timeout: seconds :meth:`Engine.stop` waits for the worker to finish its block. A worker
            still running at interpreter exit aborts the process ("terminate called without an active
            exception": the daemon thread is unwound inside torch's C++), so a caller that sees
            :attr:`Engine.worker_stuck` should leave with ``os._exit``.
    """

    input_device: int | str | None = None
    output_device: int | str | None = None
    blocksize: int = 256
    margin: float = 1.0
    xfade: int | None = None
    callback: str = "cfunc"
    ring_seconds: float = 4.0
    switch_interval: float | None = None
    max_blocksize: int = 8192
    torch_threads: int | None = None
    warmup_hops: int = 16
    catch_up: float | None = 0.25
    start_timeout: float = 120.0
    stop_timeout: float = 10.0


class Engine:
    """Runs a :class:`Processor` live on a sounddevice duplex stream (context manager).

    Args:
        processor: the chain; its ``samplerate`` is the device rate.
        config: devices, block size, margin, callback kind.
        poller: optional object with ``poll(mixer)``, called by the worker before each block it processes
            (how MIDI gets in); ``mixer`` is the processor (it implements the control protocol).
        on_event: optional ``f(message)`` for one-off reports (first model error, worker crash).
    """

    def __init__(
        self,
        processor: Processor,
        config: EngineConfig | None = None,
        *,
        poller: Poller | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        cfg = config or EngineConfig()
        if cfg.callback not in CALLBACK_KINDS:
            raise ValueError(f"Engine: callback must be one of {CALLBACK_KINDS}, got {cfg.callback!r}")
        self.processor = processor
        self.config = cfg
        self.poller = poller
        self.on_event = on_event or (lambda msg: print(msg, file=sys.stderr))
        p = processor
        self.samplerate = p.samplerate
        self.hop_dev = math.ceil(p.hop * p.samplerate / p.model_rate)
        self.blocksize = int(cfg.blocksize)
        block = self.blocksize or 1024
        self.prefill = block + math.ceil(cfg.margin * self.hop_dev)
        xfade = cfg.xfade if cfg.xfade is not None else min(64, self.hop_dev // 4)
        self.xfade = max(0, min(int(xfade), (self.prefill - block) // 2))
        self.latency = self.prefill + p.latency  # device frames, callback timeline
        # catching up: input fed through a reset model before the live edge (its output is discarded:
        # the processor's latency makes its first output frames the reset's zeros) and the least debt
        # that triggers a jump (never less than that warm-up, which comes out of the dropped input)
        self.catch_up_warm = p.latency + self.hop_dev
        self.catch_up_frames = (
            None
            if cfg.catch_up is None
            else max(round(cfg.catch_up * p.samplerate), self.catch_up_warm + (self.blocksize or 256))
        )
        self.n_in = p.device_input_channels
        self.n_out = p.outputs
        cap = int(cfg.ring_seconds * p.samplerate)
        self.in_ring = RingBuffer(self.n_in, cap)
        self.out_ring = RingBuffer(self.n_out, cap)
        dcap = 1 << (self.latency + cfg.max_blocksize + block).bit_length()
        self.dline = np.zeros((dcap, self.n_in), dtype=np.float32)
        self.fb = np.zeros((self.n_in, self.n_out), dtype=np.float32)
        self.scratch = np.zeros((max(cfg.max_blocksize, block), self.n_out), dtype=np.float32)
        self.ist = np.zeros(IST_SIZE, dtype=np.int64)
        self.fst = np.zeros(F_PEAK0 + self.n_out, dtype=np.float64)
        self._table = np.zeros(TABLE_SIZE, dtype=np.int64)
        self._stream: Any = None
        self._worker: threading.Thread | None = None
        self._running = threading.Event()
        self._warm = threading.Event()  # the worker finished its warm-up
        self._go = threading.Event()  # the stream is about to start: the worker may run
        self._worker_failure: BaseException | None = None
        self.warmup_s = 0.0
        self.worker_stuck = False
        self._torch_threads = 1
        self._reported_error = False
        self.worker_errors = 0
        self.worker_chunks = 0
        self.catch_ups = 0  # jumps to the live input (worker-written)
        self.dropped_frames = 0  # input frames never processed because of them
        self._zeros = np.zeros((max(cfg.max_blocksize, block), self.n_out), dtype=np.float32)
        self.started_at = 0.0
        self.stream_latency = (0.0, 0.0)
        self._old_switch: float | None = None
        self._old_handlers: dict[int, Any] = {}
        self.stop_requested = threading.Event()
        self._publish_fallback()

    # ------------------------------------------------------------------ setup
    def _publish_fallback(self) -> None:
        fb = self.processor.fallback_matrix()  # (len(selected), outputs)
        full = np.zeros_like(self.fb)
        for i, c in enumerate(self.processor.input_channels):
            full[c] += fb[i]
        self.fb[:] = full  # element-wise update in place; the callback reads it

    def _reset_state(self) -> None:
        self.in_ring.reset()
        self.out_ring.reset()
        self.processor.reset()
        self.dline[:] = 0.0
        self.ist[:] = 0
        self.fst[:] = 0.0
        self.ist[I_DELAY] = self.latency
        self.ist[I_XFADE] = self.xfade
        self.ist[I_RECOVER_LEVEL] = 2 * self.xfade
        self.ist[I_MIN_LEVEL] = NEVER
        self.ist[I_SPANS:] = NEVER
        self.fst[F_WET] = 1.0
        self.out_ring.write(np.zeros((self.prefill, self.n_out), dtype=np.float32))

    def _open_stream(self) -> Any:
        import sounddevice as sd

        cfg = self.config
        dev_in = find_device(cfg.input_device, "input")
        dev_out = find_device(cfg.output_device, "output")
        check_channels(dev_in, "input", self.n_in)
        check_channels(dev_out, "output", self.n_out)
        kw: dict[str, Any] = dict(
            samplerate=self.samplerate,
            blocksize=self.blocksize,
            device=(dev_in, dev_out),
            channels=(self.n_in, self.n_out),
            dtype="float32",
            latency="low",
        )
        if cfg.callback == "cfunc":
            t = self._table
            t[T_IN_BUF] = self.in_ring.buf.ctypes.data
            t[T_IN_IDX] = self.in_ring.idx.ctypes.data
            t[T_OUT_BUF] = self.out_ring.buf.ctypes.data
            t[T_OUT_IDX] = self.out_ring.idx.ctypes.data
            t[T_DLINE] = self.dline.ctypes.data
            t[T_FB] = self.fb.ctypes.data
            t[T_SCRATCH] = self.scratch.ctypes.data
            t[T_IST] = self.ist.ctypes.data
            t[T_FST] = self.fst.ctypes.data
            t[T_N_IN], t[T_N_OUT] = self.n_in, self.n_out
            t[T_IN_CAP], t[T_OUT_CAP] = self.in_ring.capacity, self.out_ring.capacity
            t[T_DCAP], t[T_SCRATCH_N] = self.dline.shape[0], self.scratch.shape[0]
            t[T_IST_N], t[T_FST_N] = self.ist.shape[0], self.fst.shape[0]
            ffi = sd._ffi
            stream = sd._StreamBase(
                "duplex",
                callback=ffi.cast("PaStreamCallback*", _pa_callback.address),
                userdata=ffi.cast("void*", t.ctypes.data),
                wrap_callback=None,
                **kw,
            )
        else:
            args = (
                self.in_ring.buf,
                self.in_ring.idx,
                self.out_ring.buf,
                self.out_ring.idx,
                self.dline,
                self.fb,
                self.scratch,
                self.ist,
                self.fst,
            )

            def pycallback(
                indata: np.ndarray, outdata: np.ndarray, frames: int, ti: Any, status: Any
            ) -> None:
                callback_kernel(indata, outdata, status._flags, *args)

            stream = sd.Stream(callback=pycallback, **kw)
        return stream

    # ------------------------------------------------------------------ worker
    def _warm_up(self) -> None:
        """Run in the worker thread before real time: torch threads, model, Numba kernels."""
        import torch

        t0 = time.perf_counter()
        torch.set_num_threads(self._torch_threads)
        p = self.processor
        x = np.zeros((self.blocksize or 256, self.n_in), dtype=np.float32)
        frames = max(1, self.config.warmup_hops) * self.hop_dev
        done = 0
        while done < frames:
            p.process(x)
            done += x.shape[0]
        # the Python callback's kernel (the cfunc one was compiled at import), on throwaway state
        n = x.shape[0]
        ist = np.zeros_like(self.ist)
        ist[I_XFADE] = self.xfade
        callback_kernel(
            x,
            np.zeros((n, self.n_out), dtype=np.float32),
            0,
            np.zeros_like(self.in_ring.buf),
            np.zeros_like(self.in_ring.idx),
            np.zeros_like(self.out_ring.buf),
            np.zeros_like(self.out_ring.idx),
            np.zeros_like(self.dline),
            self.fb.copy(),
            np.zeros_like(self.scratch),
            ist,
            np.zeros_like(self.fst),
        )
        p.reset()
        p.reset_stats()
        self.warmup_s = time.perf_counter() - t0

    def _work(self) -> None:
        try:
            self._warm_up()
        except BaseException as exc:  # reported by start()
            self._worker_failure = exc
            self._warm.set()
            return
        self._warm.set()
        self._go.wait()
        if not self._running.is_set():
            return
        try:
            self._loop()
        except BaseException as exc:
            self._worker_failure = exc
            self.on_event(f"rtsep: worker crashed, passing dry audio: {type(exc).__name__}: {exc}")

    def _loop(self) -> None:
        p = self.processor
        buf = np.zeros((self.in_ring.capacity, self.n_in), dtype=np.float32)
        poll_s = max(0.0002, 0.25 * (self.blocksize or 256) / self.samplerate)
        # a backlog is worked off a block at a time: output reaches the ring (and the callback can
        # recover) as soon as each block is done, and stop() is honoured between blocks
        max_chunk = max(self.blocksize or 256, self.hop_dev)
        mixer_version = -1
        poller = self.poller
        while self._running.is_set():
            # MIDI first: a change picked up now applies to the oldest input not yet processed, whose
            # output plays soonest (polling after a backlog would hold a change back by the backlog)
            if poller is not None:
                try:
                    poller.poll(p)
                except Exception as exc:
                    self.on_event(f"rtsep: control poll failed: {type(exc).__name__}: {exc}")
            if self.work_once(buf, max_chunk) == 0:
                time.sleep(poll_s)
                continue
            if p.stats.model_errors and not self._reported_error:
                self._reported_error = True
                self.on_event(f"rtsep: model error, passing dry audio: {p.stats.first_error}")
            if p.mixer._applied != mixer_version:  # keep the fallback in step with the mixer
                mixer_version = p.mixer._applied
                self._publish_fallback()

    def work_once(self, buf: np.ndarray, max_chunk: int) -> int:
        """One step of the worker: catch up when far behind, then process up to ``max_chunk`` frames.

        Args:
            buf: ``(>= max_chunk, input channels)`` float32 scratch.
            max_chunk: most input frames to process.

        Returns:
            Input frames processed (0: no input was waiting).
        """
        self.catch_up(buf)
        k = min(self.in_ring.readable, max_chunk)
        if k == 0:
            return 0
        chunk = buf[:k]
        self.in_ring.read(chunk)
        try:
            y = self.processor.process(chunk)
        except Exception as exc:
            self.worker_errors += 1
            if self.worker_errors == 1:
                self.on_event(f"rtsep: worker error, passing silence: {type(exc).__name__}: {exc}")
            y = np.zeros((k, self.n_out), dtype=np.float32)  # keeps the timeline
        self.out_ring.write(np.ascontiguousarray(y))
        self.worker_chunks += 1
        return k

    def catch_up(self, buf: np.ndarray) -> int:
        """Jump to the live input when the output owed exceeds ``config.catch_up``; 0 otherwise.

        The callback has played ``ist[I_FRAMES]`` frames and the worker has written
        ``out_ring.written`` (prefill included): the difference, when positive, is output whose time
        has passed, which the callback skips when it arrives. The worker writes that many frames of
        silence (skipped, never played), consumes as many input frames (all dropped but the last
        ``catch_up_warm``, which go through the freshly reset processor with their output discarded)
        and resumes at the live edge: output index and input index stay ``prefill`` apart, so the
        latency is unchanged, and the callback crossfades back to wet as soon as the ring refills.

        Returns:
            Input frames dropped.
        """
        if self.catch_up_frames is None:
            return 0
        owed = int(self.ist[I_FRAMES]) - self.out_ring.written
        if owed < self.catch_up_frames:
            return 0
        # the input ring holds ``owed + prefill`` frames unless it overflowed (catch_up was off for
        # a while or was just turned on): then the timeline is gone anyway and what is there is used
        owed = min(owed, self.in_ring.readable)
        warm = min(self.catch_up_warm, owed)
        drop = owed - warm
        zeros = self._zeros
        done = 0
        while done < owed:  # placeholders for the output whose time has passed
            k = min(owed - done, zeros.shape[0])
            self.out_ring.write(zeros[:k])
            done += k
        chunk = buf.shape[0]
        done = 0
        while done < drop:
            done += self.in_ring.read(buf[: min(drop - done, chunk)])
        p = self.processor
        p.reset()
        done = 0
        while done < warm:
            k = self.in_ring.read(buf[: min(warm - done, chunk)])
            p.process(buf[:k])
            done += k
        self.catch_ups += 1
        self.dropped_frames += drop
        return drop

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Engine:
        """Open the stream, start the worker and the stream."""
        if self._stream is not None:
            return self
        if self.config.switch_interval is not None:
            self._old_switch = sys.getswitchinterval()
            sys.setswitchinterval(self.config.switch_interval)
        import torch

        self._torch_threads = int(self.config.torch_threads or torch.get_num_threads())
        # 1. the worker warms up (in its own thread: torch's thread settings and oneDNN's caches are
        #    per thread) and then waits; 2. fresh state; 3. open and start the stream.
        self._warm.clear()
        self._go.clear()
        self._worker_failure = None
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="rtsep-worker", daemon=True)
        self._worker.start()
        if not self._warm.wait(self.config.start_timeout) or self._worker_failure is not None:
            failure = self._worker_failure
            self._shutdown_worker()
            raise RuntimeError(f"Engine: the worker's warm-up failed: {failure!r}") from failure
        self._reset_state()
        try:
            self._stream = self._open_stream()
            self.stream_latency = self._device_latency()
        except BaseException:
            self._shutdown_worker()
            raise
        self._go.set()
        self.started_at = time.monotonic()
        self._stream.start()
        return self

    def _shutdown_worker(self) -> None:
        self._running.clear()
        self._go.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout=self.config.stop_timeout)
            if worker.is_alive():  # stuck in a model step: see worker_stuck
                self.worker_stuck = True
                self.on_event(
                    f"rtsep: the worker did not stop within {self.config.stop_timeout:.0f} s "
                    "(a model step that never returns?)"
                )
            self._worker = None
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None

    def _device_latency(self) -> tuple[float, float]:
        """(input, output) seconds the device adds. PortAudio's JACK host API reports nonsense here
        (~1e5 s) and delivers the output one period late; use one block for it then."""
        import sounddevice as sd

        lin, lout = (float(v) for v in self._stream.latency)
        api = sd.query_hostapis(sd.query_devices(self._stream.device[1])["hostapi"])["name"]
        block = (self.blocksize or 256) / self.samplerate
        if "JACK" in api:
            return 0.0, block
        return (lin if lin < 10 else 0.0), (lout if lout < 10 else block)

    def stop(self) -> None:
        """Stop and close the stream, then the worker. Idempotent."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        self._shutdown_worker()

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def install_signal_handlers(self) -> None:
        """SIGINT / SIGTERM set :attr:`stop_requested` (main thread only)."""

        def handler(signum: int, frame: Any) -> None:
            self.stop_requested.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, handler)

    def restore_signal_handlers(self) -> None:
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers.clear()

    def run(
        self, duration: float | None = None, tick: Callable[[], None] | None = None, period: float = 0.1
    ) -> None:
        """Block until ``duration`` seconds pass, Ctrl-C / SIGTERM, or the stream stops.

        ``tick`` (e.g. a terminal view refresh) is called every ``period`` seconds.
        """
        end = None if duration is None else time.monotonic() + duration
        while not self.stop_requested.is_set():
            if end is not None and time.monotonic() >= end:
                break
            if self._stream is not None and not self._stream.active:
                break
            if tick is not None:
                tick()
            self.stop_requested.wait(period if end is None else max(0.0, min(period, end - time.monotonic())))

    # ------------------------------------------------------------------ statistics
    def peaks(self, reset: bool = True) -> np.ndarray:
        """Output peak per channel since the last call (linear)."""
        v = self.fst[F_PEAK0:].copy()
        if reset:
            self.fst[F_PEAK0:] = 0.0
        return v

    def dry_spans(self) -> list[list[int | None]]:
        """The first ``DRY_SPANS`` dry stretches as ``[late at, wet again at]`` callback frames.

        The output fades to dry over ``xfade`` frames from the first and back to wet over as many from
        the second (``None``: still dry); frame 0 is the stream's first callback frame. Frames count
        callbacks, so a host that skips a callback (a stalled JACK graph can) shifts later stretches
        against the wall clock; ``rtsep demo`` finds them in its recording instead.
        """
        ist = self.ist
        spans: list[list[int | None]] = []
        for k in range(min(int(ist[I_LATE]), DRY_SPANS)):
            end = int(ist[I_SPANS + 2 * k + 1])
            spans.append([int(ist[I_SPANS + 2 * k]), None if end == NEVER else end])
        return spans

    def stats(self) -> dict[str, Any]:
        """A snapshot of every counter (no locks; values may be one callback apart)."""
        ist = self.ist
        p = self.processor
        st = p.stats
        steps = st.step_percentiles()
        hop_ms = 1000.0 * p.hop / p.model_rate
        elapsed = time.monotonic() - self.started_at if self.started_at else 0.0
        in_lat, out_lat = self.stream_latency
        return {
            "elapsed_s": elapsed,
            "samplerate": self.samplerate,
            "blocksize": self.blocksize,
            "callback": self.config.callback,
            "callbacks": int(ist[I_CALLBACKS]),
            "frames": int(ist[I_FRAMES]),
            "xruns": {
                "input_underflow": int(ist[I_IN_UNDERFLOW]),
                "input_overflow": int(ist[I_IN_OVERFLOW]),
                "output_underflow": int(ist[I_OUT_UNDERFLOW]),
                "output_overflow": int(ist[I_OUT_OVERFLOW]),
                "priming": int(ist[I_PRIMING]),
                "callbacks_flagged": int(ist[I_FLAGGED]),
                "total": int(ist[I_IN_UNDERFLOW : I_OUT_OVERFLOW + 1].sum()),
            },
            "rings": {
                "input_overruns": self.in_ring.overruns,
                "input_underruns": self.in_ring.underruns,
                "output_overruns": self.out_ring.overruns,
                "output_underruns": int(ist[I_MISSING]),
                "output_level": self.out_ring.readable,
                # the least output queued at a wet callback (None: never wet); steady state is the
                # prefill, so prefill - this is how much of the safety margin a late worker used (and
                # how much sooner than ``control_samples`` a MIDI change could play then)
                "output_level_min": None if ist[I_MIN_LEVEL] == NEVER else int(ist[I_MIN_LEVEL]),
            },
            "degradation": {
                "late_events": int(ist[I_LATE]),
                "recoveries": int(ist[I_RECOVER]),
                "dry_frames": int(ist[I_DRY_FRAMES]),
                "hard_switches": int(ist[I_HARD]),
                "dry_now": bool(ist[I_MODE]),
                "last_late_at_s": float(ist[I_LAST_LATE_AT]) / self.samplerate,
                "last_recovery_at_s": float(ist[I_LAST_RECOVER_AT]) / self.samplerate,
                # callback frames since the stream started: [late at, wet again at] per dry
                # stretch (None: still dry), the first DRY_SPANS of them
                "dry_spans": self.dry_spans(),
                "xfade_frames": int(self.xfade),
                "nonfinite_hops": st.nonfinite_hops,
                "model_errors": st.model_errors,
                "first_model_error": st.first_error,
                "catch_ups": self.catch_ups,
                "dropped_frames": self.dropped_frames,
                "worker_errors": self.worker_errors,
                "worker_alive": self._worker is not None and self._worker.is_alive(),
                "limited_frames": p.limiter.limited_frames,
            },
            "step_ms": steps,
            "hop_ms": hop_ms,
            "rtf": {k: v / hop_ms for k, v in steps.items()},
            "latency": {
                "processor_samples": p.latency,
                "prefill_samples": self.prefill,
                "engine_samples": self.latency,
                "engine_ms": 1000.0 * self.latency / self.samplerate,
                "device_in_ms": 1000.0 * in_lat,
                "device_out_ms": 1000.0 * out_lat,
                "end_to_end_ms": 1000.0 * (self.latency / self.samplerate + in_lat + out_lat),
                "end_to_end_samples": self.latency + round((in_lat + out_lat) * self.samplerate),
                # MIDI (or any mixer change) -> audio, worst case: the worker polls before it
                # processes each block, so a change waits up to one block for the poll and applies
                # from the next hop mixed, which plays behind the processor's primed FIFO (and output
                # resampler), the output ring and the device; the smoothing ramp starts there
                "control_samples": self.prefill
                + p.prime
                + (p._rs_out.latency if p._rs_out is not None else 0)
                + (self.blocksize or 256)
                + round(out_lat * self.samplerate),
                "smoothing_samples": round(p.mixer.smooth * self.samplerate / p.model_rate),
            },
            "hops": st.hops,
            "warmup_s": self.warmup_s,
            "stems": list(p.stems),
        }


def open_jack_default() -> None:  # pragma: no cover - helper for scripts
    """Re-initialise PortAudio (after ``JACK_DEFAULT_SERVER`` changed)."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
