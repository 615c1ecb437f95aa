"""Stars and galaxies before they meet the flow: schema, suites, synthetic truth, NIHAO reader."""

from . import schema
from .conditions import compute_conditions
from .galaxy import Galaxy, NonFiniteRowsWarning
from .nihao import NihaoCuts
from .suite import GalaxySuite, SuiteFileError, make_synthetic_suite, read_nihao

__all__ = [
    "schema",
    "compute_conditions",
    "Galaxy",
    "GalaxySuite",
    "NihaoCuts",
    "NonFiniteRowsWarning",
    "make_synthetic_suite",
    "read_nihao",
    "SuiteFileError",
]
