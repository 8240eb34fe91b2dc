"""Models: every recommender follows :class:`~cfbench.models.base.Recommender`."""

from cfbench.models.base import NumericalError, Recommender
from cfbench.models.ease import EASE
from cfbench.models.infinite_ae import InfiniteAE

__all__ = ["EASE", "InfiniteAE", "NumericalError", "Recommender"]
