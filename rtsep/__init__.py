"""rtsep: low-latency separation of live audio into stems with neural networks."""

__version__ = "0.1.0"
