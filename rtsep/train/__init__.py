"""Training: losses per architecture (:mod:`rtsep.train.losses`) and the loop (:mod:`rtsep.train.trainer`)."""

from rtsep.train.losses import LOSS_BY_ARCH, Objective, objective_for, pit, si_snr
from rtsep.train.trainer import TrainConfig, train

__all__ = ["LOSS_BY_ARCH", "Objective", "TrainConfig", "objective_for", "pit", "si_snr", "train"]
