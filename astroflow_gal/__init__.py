"""astroflow_gal: learned extended distribution functions of galaxies (GalacticFlow)."""

__version__ = "0.1.0"
