"""Stars and galaxies before they meet the flow: schema, suites, synthetic truth, NIHAO reader."""

from . import schema
from .conditions import compute_conditions
from .nihao import NihaoCuts, read_nihao
from .suite import Galaxy, GalaxySuite, NonFiniteRowsWarning, SuiteFileError

__all__ = [
    "schema",
    "compute_conditions",
    "Galaxy",
    "GalaxySuite",
    "NihaoCuts",
    "NonFiniteRowsWarning",
    "read_nihao",
    "SuiteFileError",
]
