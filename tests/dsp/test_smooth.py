"""Tests for rtsep.dsp.smooth: linear ramp law, step bound, chunking invariance, validation."""

from __future__ import annotations

import numpy as np
import pytest

from rtsep.dsp.smooth import GainSmoother, max_gain_step, ramp_samples


def _gains(sm: GainSmoother, frames: int, block: int = 64) -> np.ndarray:
    # The applied gain curve: process a block of ones.
    out = np.ones((frames, sm.channels), dtype=np.float64)
    for i in range(0, frames, block):
        sm.process(out[i : i + block])
    return out


def test_ramp_samples() -> None:
    assert ramp_samples(10.0, 48000) == 480
    assert ramp_samples(0.0, 48000) == 1
    assert ramp_samples(1.0, 44100) == 44


def test_linear_ramp_reaches_target_exactly() -> None:
    sm = GainSmoother(2, 48000, ramp_ms=10.0, initial=1.0)
    n = sm.ramp_samples
    sm.set_target(0.0)
    assert sm.max_step() == pytest.approx(1.0 / n)
    g = _gains(sm, 2 * n)
    expected = 1.0 - np.arange(1, n + 1) / n
    np.testing.assert_allclose(g[:n, 0], expected, atol=1e-12)
    assert np.all(g[n - 1 :] == 0.0)  # exactly the target, no tail
    assert sm.settled and sm.max_step() == 0.0


@pytest.mark.parametrize(("g0", "g1"), [(0.0, 1.0), (1.0, 0.25), (0.3, 2.0), (1.0, 1.0)])
@pytest.mark.parametrize("block", [1, 7, 128, 1000])
def test_step_never_exceeds_the_bound_and_is_block_size_invariant(g0: float, g1: float, block: int) -> None:
    sm = GainSmoother(1, 44100, ramp_ms=5.0, initial=g0)
    sm.set_target(g1)
    bound = max_gain_step(g0, g1, sm.ramp_samples)
    assert sm.max_step() == pytest.approx(bound)
    g = _gains(sm, 1000, block)[:, 0]
    steps = np.abs(np.diff(np.concatenate([[g0], g])))
    assert steps.max() <= bound + 1e-12
    ref = GainSmoother(1, 44100, ramp_ms=5.0, initial=g0)
    ref.set_target(g1)
    np.testing.assert_array_equal(g, _gains(ref, 1000, 1000)[:, 0])


def test_retarget_mid_ramp_starts_new_ramp_from_current_gain() -> None:
    sm = GainSmoother(1, 1000, ramp_ms=100.0, initial=0.0)  # 100-sample ramps
    sm.set_target(1.0)
    g = _gains(sm, 50)[:, 0]
    assert g[-1] == pytest.approx(0.5)
    sm.set_target(0.0)
    assert sm.max_step() == pytest.approx(0.5 / 100)
    g2 = _gains(sm, 150)[:, 0]
    assert np.abs(np.diff(np.concatenate([g[-1:], g2]))).max() <= 0.5 / 100 + 1e-12
    assert g2[99] == 0.0 and g2[-1] == 0.0
    sm.set_target(0.0)  # same target: no new ramp
    assert sm.settled


def test_per_channel_targets_and_float32_in_place() -> None:
    sm = GainSmoother(3, 48000, ramp_ms=1.0, initial=[1.0, 0.5, 0.0])
    sm.set_target(np.array([1.0, 0.0, 1.0]))
    x = np.ones((200, 3), dtype=np.float32)
    y = sm.process(x)
    assert y is x
    assert np.all(x[:, 0] == 1.0)
    assert x[-1, 1] == 0.0 and x[-1, 2] == 1.0
    assert x[0, 2] == pytest.approx(1.0 / 48)


def test_click_free_on_a_loud_dc_signal() -> None:
    # A mute on a full-scale signal: every sample-to-sample jump stays within the law's bound.
    sm = GainSmoother(1, 48000, ramp_ms=20.0)
    x = np.ones((48000 // 10, 1), dtype=np.float32)
    sm.set_target(0.0)
    sm.process(x)
    assert np.abs(np.diff(np.concatenate([[1.0], x[:, 0]]))).max() <= 1.0 / sm.ramp_samples + 1e-6


def test_validation() -> None:
    with pytest.raises(ValueError, match="channels"):
        GainSmoother(0, 48000)
    with pytest.raises(ValueError, match="sample_rate"):
        GainSmoother(1, 0)
    with pytest.raises(ValueError, match="ramp_ms"):
        GainSmoother(1, 48000, ramp_ms=-1.0)
    sm = GainSmoother(2, 48000)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        sm.set_target(np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        sm.set_target(float("nan"))
    with pytest.raises(ValueError, match=r"shape \(frames, 2\)"):
        sm.process(np.ones((10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="int16"):
        sm.process(np.ones((10, 2), dtype=np.int16))
