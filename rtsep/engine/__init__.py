"""The processing chain and the live engine.

* :class:`Processor`: pure chain (resampling, re-blocking, model, mixer/router, limiter), no threads.
* :class:`Engine`: sounddevice stream + rings + worker thread around a Processor.
* :mod:`rtsep.engine.testmodels`: deterministic test separators (oracle band split, slow, failing).

Layering: imports ``rtsep.models`` (the contract), ``rtsep.dsp`` and sounddevice; never ``rtsep.cli``.
MIDI plugs in through the Engine's ``poller`` (an object with ``poll(mixer)``); the Processor and its
:class:`Mixer` implement the control protocol (``set_gain_db``, ``set_mute``, ... ``snapshot``).
"""

from rtsep.engine.engine import CALLBACK_KINDS, Engine, EngineConfig, Poller, find_device, list_devices
from rtsep.engine.mixer import Limiter, Mixer
from rtsep.engine.processor import Processor, ProcessorStats

__all__ = [
    "CALLBACK_KINDS",
    "Engine",
    "EngineConfig",
    "Limiter",
    "Mixer",
    "Poller",
    "Processor",
    "ProcessorStats",
    "find_device",
    "list_devices",
]
