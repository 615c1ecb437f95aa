"""Analysis of stars and learned eDFs: profiles, moments, Agama hand-off, metrics and figures.

Every public name is imported on first use, so ``import astroflow_gal.analysis`` stays light and
optional partners (Agama, matplotlib) are loaded only by the functions that need them.
"""

from __future__ import annotations

from .._lazy import lazy_exports

# public name -> submodule of this package that defines it
_EXPORTS: dict[str, str] = {
    # samples binned into profiles and plots
    "corner_plot": "plots",
    "profile_plot": "plots",
    "radial_profiles": "plots",
    "profiles": "binned",
    "profile_quantity": "binned",
    "edf_moments": "moments",
    # Agama hand-off and potentials
    "compare_potentials": "agama",
    "stellar_potential": "agama",
    "to_agama_density": "agama",
    "to_agama_df": "agama",
    "to_agama_particles": "agama",
    # collisionless Boltzmann equation
    "cbe_residual": "cbe",
    "rank_potentials": "cbe",
    # metrics
    "kl_to_truth": "metrics",
    "summarise_kl": "metrics",
    "wasserstein_distances": "metrics",
    # two-sample tests, evaluation and cross-validation
    "StarScaler": "two_sample",
    "linear_mmd": "two_sample",
    "kernel_mmd": "two_sample",
    "classifier_test": "two_sample",
    "evaluate": "evaluate",
    "cross_validate": "crossval",
    "comparison_corner_plot": "evaluation_plots",
    "mmd_mass_plot": "evaluation_plots",
    "metric_mass_plot": "evaluation_plots",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
