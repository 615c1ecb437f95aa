"""Stars and galaxies before they meet the flow: schema, suites, synthetic truth, NIHAO reader."""

from . import schema

__all__ = ["schema"]
