"""Two-speaker speech mixtures: the mixture is the sum of the speakers, deterministic by seed."""

from __future__ import annotations

import numpy as np

from rtsep.data.speech import HELDOUT_VOICE, render_mixture


def test_speech_mixture(speech_renderers: None) -> None:
    a, meta = render_mixture(5, "train", seconds=2.0)
    b, _ = render_mixture(5, "train", seconds=2.0)
    assert a["mixture"].shape == (1, 32000)
    np.testing.assert_allclose(a["mixture"], a["s1"].astype(np.float64) + a["s2"], atol=1e-6)
    np.testing.assert_array_equal(a["mixture"], b["mixture"])
    assert meta["voices"][0] != meta["voices"][1] and HELDOUT_VOICE not in meta["voices"]
    _, test_meta = render_mixture(2_000_000, "test", seconds=2.0)
    assert HELDOUT_VOICE in test_meta["voices"]
