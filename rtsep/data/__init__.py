"""Training data rendered on this machine: random multitrack songs (FluidSynth + Festival) and
two-speaker speech mixtures (Festival + espeak-ng), cached on disk one folder per item.

>>> from rtsep.data import render_dataset
>>> render_dataset("data/songs", split="train", songs=4, seconds=10)  # doctest: +SKIP
"""

from rtsep.data.fluid import HELDOUT_FAMILY, find_soundfonts, fluidsynth_available
from rtsep.data.singing import espeak_available, festival_available
from rtsep.data.songs import SPLITS, STEMS, check_sum, list_songs, render_dataset, render_song, song_seed

__all__ = [
    "HELDOUT_FAMILY",
    "SPLITS",
    "STEMS",
    "check_sum",
    "espeak_available",
    "festival_available",
    "find_soundfonts",
    "fluidsynth_available",
    "list_songs",
    "render_dataset",
    "render_song",
    "song_seed",
]
