"""Tests for rtsep.dsp.ring: reference model, two threads in nogil Numba code, cfunc, allocations."""

from __future__ import annotations

import ctypes
import re
import threading
import time
import tracemalloc
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import carray, cfunc, njit, types

from rtsep.dsp.ring import (
    IDX_SIZE,
    OVERRUNS,
    READ,
    UNDERRUNS,
    WRITE,
    RingBuffer,
    _load_acquire,
    ring_read,
    ring_readable,
    ring_writable,
    ring_write,
)

# ---------------------------------------------------------------------------------------------------
# construction


@pytest.mark.parametrize(("requested", "actual"), [(1, 1), (2, 2), (3, 4), (1000, 1024), (1024, 1024)])
def test_capacity_rounds_up_to_power_of_two(requested: int, actual: int) -> None:
    ring = RingBuffer(2, requested)
    assert ring.capacity == actual
    assert ring.buf.shape == (actual, 2) and ring.buf.dtype == np.float32
    assert ring.idx.shape == (IDX_SIZE,) and ring.idx.dtype == np.int64
    assert ring.readable == 0 and ring.writable == actual


@pytest.mark.parametrize(
    ("channels", "capacity"), [(0, 8), (2, 0), (-1, 8), (2, -4), (2.0, 8), (2, 8.0), (True, 8)]
)
def test_bad_construction_raises(channels: object, capacity: object) -> None:
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        RingBuffer(channels, capacity)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# randomized test against a deque reference


