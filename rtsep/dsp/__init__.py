"""DSP core: lock-free ring buffer, streaming STFT/iSTFT, streaming resampler, gain smoothing.

Layering: imports numpy, numba and soxr only (no torch, nothing else of rtsep).
"""

from rtsep.dsp.resample import StreamingResampler, soxr_latency
from rtsep.dsp.ring import RingBuffer, ring_read, ring_readable, ring_writable, ring_write
from rtsep.dsp.smooth import GainSmoother, apply_gain_ramp, max_gain_step, ramp_samples
from rtsep.dsp.stft import StreamingISTFT, StreamingSTFT, make_window, synthesis_window

__all__ = [
    "GainSmoother",
    "RingBuffer",
    "StreamingISTFT",
    "StreamingResampler",
    "StreamingSTFT",
    "apply_gain_ramp",
    "make_window",
    "max_gain_step",
    "ramp_samples",
    "ring_read",
    "ring_readable",
    "ring_writable",
    "ring_write",
    "soxr_latency",
    "synthesis_window",
]
