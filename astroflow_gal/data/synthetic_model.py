"""Closed-form factors of the synthetic eDF: one galaxy component and one galaxy (a mixture).

Every density here works on plain float64 arrays in the schema's units, with the ten star
columns in schema order ``x y z`` [kpc], ``vx vy vz`` [km/s], ``Z`` [1], ``feh ofe`` [dex],
``age`` [Gyr]. A component's density (without the shared metallicity factor) is

    p_k = p_pos,k(x) p_vel,k(v | x) p_age,k(t) p_feh,k([Fe/H] | t, x) p_ofe,k([O/Fe] | [Fe/H], t)

and a galaxy's eDF is ``p_Z(Z | [Fe/H], [O/Fe]) * sum_k w_k p_k``; ``docs/synthetic.md`` gives
every formula. Each factor is a normalised density in its own variable, so the product and the
mixture are normalised over the ten-dimensional space. Gradients are analytic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .schema import SOLAR_Z, T_UNIVERSE_GYR

__all__ = [
    "T_UNIVERSE",
    "Z_SUN",
    "COMPONENT_NAMES",
    "Component",
    "SyntheticGalaxy",
    "log_disc_position",
    "log_spheroid_position",
    "log_velocity",
    "log_age",
    "log_feh",
    "log_ofe",
    "log_metallicity",
]

T_UNIVERSE = T_UNIVERSE_GYR
"""Age of the universe [Gyr]: the upper bound of stellar ages (the schema's ``T_UNIVERSE_GYR``)."""
Z_SUN = SOLAR_Z
"""Solar metal mass fraction, :data:`astroflow_gal.data.schema.SOLAR_Z` (Asplund et al. 2009)."""
ALPHA_WEIGHT = 0.638
"""Weight of the alpha elements in the total-metallicity relation of Salaris et al. (1993)."""
COMPONENT_NAMES = ("thin", "thick", "spheroid")
N_COLUMNS = 10
_LOG_2PI = math.log(2.0 * math.pi)
_LN10 = math.log(10.0)
_TINY = 1e-100  # radii below this are treated as this (avoids overflow on the axis)
# column indices in schema order
IX, IY, IZ, IVX, IVY, IVZ, IMET, IFEH, IOFE, IAGE = range(N_COLUMNS)


def _std_normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _log_sech(u: np.ndarray) -> np.ndarray:
    a = np.abs(u)
    return math.log(2.0) - a - np.log1p(np.exp(-2.0 * a))


# --------------------------------------------------------------------------------------------
# single factors (used by Component and tested one by one)
# --------------------------------------------------------------------------------------------


def log_disc_position(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, scale_length: float, scale_height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exponential-sech^2 disc: ``exp(-R/R_d) / (2 pi R_d^2) * sech^2(z/h) / (2 h)``.

    Parameters
    ----------
    x, y, z : numpy.ndarray
        Positions [kpc].
    scale_length : float
        Radial scale length ``R_d`` [kpc].
    scale_height : float
        Vertical scale ``h`` [kpc] of the sech^2 profile.

    Returns
    -------
    logp : numpy.ndarray
        Natural log of the density [1/kpc3].
    grad : numpy.ndarray, shape (N, 3)
        Its gradient with respect to ``(x, y, z)`` [1/kpc].
    """
    rd, h = scale_length, scale_height
    r = np.hypot(x, y)
    logp = -r / rd - math.log(2.0 * math.pi * rd * rd) + 2.0 * _log_sech(z / h) - math.log(2.0 * h)
    inv = 1.0 / (np.maximum(r, _TINY) * rd)
    grad = np.stack([-x * inv, -y * inv, -2.0 * np.tanh(z / h) / h], axis=-1)
    return logp, grad


def log_spheroid_position(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    scale: float,
    flattening: float,
    truncation: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Flattened Hernquist spheroid: ``a / (2 pi s (s + a)^3) / q`` with ``s^2 = R^2 + (z/q)^2``.

    The flattening is the linear map ``z -> q z`` applied to a spherical Hernquist profile;
    ``1/q`` is its Jacobian. With a truncation ``s_max > 0`` the density is zero for
    ``s > s_max`` and divided by the enclosed fraction ``M(s_max) = s_max^2 / (s_max + a)^2``.

    Parameters
    ----------
    x, y, z : numpy.ndarray
        Positions [kpc].
    scale : float
        Hernquist scale radius ``a`` [kpc].
    flattening : float
        Axis ratio ``q`` (dimensionless, 1 = spherical).
    truncation : float
        Ellipsoidal truncation radius ``s_max`` [kpc]; 0 means none (pure Hernquist).

    Returns
    -------
    logp : numpy.ndarray
        Natural log of the density [1/kpc3]; ``-inf`` beyond the truncation.
    grad : numpy.ndarray, shape (N, 3)
        Its gradient with respect to ``(x, y, z)`` [1/kpc].
    """
    a, q = scale, flattening
    zq = z / q
    s = np.sqrt(x * x + y * y + zq * zq)
    s_safe = np.maximum(s, _TINY)
    logp = math.log(a / (2.0 * math.pi * q)) - np.log(s_safe) - 3.0 * np.log(s + a)
    if truncation > 0:
        logp = np.where(
            s <= truncation, logp - 2.0 * math.log(truncation / (truncation + a)), -np.inf
        )
    dlds = -1.0 / s_safe - 3.0 / (s + a)
    c = dlds / s_safe
    grad = np.stack([c * x, c * y, c * zq / q], axis=-1)
    return logp, grad


def log_age(
    age: np.ndarray, mean: float, sigma: float, t_max: float = T_UNIVERSE
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian in age truncated to ``[0, t_max]``, with its normalisation.

    Parameters
    ----------
    age : numpy.ndarray
        Stellar ages [Gyr].
    mean, sigma : float
        Mean and width of the untruncated Gaussian [Gyr].
    t_max : float
        Upper bound [Gyr] (the age of the universe).

    Returns
    -------
    logp : numpy.ndarray
        Log density [1/Gyr]; ``-inf`` outside ``[0, t_max]``.
    dlogp : numpy.ndarray
        Its derivative [1/Gyr] inside the support (the one-sided limit at the bounds).
    """
    mass = _std_normal_cdf((t_max - mean) / sigma) - _std_normal_cdf(-mean / sigma)
    u = (age - mean) / sigma
    logp = -0.5 * u * u - math.log(sigma) - 0.5 * _LOG_2PI - math.log(mass)
    inside = (age >= 0.0) & (age <= t_max)
    logp = np.where(inside, logp, -np.inf)
    return logp, -u / sigma


def _gauss(value: np.ndarray, mean: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    u = (value - mean) / sigma
    return -0.5 * u * u - math.log(sigma) - 0.5 * _LOG_2PI, u / sigma


def metallicity_relation(feh: np.ndarray, ofe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean log10 Z of stars with [Fe/H] and [O/Fe] (Salaris et al. 1993 form).

    ``m = log10 Z_sun + [Fe/H] + log10(0.638 * 10^[O/Fe] + 0.362)``.

    Returns
    -------
    m : numpy.ndarray
        Mean of log10 Z.
    dm_dofe : numpy.ndarray
        Its derivative with respect to [O/Fe] (the derivative in [Fe/H] is 1).
    """
    fa = ALPHA_WEIGHT * 10.0**ofe
    denom = fa + (1.0 - ALPHA_WEIGHT)
    return math.log10(Z_SUN) + feh + np.log10(denom), fa / denom


def log_metallicity(
    metal: np.ndarray, feh: np.ndarray, ofe: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log-normal Z around the relation in [Fe/H] and [O/Fe]: ``N(log10 Z; m, s) / (Z ln 10)``.

    Parameters
    ----------
    metal : numpy.ndarray
        Metal mass fraction Z (dimensionless).
    feh, ofe : numpy.ndarray
        [Fe/H] and [O/Fe] [dex].
    sigma : float
        Scatter ``s`` of log10 Z [dex].

    Returns
    -------
    logp : numpy.ndarray
        Log density in Z (dimensionless); ``-inf`` for ``Z <= 0``.
    grad : numpy.ndarray, shape (N, 3)
        Gradient with respect to ``(Z, [Fe/H], [O/Fe])``.
    """
    positive = metal > 0
    zs = np.where(positive, metal, 1.0)
    logz = np.log10(zs)
    m, dm = metallicity_relation(feh, ofe)
    g, score = _gauss(logz, m, sigma)
    logp = np.where(positive, g - np.log(zs) - math.log(_LN10), -np.inf)
    grad = np.stack([(-score / _LN10 - 1.0) / zs, score, score * dm], axis=-1)
    return logp, grad


# --------------------------------------------------------------------------------------------
# one component
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """Parameters of one stellar component (thin disc, thick disc or spheroid) of a galaxy.

    Attributes
    ----------
    name : str
        ``"thin"``, ``"thick"`` or ``"spheroid"``.
    kind : str
        ``"disc"`` (exponential-sech^2) or ``"spheroid"`` (flattened Hernquist).
    weight : float
        Mass fraction of the component (the weights of a galaxy sum to 1).
    scale_length : float
        Disc scale length ``R_d`` or Hernquist scale ``a`` [kpc].
    scale_height : float
        Disc sech^2 scale ``h`` [kpc]; unused (0) for a spheroid.
    flattening : float
        Spheroid axis ratio ``q``; 1 for a disc (unused).
    v_rot : float
        Asymptotic mean rotation speed ``V`` [km/s]; mean ``v_phi = V R / sqrt(R^2 + R_t^2)``.
    r_turn : float
        Turnover radius ``R_t`` of the mean rotation [kpc].
    sigma_r : float
        Central radial velocity dispersion [km/s].
    sigma_z_ratio : float
        ``sigma_z / sigma_R`` (constant).
    anisotropy : float
        ``sigma_phi / sigma_R`` far from the axis; it tends to 1 on the axis (``R -> 0``).
    sigma_scale : float
        Scale [kpc] of the decline of the dispersions with radius.
    age_mean, age_sigma : float
        Mean and width [Gyr] of the Gaussian age distribution before truncation to
        ``[0, T_UNIVERSE]``.
    feh_mean : float
        Mean [Fe/H] [dex] at ``age = age_mean`` in the centre.
    feh_age_slope : float
        Decrease of mean [Fe/H] per Gyr of age [dex/Gyr].
    feh_gradient : float
        Decrease of mean [Fe/H] per unit of ``ln sqrt(1 + r^2 / chem_scale^2)`` [dex] (a smooth
        gradient, linear in r^2 near the centre and logarithmic far out).
    feh_sigma : float
        Scatter of [Fe/H] [dex].
    ofe_mean : float
        Mean [O/Fe] [dex] at ``age = age_mean``, ``[Fe/H] = feh_mean``.
    ofe_age_slope : float
        Increase of mean [O/Fe] per Gyr of age [dex/Gyr].
    ofe_feh_slope : float
        Decrease of mean [O/Fe] per dex of [Fe/H] above ``feh_mean``.
    ofe_sigma : float
        Scatter of [O/Fe] [dex].
    chem_scale : float
        Radial scale ``L`` [kpc] of the metallicity gradient.
    truncation : float
        Spheroid only: ellipsoidal radius ``s_max`` [kpc] beyond which the density is zero
        (with the exact renormalisation); 0 means an untruncated Hernquist profile.
    """

    name: str
    kind: str
    weight: float
    scale_length: float
    scale_height: float
    flattening: float
    v_rot: float
    r_turn: float
    sigma_r: float
    sigma_z_ratio: float
    anisotropy: float
    sigma_scale: float
    age_mean: float
    age_sigma: float
    feh_mean: float
    feh_age_slope: float
    feh_gradient: float
    feh_sigma: float
    ofe_mean: float
    ofe_age_slope: float
    ofe_feh_slope: float
    ofe_sigma: float
    chem_scale: float
    truncation: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("disc", "spheroid"):
            raise ValueError(f"component {self.name!r}: kind must be 'disc' or 'spheroid'")
        positive = (
            "scale_length", "r_turn", "sigma_r", "sigma_z_ratio", "anisotropy", "sigma_scale",
            "age_sigma", "feh_sigma", "ofe_sigma", "chem_scale", "flattening",
        )
        for key in positive:
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"component {self.name!r}: {key} must be positive, got {value}")
        if self.kind == "disc" and not self.scale_height > 0:
            raise ValueError(f"component {self.name!r}: a disc needs scale_height > 0")
        if not (math.isfinite(self.truncation) and self.truncation >= 0):
            raise ValueError(f"component {self.name!r}: truncation must be >= 0 (0 = none)")
        if self.kind == "disc" and self.truncation != 0:
            raise ValueError(f"component {self.name!r}: only a spheroid can be truncated")
        if not 0 <= self.weight <= 1:
            raise ValueError(f"component {self.name!r}: weight must be in [0, 1]")

    # --- pieces of the model -----------------------------------------------------------------

    def _dispersion_profile(self, x, y, z):
        """log of the common radial decline of the dispersions and its gradient in (x, y, z)."""
        L = self.sigma_scale
        if self.kind == "disc":
            d = 4.0 * L * L + x * x + y * y
            ell = -0.5 * np.log(d / (4.0 * L * L))
            c = -1.0 / d
            grad = np.stack([c * x, c * y, np.zeros_like(z)], axis=-1)
        else:
            d = L * L + x * x + y * y + z * z
            ell = -0.25 * np.log(d / (L * L))
            c = -0.5 / d
            grad = np.stack([c * x, c * y, c * z], axis=-1)
        return ell, grad

    def _anisotropy(self, r2):
        """log of sigma_phi/sigma_R at cylindrical R^2 and its derivative in R^2."""
        L2 = self.scale_length**2
        alpha = self.anisotropy
        k = alpha + (1.0 - alpha) * L2 / (r2 + L2)
        dk_dr2 = -(1.0 - alpha) * L2 / (r2 + L2) ** 2
        return np.log(k), dk_dr2 / k

    def _mean_rotation(self, r):
        """Mean v_phi at cylindrical R and its derivative in R."""
        rt2 = self.r_turn**2
        root = np.sqrt(r * r + rt2)
        return self.v_rot * r / root, self.v_rot * rt2 / root**3

    def velocity_moments(self, x, y, z):
        """Mean v_phi [km/s] and (sigma_R, sigma_phi, sigma_z) [km/s] at positions [kpc]."""
        r2 = x * x + y * y
        ell, _ = self._dispersion_profile(x, y, z)
        log_k, _ = self._anisotropy(r2)
        sig_r = self.sigma_r * np.exp(ell)
        mean, _ = self._mean_rotation(np.sqrt(r2))
        return mean, sig_r, sig_r * np.exp(log_k), sig_r * self.sigma_z_ratio

    def _position(self, x, y, z):
        if self.kind == "disc":
            return log_disc_position(x, y, z, self.scale_length, self.scale_height)
        return log_spheroid_position(
            x, y, z, self.scale_length, self.flattening, self.truncation
        )

    def _velocity(self, pos, vel):
        return log_velocity(pos, vel, self)

    def _feh_mean(self, x, y, z, age):
        L2 = self.chem_scale**2
        d = L2 + x * x + y * y + z * z
        rho = 0.5 * np.log(d / L2)
        mean = self.feh_mean - self.feh_age_slope * (age - self.age_mean) - self.feh_gradient * rho
        c = -self.feh_gradient / d
        return mean, np.stack([c * x, c * y, c * z], axis=-1)

    # --- density -------------------------------------------------------------------------------

    def log_prob_grad(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log density of the component without the metallicity factor, and its gradient.

        Parameters
        ----------
        values : numpy.ndarray, shape (N, 10)
            Stars in schema units and order.

        Returns
        -------
        logp : numpy.ndarray, shape (N,)
            ``log p_k`` (the weight not included) in 1/(kpc3 (km/s)3 dex2 Gyr); ``-inf`` for ages
            outside ``[0, T_UNIVERSE]``.
        grad : numpy.ndarray, shape (N, 10)
            Gradient of ``log p_k`` (column ``Z`` is 0: the Z factor is shared and separate).
        """
        x, y, z = values[:, IX], values[:, IY], values[:, IZ]
        feh, ofe, age = values[:, IFEH], values[:, IOFE], values[:, IAGE]
        grad = np.zeros_like(values)
        lp_pos, g_pos = self._position(x, y, z)
        lp_vel, g_vel = self._velocity(values[:, :3], values[:, 3:6])
        lp_age, g_age = log_age(age, self.age_mean, self.age_sigma)
        m_feh, dm_feh_dx = self._feh_mean(x, y, z, age)
        lp_feh, s_feh = _gauss(feh, m_feh, self.feh_sigma)
        m_ofe = (
            self.ofe_mean
            + self.ofe_age_slope * (age - self.age_mean)
            - self.ofe_feh_slope * (feh - self.feh_mean)
        )
        lp_ofe, s_ofe = _gauss(ofe, m_ofe, self.ofe_sigma)
        grad[:, :3] = g_pos + g_vel[:, :3] + s_feh[:, None] * dm_feh_dx
        grad[:, 3:6] = g_vel[:, 3:]
        grad[:, IFEH] = -s_feh - s_ofe * self.ofe_feh_slope
        grad[:, IOFE] = -s_ofe
        grad[:, IAGE] = g_age - s_feh * self.feh_age_slope + s_ofe * self.ofe_age_slope
        return lp_pos + lp_vel + lp_age + lp_feh + lp_ofe, grad

    def log_position(self, values: np.ndarray) -> np.ndarray:
        """Log of the position factor [1/kpc3] at ``values[:, :3]`` [kpc]."""
        return self._position(values[:, IX], values[:, IY], values[:, IZ])[0]

    def log_phase_space(self, values: np.ndarray) -> np.ndarray:
        """Log of position times velocity factor [1/(kpc3 (km/s)3)] at ``values[:, :6]``."""
        return self.log_position(values) + self._velocity(values[:, :3], values[:, 3:6])[0]

    # --- sampling ------------------------------------------------------------------------------

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` stars of this component (column ``Z`` left at 0).

        Parameters
        ----------
        n : int
            Number of stars.
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        numpy.ndarray, shape (n, 10)
            Stars in schema units and order.
        """
        out = np.zeros((n, N_COLUMNS))
        if n == 0:
            return out
        phi = rng.uniform(0.0, 2.0 * math.pi, n)
        if self.kind == "disc":
            r = rng.gamma(2.0, self.scale_length, n)
            u = _open_uniform(rng, n)
            z = self.scale_height * np.arctanh(2.0 * u - 1.0)
        else:
            u = _open_uniform(rng, n)
            if self.truncation > 0:
                u = u * (self.truncation / (self.truncation + self.scale_length)) ** 2
            sq = np.sqrt(u)
            rad = self.scale_length * sq / (1.0 - sq)
            cos_t = rng.uniform(-1.0, 1.0, n)
            r = rad * np.sqrt(1.0 - cos_t * cos_t)
            z = self.flattening * rad * cos_t
        cphi, sphi = np.cos(phi), np.sin(phi)
        x, y = r * cphi, r * sphi
        mean, sig_r, sig_phi, sig_z = self.velocity_moments(x, y, z)
        v_r = sig_r * rng.standard_normal(n)
        v_phi = mean + sig_phi * rng.standard_normal(n)
        out[:, IX], out[:, IY], out[:, IZ] = x, y, z
        out[:, IVX] = v_r * cphi - v_phi * sphi
        out[:, IVY] = v_r * sphi + v_phi * cphi
        out[:, IVZ] = sig_z * rng.standard_normal(n)
        age = sample_truncated_normal(self.age_mean, self.age_sigma, n, rng)
        m_feh, _ = self._feh_mean(x, y, z, age)
        feh = m_feh + self.feh_sigma * rng.standard_normal(n)
        m_ofe = (
            self.ofe_mean
            + self.ofe_age_slope * (age - self.age_mean)
            - self.ofe_feh_slope * (feh - self.feh_mean)
        )
        out[:, IOFE] = m_ofe + self.ofe_sigma * rng.standard_normal(n)
        out[:, IFEH] = feh
        out[:, IAGE] = age
        return out


def log_velocity(
    pos: np.ndarray, vel: np.ndarray, comp: Component
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian velocity factor ``p(v | x)`` of a component and its gradient in ``(x, v)``.

    The Gaussian is diagonal in cylindrical ``(v_R, v_phi, v_z)`` with mean ``(0, vbar(R), 0)``;
    the rotation to Cartesian through ``phi`` has Jacobian 1.

    Parameters
    ----------
    pos : numpy.ndarray, shape (N, 3)
        Positions [kpc].
    vel : numpy.ndarray, shape (N, 3)
        Velocities [km/s].
    comp : Component
        The component's parameters.

    Returns
    -------
    logp : numpy.ndarray
        Log density [1/(km/s)3].
    grad : numpy.ndarray, shape (N, 6)
        Gradient with respect to ``(x, y, z, vx, vy, vz)``.
    """
    x, y, z = pos[:, 0], pos[:, 1], pos[:, 2]
    vx, vy, vz = vel[:, 0], vel[:, 1], vel[:, 2]
    r2 = x * x + y * y
    r = np.sqrt(r2)
    r_safe = np.maximum(r, _TINY)
    on_axis = r == 0
    c = np.where(on_axis, 1.0, x / r_safe)
    s = np.where(on_axis, 0.0, y / r_safe)
    v_r = vx * c + vy * s
    v_phi = -vx * s + vy * c
    ell, g_ell = comp._dispersion_profile(x, y, z)
    log_k, dlogk_dr2 = comp._anisotropy(r2)
    mean, dmean_dr = comp._mean_rotation(r)
    sig_r = comp.sigma_r * np.exp(ell)
    sig_phi = sig_r * np.exp(log_k)
    sig_z = sig_r * comp.sigma_z_ratio
    u_r, u_phi, u_z = v_r / sig_r, (v_phi - mean) / sig_phi, vz / sig_z
    log_norm = math.log(comp.sigma_r**3 * comp.sigma_z_ratio) + 1.5 * _LOG_2PI
    logp = -0.5 * (u_r**2 + u_phi**2 + u_z**2) - 3.0 * ell - log_k - log_norm
    grad = np.empty((len(x), 6))
    a_r, a_phi = u_r / sig_r, u_phi / sig_phi
    grad[:, 3] = -a_r * c + a_phi * s
    grad[:, 4] = -a_r * s - a_phi * c
    grad[:, 5] = -u_z / sig_z
    # d/dx of the cylindrical components: dv_R/dx = -(y/R^2) v_phi, dv_phi/dx = (y/R^2) v_R, ...
    inv_r2 = 1.0 / (r_safe * r_safe)
    quad = u_r**2 + u_phi**2 + u_z**2 - 3.0
    dm_over_r = dmean_dr / r_safe
    gx = -a_r * (-y * inv_r2 * v_phi) - a_phi * (y * inv_r2 * v_r - dm_over_r * x)
    gy = -a_r * (x * inv_r2 * v_phi) - a_phi * (-x * inv_r2 * v_r - dm_over_r * y)
    # anisotropy term: d log sigma_phi / d x = d log k / d R^2 * 2x
    aniso = (u_phi**2 - 1.0) * dlogk_dr2 * 2.0
    grad[:, 0] = gx + quad * g_ell[:, 0] + aniso * x
    grad[:, 1] = gy + quad * g_ell[:, 1] + aniso * y
    grad[:, 2] = quad * g_ell[:, 2]
    return logp, grad


def log_feh(values: np.ndarray, comp: Component) -> np.ndarray:
    """Log of the [Fe/H] factor ``N([Fe/H]; mean(age, r), sigma)`` [1/dex] of a component."""
    m, _ = comp._feh_mean(values[:, IX], values[:, IY], values[:, IZ], values[:, IAGE])
    return _gauss(values[:, IFEH], m, comp.feh_sigma)[0]


def log_ofe(values: np.ndarray, comp: Component) -> np.ndarray:
    """Log of the [O/Fe] factor ``N([O/Fe]; mean(age, [Fe/H]), sigma)`` [1/dex] of a component."""
    age, feh = values[:, IAGE], values[:, IFEH]
    m = (
        comp.ofe_mean
        + comp.ofe_age_slope * (age - comp.age_mean)
        - comp.ofe_feh_slope * (feh - comp.feh_mean)
    )
    return _gauss(values[:, IOFE], m, comp.ofe_sigma)[0]


def _open_uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform numbers strictly inside (0, 1)."""
    u = rng.random(n)
    return np.where(u > 0.0, u, 0.5)


def sample_truncated_normal(
    mean: float, sigma: float, n: int, rng: np.random.Generator, t_max: float = T_UNIVERSE
) -> np.ndarray:
    """Draw ``n`` values of a Gaussian truncated to ``[0, t_max]`` by rejection.

    Parameters
    ----------
    mean, sigma : float
        Mean and width of the untruncated Gaussian [Gyr].
    n : int
        Number of draws.
    rng : numpy.random.Generator
        Source of randomness.
    t_max : float
        Upper bound [Gyr].

    Returns
    -------
    numpy.ndarray
        Draws in ``[0, t_max]`` [Gyr].
    """
    accept = _std_normal_cdf((t_max - mean) / sigma) - _std_normal_cdf(-mean / sigma)
    if accept < 1e-3:
        raise ValueError(
            f"truncated normal (mean {mean}, sigma {sigma}) has too little mass in [0, {t_max}]"
        )
    out = np.empty(n)
    filled = 0
    while filled < n:
        need = n - filled
        draw = mean + sigma * rng.standard_normal(int(need / accept * 1.1) + 16)
        draw = draw[(draw >= 0.0) & (draw <= t_max)][:need]
        out[filled : filled + draw.size] = draw
        filled += draw.size
    return out


# --------------------------------------------------------------------------------------------
# one galaxy: mixture of components times the shared metallicity factor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticGalaxy:
    """Exact parameters of one synthetic galaxy.

    Attributes
    ----------
    id : str
        Galaxy id in the suite.
    log_mstar : float
        log10 of the stellar mass [Msun].
    n_stars : int
        Number of star particles drawn for the suite.
    v_circ : float
        Characteristic rotation speed [km/s] (Tully-Fisher-like relation).
    disc_scale_length : float
        Thin-disc scale length [kpc] (mass-size relation).
    formation_shift : float
        Per-galaxy shift of all mean ages [Gyr] (earlier formation > 0).
    age_width_factor : float
        Per-galaxy factor on all age widths.
    feh_offset : float
        Per-galaxy offset from the mass-metallicity relation [dex].
    z_sigma : float
        Scatter of log10 Z around the [Fe/H]-[O/Fe] relation [dex].
    components : tuple of Component
        Thin disc, thick disc, spheroid.
    """

    id: str
    log_mstar: float
    n_stars: int
    v_circ: float
    disc_scale_length: float
    formation_shift: float
    age_width_factor: float
    feh_offset: float
    z_sigma: float
    components: tuple[Component, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError(f"galaxy {self.id!r} has no components")
        total = sum(c.weight for c in self.components)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"galaxy {self.id!r}: component weights sum to {total}, not 1")
        if not self.z_sigma > 0:
            raise ValueError(f"galaxy {self.id!r}: z_sigma must be positive")

    @property
    def stellar_mass(self) -> float:
        """Stellar mass [Msun]."""
        return 10.0**self.log_mstar

    @property
    def weights(self) -> dict[str, float]:
        """Component mass fractions by component name."""
        return {c.name: c.weight for c in self.components}

    def component(self, name: str) -> Component:
        """The component with this name."""
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(f"galaxy {self.id!r} has no component {name!r}")

    def _mixture(self, logs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """log-sum-exp of weighted component logs, and the responsibilities (N, K)."""
        stacked = np.stack(
            [lp + (math.log(c.weight) if c.weight > 0 else -np.inf)
             for lp, c in zip(logs, self.components, strict=True)],
            axis=-1,
        )
        top = np.max(stacked, axis=-1, keepdims=True)
        finite_top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(invalid="ignore"):
            ex = np.exp(stacked - finite_top)
        total = ex.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.log(total[:, 0]) + finite_top[:, 0]
            resp = ex / total
        return logp, resp

    def log_prob_grad(
        self, values: np.ndarray, need_grad: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Log of the normalised eDF and (optionally) its gradient.

        Parameters
        ----------
        values : numpy.ndarray, shape (N, 10)
            Stars in schema units and order.
        need_grad : bool
            Also return the gradient.

        Returns
        -------
        logp : numpy.ndarray, shape (N,)
            ln f in 1/(kpc3 (km/s)3 dex2 Gyr); ``-inf`` outside the support
            (``age`` outside ``[0, T_UNIVERSE]`` or ``Z <= 0``).
        grad : numpy.ndarray, shape (N, 10) or None
            Gradient of ln f in schema units; NaN outside the support.
        """
        results = [c.log_prob_grad(values) for c in self.components]
        logp, resp = self._mixture([r[0] for r in results])
        lp_z, g_z = log_metallicity(
            values[:, IMET], values[:, IFEH], values[:, IOFE], self.z_sigma
        )
        logp = logp + lp_z
        if not need_grad:
            return logp, None
        grad = np.zeros_like(values)
        for k, (_, g) in enumerate(results):
            grad += resp[:, k : k + 1] * g
        grad[:, IMET] += g_z[:, 0]
        grad[:, IFEH] += g_z[:, 1]
        grad[:, IOFE] += g_z[:, 2]
        grad[~np.isfinite(logp)] = np.nan
        return logp, grad

    def log_position(self, values: np.ndarray) -> np.ndarray:
        """Log of the position marginal [1/kpc3] (mixture of the position factors)."""
        return self._mixture([c.log_position(values) for c in self.components])[0]

    def log_phase_space(self, values: np.ndarray) -> np.ndarray:
        """Log of the phase-space marginal [1/(kpc3 (km/s)3)]."""
        return self._mixture([c.log_phase_space(values) for c in self.components])[0]

    def log_age_marginal(self, age: np.ndarray) -> np.ndarray:
        """Log of the age marginal [1/Gyr] (mixture of the truncated age factors)."""
        return self._mixture(
            [log_age(age, c.age_mean, c.age_sigma)[0] for c in self.components]
        )[0]

    def sample(
        self, n: int, rng: np.random.Generator, return_components: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` stars of this galaxy, in random order.

        Parameters
        ----------
        n : int
            Number of stars.
        rng : numpy.random.Generator
            Source of randomness.
        return_components : bool
            Also return the index of the component each star came from.

        Returns
        -------
        values : numpy.ndarray, shape (n, 10)
            Stars in schema units and order.
        components : numpy.ndarray of int, shape (n,)
            Only with ``return_components``.
        """
        weights = np.array([c.weight for c in self.components])
        counts = rng.multinomial(n, weights / weights.sum())
        parts = [c.sample(int(k), rng) for c, k in zip(self.components, counts, strict=True)]
        values = np.concatenate(parts, axis=0)
        labels = np.repeat(np.arange(len(self.components)), counts)
        m, _ = metallicity_relation(values[:, IFEH], values[:, IOFE])
        values[:, IMET] = 10.0 ** (m + self.z_sigma * rng.standard_normal(n))
        order = rng.permutation(n)
        if return_components:
            return values[order], labels[order]
        return values[order]
