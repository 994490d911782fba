"""Lock-free single-producer / single-consumer multichannel float32 ring buffer.

The state of a ring is two preallocated numpy arrays, so that Numba code (a worker loop, or a numba
``cfunc`` audio callback) can operate on them without the Python object:

- ``buf``: ``(capacity, channels)`` float32, C-contiguous, ``capacity`` a power of two;
- ``idx``: ``(IDX_SIZE,)`` int64 with the write index at ``idx[WRITE]``, the read index at
  ``idx[READ]``, and the overrun / underrun counters (in frames) at ``idx[OVERRUNS]`` /
  ``idx[UNDERRUNS]``. Each lives on its own 64-byte cache line, so producer and consumer do not
  false-share.

Why this is correct without locks (the guarantee)
--------------------------------------------------
The write and read indices are monotonically increasing 64-bit frame counts, never wrapped (at
384 kHz a signed 64-bit count overflows after ~760,000 years); the slot of frame ``i`` is
``i & (capacity - 1)``. ``write - read`` is therefore always the exact number of unread frames, with
no ABA problem and no wasted slot to tell "full" from "empty". Each index has exactly one writer: the
producer stores ``idx[WRITE]`` and ``idx[OVERRUNS]``, the consumer stores ``idx[READ]`` and
``idx[UNDERRUNS]``. No read-modify-write is shared, so atomic 64-bit loads and stores suffice (no CAS):

- The producer copies frames into the slots, then *store-releases* the new write index. The consumer
  *load-acquires* the write index; acquire/release makes every store sequenced before the release
  (the frame data) visible to the consumer once it observes the new index. So the consumer never
  reads a slot before its data is there.
- The consumer copies frames out, then store-releases the new read index. The producer load-acquires
  the read index before computing free space, so the consumer's reads of a slot happen-before the
  producer's next overwrite of it (no write-after-read hazard).
- Each side may see a stale value of the other side's index, which only makes it see *less* data (or
  less free space) than there is, never more: a stale view is conservative, and the next call catches
  up. Both operations are wait-free: a bounded copy, no loop on the other side's progress.

Numba exposes no atomics on CPU (numba issue #2988), so ``_load_acquire`` / ``_store_release`` are
``@intrinsic`` functions that emit LLVM ``load atomic ... acquire`` / ``store atomic ... release`` on
the address of the ``idx`` element. On x86-64 both compile to plain ``mov`` plus a compiler barrier;
on AArch64 to ``ldar`` / ``stlr``. They work in ``njit`` and ``cfunc`` code alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "IDX_SIZE",
    "OVERRUNS",
    "READ",
    "UNDERRUNS",
    "WRITE",
    "RingBuffer",
    "ring_read",
    "ring_readable",
    "ring_writable",
    "ring_write",
]

# Positions inside the int64 ``idx`` array (8 int64 = one 64-byte cache line apart).
WRITE = 0
READ = 8
OVERRUNS = 16
UNDERRUNS = 24
IDX_SIZE = 32


def _element_pointer(context: Any, builder: ir.IRBuilder, arr_ty: Any, arr: Any, i_ty: Any, i: Any) -> Any:
    ary = context.make_array(arr_ty)(context, builder, arr)
    index = context.cast(builder, i, i_ty, types.intp)
    return cgutils.get_item_pointer(context, builder, arr_ty, ary, [index], wraparound=False)


def _is_int64_vector(arr: Any) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


@intrinsic
def _load_acquire(typingctx: Any, arr: Any, i: Any) -> Any:
    """Atomic load-acquire of ``arr[i]`` (int64, 1-d); no bounds check."""
    if not (_is_int64_vector(arr) and isinstance(i, types.Integer)):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return types.int64(arr, i), codegen


@intrinsic
def _store_release(typingctx: Any, arr: Any, i: Any, value: Any) -> Any:
    """Atomic store-release ``arr[i] = value`` (int64, 1-d); no bounds check."""
    if not (_is_int64_vector(arr) and isinstance(i, types.Integer) and isinstance(value, types.Integer)):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, ordering="release", align=8)
        return context.get_dummy_value()

    return types.none(arr, i, value), codegen


# Explicit signatures: the raw kernels take only C-contiguous arrays of the right dtype and rank (the
# dispatcher raises TypeError otherwise, at no extra cost), which also lets them copy flat memory.
_F32_2D = types.Array(types.float32, 2, "C")
_F32_2D_RO = types.Array(types.float32, 2, "C", readonly=True)
_I64_1D = types.Array(types.int64, 1, "C")


@njit(
    [types.int64(_F32_2D, _I64_1D, _F32_2D), types.int64(_F32_2D, _I64_1D, _F32_2D_RO)],
    nogil=True,
    cache=True,
)
def ring_write(buf: np.ndarray, idx: np.ndarray, block: np.ndarray) -> int:
    """Write as many frames of ``block`` as fit; producer side only.

    Args:
        buf: ring storage, ``(capacity, channels)`` float32, C-contiguous, capacity a power of two.
        idx: ring indices, ``(IDX_SIZE,)`` int64.
        block: ``(frames, channels)`` float32, C-contiguous.

    Returns:
        Frames written. Frames that did not fit are dropped (never overwriting unread frames) and
        added to ``idx[OVERRUNS]``. -1 (nothing written) if ``block`` has a different channel count.
    """
    capacity, channels = buf.shape
    if block.shape[1] != channels:
        return -1
    n = block.shape[0]
    w = idx[WRITE]  # only this side stores it: a plain load is exact
    r = _load_acquire(idx, READ)
    free = capacity - (w - r)
    k = n if n < free else free
    start = w & (capacity - 1)
    first = min(k, capacity - start)
    dst = buf.reshape(capacity * channels)  # views of the contiguous memory, no copy
    src = block.reshape(n * channels)
    offset = start * channels
    m = first * channels
    for j in range(m):
        dst[offset + j] = src[j]
    for j in range((k - first) * channels):
        dst[j] = src[m + j]
    _store_release(idx, WRITE, w + k)
    if k < n:
        _store_release(idx, OVERRUNS, idx[OVERRUNS] + (n - k))
    return k


@njit(types.int64(_F32_2D, _I64_1D, _F32_2D), nogil=True, cache=True)
def ring_read(buf: np.ndarray, idx: np.ndarray, out: np.ndarray) -> int:
    """Fill ``out`` from the ring; consumer side only.

    Args:
        buf: ring storage, ``(capacity, channels)`` float32, C-contiguous.
        idx: ring indices, ``(IDX_SIZE,)`` int64.
        out: ``(frames, channels)`` float32, C-contiguous, writeable; filled in place.

    Returns:
        Frames really read. The missing tail of ``out`` is zero-filled and its length added to
        ``idx[UNDERRUNS]``. -1 (nothing read) if ``out`` has a different channel count.
    """
    capacity, channels = buf.shape
    if out.shape[1] != channels:
        return -1
    n = out.shape[0]
    r = idx[READ]  # only this side stores it
    w = _load_acquire(idx, WRITE)
    avail = w - r
    k = n if n < avail else avail
    start = r & (capacity - 1)
    first = min(k, capacity - start)
    src = buf.reshape(capacity * channels)
    dst = out.reshape(n * channels)
    offset = start * channels
    m = first * channels
    for j in range(m):
        dst[j] = src[offset + j]
    for j in range((k - first) * channels):
        dst[m + j] = src[j]
    for j in range(k * channels, n * channels):
        dst[j] = 0.0
    _store_release(idx, READ, r + k)
    if k < n:
        _store_release(idx, UNDERRUNS, idx[UNDERRUNS] + (n - k))
    return k


@njit(types.int64(_I64_1D), nogil=True, cache=True)
def ring_readable(idx: np.ndarray) -> int:
    """Frames available to read (exact on the consumer side, a lower bound elsewhere)."""
    w = _load_acquire(idx, WRITE)
    r = _load_acquire(idx, READ)
    return w - r


@njit(types.int64(_F32_2D, _I64_1D), nogil=True, cache=True)
def ring_writable(buf: np.ndarray, idx: np.ndarray) -> int:
    """Frames that can be written without overrun (exact on the producer side, a lower bound elsewhere)."""
    r = _load_acquire(idx, READ)
    w = _load_acquire(idx, WRITE)
    return buf.shape[0] - (w - r)


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


class RingBuffer:
    """Single-producer / single-consumer multichannel float32 ring, lock-free and preallocated.

    One thread may call :meth:`write` while another calls :meth:`read`, with no lock; both are
    wait-free and allocate nothing. The raw arrays :attr:`buf` and :attr:`idx` can be handed to Numba
    code (``ring_write`` / ``ring_read``), e.g. a ``cfunc`` audio callback.

    Args:
        channels: number of channels, >= 1.
        capacity: requested capacity in frames, >= 1; **rounded up** to the next power of two (the
            actual value is :attr:`capacity`).

    Raises:
        ValueError: if ``channels`` or ``capacity`` is not a positive integer.
    """

    __slots__ = ("buf", "capacity", "channels", "idx")

    def __init__(self, channels: int, capacity: int) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int | np.integer) or channels < 1:
            raise ValueError(f"RingBuffer: channels must be an integer >= 1, got {channels!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int | np.integer) or capacity < 1:
            raise ValueError(f"RingBuffer: capacity must be an integer >= 1 (frames), got {capacity!r}")
        self.channels: int = int(channels)
        self.capacity: int = _next_pow2(int(capacity))
        self.buf: np.ndarray = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self.idx: np.ndarray = np.zeros(IDX_SIZE, dtype=np.int64)

    def _error(self, arr: object, name: str) -> ValueError:
        # Only on the error path: describe what was given and what is accepted.
        got = f"{type(arr).__name__}"
        if isinstance(arr, np.ndarray):
            got += f" with shape {arr.shape}, dtype {arr.dtype}"
            if not arr.flags.c_contiguous:
                got += ", not C-contiguous"
            if name == "read" and not arr.flags.writeable:
                got += ", not writeable"
        return ValueError(
            f"RingBuffer.{name}: expected a C-contiguous{' writeable' if name == 'read' else ''} float32 "
            f"numpy array of shape (frames, {self.channels}), got {got}"
        )

    def write(self, block: np.ndarray) -> int:
        """Write frames; producer thread only.

        Args:
            block: ``(frames, channels)`` float32, C-contiguous (sounddevice's ``indata`` layout).

        Returns:
            Frames written; the rest (if the ring is full) is dropped and counted in :attr:`overruns`.

        Raises:
            ValueError: on a wrong type, dtype, ndim, channel count or memory layout.
        """
        try:  # the kernel's signature checks type, dtype, rank and layout; it checks the channels
            k = ring_write(self.buf, self.idx, block)
        except TypeError:
            k = -1
        if k < 0:
            raise self._error(block, "write")
        return k

    def read(self, out: np.ndarray) -> int:
        """Read frames into ``out``; consumer thread only.

        Args:
            out: ``(frames, channels)`` float32, C-contiguous, filled in place; the part that could not
                be read is zero-filled and counted in :attr:`underruns`.

        Returns:
            Frames really read.

        Raises:
            ValueError: on a wrong type, dtype, ndim, channel count, memory layout or a read-only ``out``.
        """
        try:
            k = ring_read(self.buf, self.idx, out)
        except TypeError:
            k = -1
        if k < 0:
            raise self._error(out, "read")
        return k

    @property
    def readable(self) -> int:
        """Frames available to read (exact for the consumer; a lower bound for others)."""
        idx = self.idx
        return int(idx[WRITE] - idx[READ])

    @property
    def written(self) -> int:
        """Frames written since construction/reset (exact for the producer; a lower bound for others)."""
        return int(self.idx[WRITE])

    @property
    def writable(self) -> int:
        """Frames that fit without overrun (exact for the producer; a lower bound for others)."""
        idx = self.idx
        return self.capacity - int(idx[WRITE] - idx[READ])

    @property
    def overruns(self) -> int:
        """Frames dropped by :meth:`write` because the ring was full, since construction/reset."""
        return int(self.idx[OVERRUNS])

    @property
    def underruns(self) -> int:
        """Frames zero-filled by :meth:`read` because the ring was empty, since construction/reset."""
        return int(self.idx[UNDERRUNS])

    def reset(self) -> None:
        """Empty the ring and zero the counters. Not thread-safe: only while neither side runs."""
        self.idx[:] = 0

    def __repr__(self) -> str:
        return (
            f"RingBuffer(channels={self.channels}, capacity={self.capacity}, readable={self.readable}, "
            f"overruns={self.overruns}, underruns={self.underruns})"
        )