class _DequeRing:
    """Plain reference: a deque of frames with the same contract."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.q: deque[np.ndarray] = deque()
        self.channels = channels
        self.capacity = capacity
        self.overruns = 0
        self.underruns = 0

    def write(self, block: np.ndarray) -> int:
        k = min(len(block), self.capacity - len(self.q))
        self.q.extend(block[:k].copy())
        self.overruns += len(block) - k
        return k

    def read(self, n: int) -> tuple[int, np.ndarray]:
        out = np.zeros((n, self.channels), dtype=np.float32)
        k = min(n, len(self.q))
        for i in range(k):
            out[i] = self.q.popleft()
        self.underruns += n - k
        return k, out


def _size(kind: int, capacity: int, rnd: int) -> int:
    return [0, 1, max(capacity - 1, 0), capacity, capacity + 1, 2 * capacity + 3, rnd][kind]


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    channels=st.integers(1, 3),
    requested=st.integers(1, 40),
    ops=st.lists(
        st.tuples(st.booleans(), st.integers(0, 6), st.integers(0, 100)),
        min_size=1,
        max_size=60,
    ),
)
def test_matches_deque_reference(channels: int, requested: int, ops: list[tuple[bool, int, int]]) -> None:
    ring = RingBuffer(channels, requested)
    ref = _DequeRing(channels, ring.capacity)
    counter = 0.0
    for is_write, kind, rnd in ops:
        n = _size(kind, ring.capacity, rnd)
        if is_write:
            block = (counter + np.arange(n * channels, dtype=np.float32)).reshape(n, channels)
            counter += n * channels
            assert ring.write(block) == ref.write(block)
        else:
            out = np.full((n, channels), np.nan, dtype=np.float32)
            k_ref, out_ref = ref.read(n)
            assert ring.read(out) == k_ref
            np.testing.assert_array_equal(out, out_ref)
        assert ring.readable == len(ref.q)
        assert ring.writable == ring.capacity - len(ref.q)
        assert ring.overruns == ref.overruns
        assert ring.underruns == ref.underruns


def test_wraparound_and_counters_explicit() -> None:
    ring = RingBuffer(1, 4)
    assert ring.write(np.arange(3, dtype=np.float32).reshape(3, 1)) == 3
    out = np.empty((2, 1), dtype=np.float32)
    assert ring.read(out) == 2 and out.ravel().tolist() == [0, 1]
    assert ring.write(np.arange(10, 15, dtype=np.float32).reshape(5, 1)) == 3  # 2 dropped
    assert ring.overruns == 2
    out = np.empty((6, 1), dtype=np.float32)
    assert ring.read(out) == 4
    assert out.ravel().tolist() == [2, 10, 11, 12, 0, 0]
    assert ring.underruns == 2
    assert int(ring.idx[WRITE]) == 6 and int(ring.idx[READ]) == 6
    ring.reset()
    assert ring.readable == 0 and ring.overruns == 0 and ring.underruns == 0


# ---------------------------------------------------------------------------------------------------
# two threads, both inside nogil Numba code at the same time


@njit(nogil=True)
def _producer(
    buf: np.ndarray, idx: np.ndarray, total: int, max_chunk: int, seed: int, stop: np.ndarray
) -> int:
    np.random.seed(seed)
    block = np.empty((max_chunk, buf.shape[1]), dtype=np.float32)
    sent = 0
    full_waits = 0
    while sent < total:
        if _load_acquire(stop, 0):  # atomic: cannot be hoisted out of the loop
            return -2
        n = min(np.random.randint(1, max_chunk + 1), total - sent)
        free = ring_writable(buf, idx)
        if free == 0:
            full_waits += 1
            continue
        n = min(n, free)
        for i in range(n):
            v = np.float32((sent + i) % 16777216)  # exact in float32
            block[i, 0] = v
            block[i, 1] = -v
        k = ring_write(buf, idx, block[:n])
        if k != n:  # never: only this thread writes, free space can only grow
            return -1
        sent += n
    return full_waits


@njit(nogil=True)
def _consumer(
    buf: np.ndarray,
    idx: np.ndarray,
    total: int,
    max_chunk: int,
    seed: int,
    stats: np.ndarray,
    stop: np.ndarray,
) -> int:
    # Returns -1 if the sequence was intact, -2 if stopped, else the index of the first wrong frame.
    np.random.seed(seed)
    out = np.empty((max_chunk, buf.shape[1]), dtype=np.float32)
    got = 0
    partial = 0
    while got < total:
        if _load_acquire(stop, 0):
            return -2
        n = min(np.random.randint(1, max_chunk + 1), total - got)
        k = ring_read(buf, idx, out[:n])
        if 0 < k < n:
            partial += 1
        for i in range(k):
            v = np.float32((got + i) % 16777216)
            if out[i, 0] != v or out[i, 1] != -v:
                return got + i
        for i in range(k, n):
            if out[i, 0] != 0.0 or out[i, 1] != 0.0:
                return got + i
        got += k
    stats[0] = partial
    return -1


def test_two_threads_nogil_counter_sequence() -> None:
    total = 10_000_000
    ring = RingBuffer(2, 1024)
    stats = np.zeros(1, dtype=np.int64)
    # compile first so that both threads start running compiled code immediately
    warm = RingBuffer(2, 64)
    stop = np.zeros(IDX_SIZE, dtype=np.int64)
    _producer(warm.buf, warm.idx, 10, 8, 0, stop)
    _consumer(warm.buf, warm.idx, 10, 8, 0, np.zeros(1, dtype=np.int64), stop)

    results: dict[str, int] = {}
    spans: dict[str, tuple[float, float]] = {}

    def run(name: str, fn: object, *args: object) -> None:
        t0 = time.perf_counter()
        results[name] = fn(*args)  # type: ignore[operator]
        spans[name] = (t0, time.perf_counter())

    threads = [
        threading.Thread(
            target=run, args=("producer", _producer, ring.buf, ring.idx, total, 700, 1, stop), daemon=True
        ),
        threading.Thread(
            target=run,
            args=("consumer", _consumer, ring.buf, ring.idx, total, 900, 2, stats, stop),
            daemon=True,
        ),
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, 30.0 - (time.perf_counter() - t0)))
    elapsed = time.perf_counter() - t0
    stop[0] = 1  # release the loops if they are stuck (then the asserts below fail)
    for t in threads:
        t.join(timeout=5)
    assert elapsed < 30.0, "producer/consumer did not finish in 30 s (deadlock or lost frames)"
    assert results["producer"] >= 0, "ring_write wrote less than ring_writable promised"
    assert results["consumer"] == -1, f"sequence broken at frame {results['consumer']}"
    assert int(ring.idx[WRITE]) == total and int(ring.idx[READ]) == total
    assert ring.overruns == 0
    # The two nogil loops really ran at the same time: their wall-clock spans overlap, and the
    # consumer saw the ring partially filled (only possible while the producer is mid-stream).
    (p0, p1), (c0, c1) = spans["producer"], spans["consumer"]
    assert min(p1, c1) - max(p0, c0) > 0.5 * min(p1 - p0, c1 - c0)
    assert stats[0] > 0


# ---------------------------------------------------------------------------------------------------
# cfunc: both intrinsics work outside the interpreter, on raw pointers

_SIG = types.int64(
    types.CPointer(types.float32), types.CPointer(types.int64), types.CPointer(types.float32), types.int64,
    types.int64, types.int64, types.int64,
)  # fmt: skip


@cfunc(_SIG, nopython=True)
def _c_copy(buf_p, idx_p, blk_p, capacity, channels, frames, is_write):  # type: ignore[no-untyped-def]
    buf = carray(buf_p, (capacity, channels))
    idx = carray(idx_p, (IDX_SIZE,))
    blk = carray(blk_p, (frames, channels))
    if is_write:
        return ring_write(buf, idx, blk)
    return ring_read(buf, idx, blk)


def test_ring_functions_work_inside_cfunc() -> None:
    ring = RingBuffer(2, 8)
    fn = ctypes.CFUNCTYPE(
        ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, *([ctypes.c_int64] * 4)
    )(_c_copy.address)
    block = np.arange(20, dtype=np.float32).reshape(10, 2)
    assert fn(ring.buf.ctypes.data, ring.idx.ctypes.data, block.ctypes.data, 8, 2, 10, 1) == 8
    assert ring.overruns == 2 and ring.readable == 8
    out = np.empty((5, 2), dtype=np.float32)
    assert fn(ring.buf.ctypes.data, ring.idx.ctypes.data, out.ctypes.data, 8, 2, 5, 0) == 5
    np.testing.assert_array_equal(out, block[:5])
    assert ring.read(np.empty((4, 2), dtype=np.float32)) == 3 and ring.underruns == 1


def test_atomic_instructions_are_emitted() -> None:
    # Recompile the kernels without the on-disk cache (cached code cannot be inspected).
    buf = np.zeros((4, 1), dtype=np.float32)
    idx = np.zeros(IDX_SIZE, dtype=np.int64)
    block = np.zeros((1, 1), dtype=np.float32)
    for kernel in (ring_write, ring_read):
        fresh = njit(nogil=True)(kernel.py_func)
        fresh(buf, idx, block)
        ir = fresh.inspect_llvm(fresh.signatures[0])
        assert re.search(r"load atomic i64, ptr %[\w.]+ acquire, align 8", ir), kernel.__name__
        assert re.search(r"store atomic i64 %[\w.]+, ptr %[\w.]+ release, align 8", ir), kernel.__name__
        assert "NRT_MemInfo_alloc" not in ir  # no heap allocation inside the kernels


def test_raw_functions_and_layout_constants() -> None:
    ring = RingBuffer(3, 16)
    block = np.ones((5, 3), dtype=np.float32)
    assert ring_write(ring.buf, ring.idx, block) == 5
    assert ring_readable(ring.idx) == 5 and ring_writable(ring.buf, ring.idx) == 11
    assert ring_write(ring.buf, ring.idx, np.ones((5, 2), dtype=np.float32)) == -1  # channel mismatch
    assert ring_read(ring.buf, ring.idx, np.ones((5, 4), dtype=np.float32)) == -1
    assert ring_readable(ring.idx) == 5 and ring.overruns == 0 and ring.underruns == 0
    assert len({WRITE // 8, READ // 8, OVERRUNS // 8, UNDERRUNS // 8}) == 4  # separate cache lines


# ---------------------------------------------------------------------------------------------------
# no allocation per call


@pytest.mark.parametrize("frames", [128, 1024])
def test_no_allocation_per_call(frames: int) -> None:
    ring = RingBuffer(2, 4096)
    block = np.ones((frames, 2), dtype=np.float32)
    out = np.empty((frames, 2), dtype=np.float32)
    for _ in range(10):  # warm up (compilation, caches)
        ring.write(block)
        ring.read(out)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(2000):
            ring.write(block)
            ring.read(out)
            _ = ring.readable + ring.writable
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A single temporary copy of the block would be >= frames * 8 bytes at the peak.
    assert peak - base < 256, f"peak grew by {peak - base} bytes"
    assert current - base < 256, f"retained {current - base} bytes after 2000 calls"


# ---------------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (np.zeros((4, 2), dtype=np.float64), "float64"),
        (np.zeros((4, 3), dtype=np.float32), r"\(4, 3\)"),
        (np.zeros(8, dtype=np.float32), r"\(8,\)"),
        (np.zeros((4, 2, 1), dtype=np.float32), r"\(4, 2, 1\)"),
        (np.zeros((2, 4), dtype=np.float32).T, "not C-contiguous"),
        (np.zeros((8, 2), dtype=np.float32)[::2], "not C-contiguous"),
        ([[0.0, 0.0]], "list"),
    ],
)
@pytest.mark.parametrize("method", ["write", "read"])
def test_bad_blocks_raise_value_error(bad: object, what: str, method: str) -> None:
    ring = RingBuffer(2, 8)
    with pytest.raises(ValueError, match=r"float32 numpy array of shape \(frames, 2\)") as info:
        getattr(ring, method)(bad)
    assert re.search(what, str(info.value)), str(info.value)
    assert ring.readable == 0 and ring.overruns == 0 and ring.underruns == 0


def test_read_into_readonly_raises() -> None:
    ring = RingBuffer(1, 8)
    out = np.zeros((2, 1), dtype=np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ring.read(out)


def test_write_accepts_read_only_block() -> None:
    ring = RingBuffer(2, 8)
    block = np.ones((3, 2), dtype=np.float32)
    block.flags.writeable = False
    assert ring.write(block) == 3
