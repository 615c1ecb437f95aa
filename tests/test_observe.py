"""Mock observations: frames, rotation sense, catalogues, errors, selections, IFU maps."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import ICRS, Galactic, SkyCoord
from astropy.table import QTable

from astroflow_gal import observe
from astroflow_gal.observe import Selection, SunPosition

KMS = u.km / u.s
K_MAS = 4.740470463533348  # km/s per (kpc mas/yr)


def disc(
    n: int = 4000,
    v_c: float = 220.0,
    seed: int = 0,
    r_range: tuple[float, float] = (1.0, 16.0),
    thickness: float = 0.1,
    sigma_v: float = 0.0,
    labels: bool = True,
) -> QTable:
    """A synthetic disc rotating about +z (counter-clockwise seen from +z) at v_c."""
    rng = np.random.default_rng(seed)
    r = np.sqrt(rng.uniform(r_range[0] ** 2, r_range[1] ** 2, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    z = rng.normal(0, thickness, n)
    v = v_c + sigma_v * rng.standard_normal((3, n))
    t = QTable({
        "x": r * np.cos(phi) * u.kpc,
        "y": r * np.sin(phi) * u.kpc,
        "z": z * u.kpc,
        "vx": (-v[0] * np.sin(phi) + sigma_v * rng.standard_normal(n)) * KMS,
        "vy": v[0] * np.cos(phi) * KMS,
        "vz": (sigma_v * rng.standard_normal(n)) * KMS,
    })
    if sigma_v == 0:
        t["vx"] = -v_c * np.sin(phi) * KMS
    if labels:
        t["Z"] = rng.uniform(0.005, 0.03, n) * u.dimensionless_unscaled
        t["feh"] = rng.normal(-0.2, 0.3, n) * u.dex
        t["ofe"] = rng.normal(0.1, 0.1, n) * u.dex
        t["age"] = rng.uniform(0.5, 12, n) * u.Gyr
    t.meta["mass_per_star"] = {"value": 1e6, "unit": "solMass"}
    return t


def test_import_through_package():
    import astroflow_gal

    assert astroflow_gal.observe is observe
    assert callable(observe.survey) and callable(observe.ifu_maps)


# -- Galactocentric frame --------------------------------------------------------------------


def test_frame_parameters_explicit_and_recorded():
    sun = SunPosition(R=8.0 * u.kpc, z=25 * u.pc, azimuth=40 * u.deg,
                      velocity=[10.0, 230.0, 7.0] * KMS, roll=0.1 * u.deg)
    frame = observe.galactocentric_frame(sun)
    assert frame.galcen_distance.to_value(u.kpc) == pytest.approx(np.hypot(8.0, 0.025), 1e-14)
    assert frame.z_sun.to_value(u.pc) == pytest.approx(25.0)
    assert frame.roll.to_value(u.deg) == pytest.approx(0.1)
    np.testing.assert_allclose(frame.galcen_v_sun.xyz.to_value(KMS), [10, 230, 7])
    coord = observe.galactocentric(disc(500), sun)
    rec = coord.info.meta["frame"]
    assert rec["galcen_distance"]["value"] == pytest.approx(np.hypot(8.0, 0.025))
    assert rec["z_sun"] == {"value": 25.0, "unit": "pc"}
    assert rec["roll"]["value"] == pytest.approx(0.1)
    assert rec["galcen_v_sun"]["value"] == pytest.approx([10.0, 230.0, 7.0])
    assert coord.info.meta["sun"]["azimuth"]["value"] == pytest.approx(40.0)
    # astropy's v4.0 parameters are the default, written out
    default = observe.galactocentric_frame()
    assert default.galcen_coord.ra.to_value(u.deg) == pytest.approx(266.4051)
    np.testing.assert_allclose(default.galcen_v_sun.xyz.to_value(KMS), [12.9, 245.6, 7.78])


@pytest.mark.parametrize("azimuth", [0.0, 73.0, 200.0])
def test_round_trip_through_icrs(azimuth):
    stars = disc(2000, sigma_v=30.0, seed=1, thickness=0.5)
    sun = SunPosition(R=8.2 * u.kpc, z=20 * u.pc, azimuth=azimuth * u.deg)
    icrs = observe.galactocentric(stars, sun).transform_to(ICRS())
    # through plain ICRS spherical values, as a catalogue would hold them
    sph = SkyCoord(ra=icrs.ra, dec=icrs.dec, distance=icrs.distance,
                   pm_ra_cosdec=icrs.pm_ra_cosdec, pm_dec=icrs.pm_dec,
                   radial_velocity=icrs.radial_velocity, frame=ICRS())
    back = observe.to_galaxy_frame(sph, sun)
    pos = np.stack([stars[c].to_value(u.kpc) for c in "xyz"], 1)
    vel = np.stack([stars[c].to_value(KMS) for c in ("vx", "vy", "vz")], 1)
    pos2 = np.stack([back[c].to_value(u.kpc) for c in "xyz"], 1)
    vel2 = np.stack([back[c].to_value(KMS) for c in ("vx", "vy", "vz")], 1)
    dpos = np.linalg.norm(pos2 - pos, axis=1) / np.linalg.norm(pos, axis=1)
    dvel = np.linalg.norm(vel2 - vel, axis=1) / np.linalg.norm(vel, axis=1)
    assert dpos.max() < 1e-8 and dvel.max() < 1e-8


@pytest.mark.parametrize("azimuth", [0.0, 123.0])
def test_sun_is_where_and_moves_as_given(azimuth):
    sun = SunPosition(R=7.5 * u.kpc, z=30 * u.pc, azimuth=azimuth * u.deg,
                      velocity=[11.0, 210.0, 7.5] * KMS)
    pos, vel = observe.sun_in_galaxy_frame(sun)
    assert np.hypot(pos[0], pos[1]).to_value(u.kpc) == pytest.approx(7.5, rel=1e-14)
    assert np.degrees(np.arctan2(pos[1].value, pos[0].value)) % 360 == pytest.approx(azimuth)
    assert pos[2].to_value(u.pc) == pytest.approx(-30.0)  # north Galactic pole is the galaxy's -z
    stars = disc(500, seed=2)
    for c, value in zip(("x", "y", "z", "vx", "vy", "vz"), [*pos, *vel], strict=True):
        stars[c][0] = value
    coord = observe.galactocentric(stars, sun)
    np.testing.assert_allclose(coord[0].cartesian.xyz.to_value(u.kpc), [-7.5, 0, 0.030],
                               atol=1e-12)
    np.testing.assert_allclose(coord[0].velocity.d_xyz.to_value(KMS), [11, 210, 7.5], atol=1e-12)
    # seen from the Sun: at the origin of ICRS, at rest
    icrs = coord[0].transform_to(ICRS())
    assert np.linalg.norm(icrs.cartesian.xyz.to_value(u.kpc)) < 1e-9
    assert np.linalg.norm(icrs.velocity.d_xyz.to_value(KMS)) < 1e-9


def test_proper_rotation_flips_angular_momentum_without_mirror():
    sun = SunPosition(azimuth=35 * u.deg)
    g = observe.rotation_to_galactocentric(sun)
    assert np.linalg.det(g) == pytest.approx(1.0, abs=1e-14)
    triad = QTable({
        "x": [1.0, 0, 0] * u.kpc, "y": [0, 1.0, 0] * u.kpc, "z": [0, 0, 1.0] * u.kpc,
        "vx": [0, 0, 0] * KMS, "vy": [0, 0, 0] * KMS, "vz": [0, 0, 0] * KMS,
    })
    stars = disc(500)
    both = QTable({c: np.concatenate([triad[c], stars[c]]) for c in triad.colnames})
    gc = observe.galactocentric(both, sun).cartesian.xyz.to_value(u.kpc).T
    ex, ey, ez = gc[:3]
    assert np.dot(np.cross(ex, ey), ez) == pytest.approx(1.0, abs=1e-12)  # right-handed
    assert ez[2] == pytest.approx(-1.0)  # the galaxy's spin axis points to the south pole
    # the disc turns the Milky Way's way: L_z < 0 in astropy's Galactocentric frame
    coord = observe.galactocentric(stars, sun)
    p, v = coord.cartesian.xyz.value, coord.velocity.d_xyz.value
    lz = p[0] * v[1] - p[1] * v[0]
    assert np.all(lz < 0)


def test_rotation_sense_oort_constants():
    """Stars near a co-rotating Sun in a flat cold disc: mu_l = (A cos 2l + B) / 4.74 < 0."""
    v_c, r0 = 220.0, 8.0
    stars = disc(60_000, v_c=v_c, seed=3, r_range=(6.5, 9.5), thickness=0.05, labels=False)
    sun = SunPosition(R=r0 * u.kpc, z=0 * u.pc, azimuth=0 * u.deg, velocity=[0, v_c, 0] * KMS)
    cat = observe.survey(stars, sun, selection=Selection(max_distance=0.5 * u.kpc), seed=0)
    assert len(cat) > 200
    l_rad = cat["l"].to_value(u.rad)
    oort_a, oort_b = v_c / (2 * r0), -v_c / (2 * r0)
    predicted = (oort_a * np.cos(2 * l_rad) + oort_b) / K_MAS * np.cos(cat["b"].to(u.rad))
    mu_l = cat["pm_l_cosb"].to_value(u.mas / u.yr)
    assert np.mean(mu_l) < 0  # the Milky Way's sign (Oort's B < 0)
    assert np.mean(mu_l) == pytest.approx(np.mean(predicted.value), rel=0.1)
    # star by star, to first order in d / R0
    d = cat["distance"].to_value(u.kpc)
    second_order = (d / r0) * (v_c / r0) / K_MAS  # size of the next term of the expansion
    assert np.all(np.abs(mu_l - predicted.value) < 0.6 * second_order)
    # circular orbit: radial velocities follow v_r = A d sin 2l
    v_r = cat["radial_velocity"].to_value(KMS)
    np.testing.assert_allclose(v_r, oort_a * d * np.sin(2 * l_rad), atol=0.15 * v_c * (0.5 / r0))


def test_rotation_sense_of_a_warm_disc_from_the_default_sun():
    # with astropy's default Sun (245.6 km/s) a slower disc lags: mean mu_l < 0 as in Gaia
    stars = disc(40_000, v_c=200.0, seed=4, r_range=(6, 10), thickness=0.2, sigma_v=20.0,
                 labels=False)
    cat = observe.survey(stars, SunPosition(), selection=Selection(max_distance=1 * u.kpc),
                         seed=0)
    assert np.mean(cat["pm_l_cosb"]) < 0 * u.mas / u.yr


def test_co_rotating_sun_uses_the_local_rotation():
    stars = disc(20_000, v_c=190.0, seed=5)
    sun = SunPosition.co_rotating(stars, R=8 * u.kpc)
    expected = observe.SCHOENRICH_2010_PECULIAR.to_value(KMS) + [0, 190.0, 0]
    np.testing.assert_allclose(sun.velocity.to_value(KMS), expected, atol=1e-9)


# -- bad input -------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    stars = disc(500)
    with pytest.raises(ValueError, match="stars.*vz"):
        observe.galactocentric(stars[["x", "y", "z", "vx", "vy"]])
    bad = stars.copy()
    bad["vy"][3] = np.nan * KMS
    with pytest.raises(ValueError, match="vy"):
        observe.survey(bad, seed=0)
    with pytest.raises(ValueError, match="sun.*outside the galaxy"):
        observe.galactocentric(stars, SunPosition(R=40 * u.kpc))
    with pytest.raises(ValueError, match="sun.*outside the galaxy"):
        observe.galactocentric(stars, SunPosition(z=3 * u.kpc))
    with pytest.raises(ValueError, match="sun.R"):
        SunPosition(R=np.nan * u.kpc)
    with pytest.raises(u.UnitConversionError, match="sun.velocity"):
        SunPosition(velocity=[1, 2, 3] * u.kpc)
    with pytest.raises(ValueError, match="sun.velocity"):
        SunPosition(velocity=[1, 2] * KMS)
    with pytest.raises(ValueError, match="errors"):
        observe.survey(stars, errors={"ra": 1 * u.mas}, seed=0)
    with pytest.raises(ValueError, match="magnitude"):
        observe.survey(stars, magnitude="G", seed=0)
    with pytest.raises(ValueError, match="min_parallax_over_error"):
        observe.survey(stars, selection=Selection(min_parallax_over_error=5), seed=0)
    with pytest.raises(ValueError, match="fraction"):
        Selection(fraction=1.5)
    with pytest.raises(ValueError, match="inclination"):
        observe.project(stars, 10 * u.Mpc, 190 * u.deg)
    with pytest.raises(ValueError, match="inclination"):
        observe.ifu_maps(stars, 10 * u.Mpc, -1 * u.deg)
    with pytest.raises(ValueError, match="pixel"):
        observe.ifu_maps(stars, 10 * u.Mpc, 30 * u.deg, pixel=2 * u.arcmin, fov=60 * u.arcsec)
    with pytest.raises(ValueError, match="distance"):
        observe.project(stars, 0 * u.Mpc, 30 * u.deg)
    with pytest.raises(ValueError, match="distance"):
        observe.ifu_maps(stars, np.nan * u.Mpc, 30 * u.deg)
    with pytest.raises(ValueError, match="sun.azimuth"):
        SunPosition(azimuth=np.inf * u.deg)
    with pytest.raises(ValueError, match="fov"):
        observe.ifu_maps(stars, 10 * u.Mpc, 30 * u.deg, fov=[1, 2, 3] * u.arcsec)
    with pytest.raises(ValueError, match="errors\\['parallax'\\]"):
        observe.survey(stars, errors={"parallax": -1 * u.mas}, seed=0)
    with pytest.raises(u.UnitConversionError, match="errors\\['parallax'\\]"):
        observe.survey(stars, errors={"parallax": lambda cat: cat["distance"]}, seed=0)
    with pytest.raises(ValueError, match="psf_fwhm"):
        observe.ifu_maps(stars, 10 * u.Mpc, 30 * u.deg, psf_fwhm=np.nan * u.arcsec)


# -- catalogues: errors, seeds, selections ---------------------------------------------------


def test_catalogue_columns_units_and_meta():
    stars = disc(3000, seed=6)
    stars.meta["conditions"] = {"M_stars": {"value": 3e9, "unit": "solMass"}}
    cat = observe.survey(stars, SunPosition(R=8 * u.kpc), seed=1)
    units = {"ra": u.deg, "dec": u.deg, "l": u.deg, "b": u.deg, "distance": u.kpc,
             "parallax": u.mas, "pm_ra_cosdec": u.mas / u.yr, "pm_dec": u.mas / u.yr,
             "radial_velocity": KMS, "feh": u.dex, "age": u.Gyr, "mass": u.Msun}
    for name, unit in units.items():
        assert cat[name].unit == unit, name
    np.testing.assert_allclose(cat["parallax"].to_value(u.mas),
                               1 / cat["distance"].to_value(u.kpc))
    np.testing.assert_array_equal(cat["feh"], stars["feh"])
    assert np.all(cat["mass"] == 1e6 * u.Msun)
    assert cat.meta["seed"] == 1
    assert cat.meta["source"]["conditions"]["M_stars"]["value"] == 3e9
    assert "no photometry" in cat.meta["photometry"]
    # Galactic and ICRS columns describe the same sky positions
    icrs = SkyCoord(ra=cat["ra"], dec=cat["dec"], frame=ICRS()).transform_to(Galactic())
    assert np.max(icrs.separation(SkyCoord(l=cat["l"], b=cat["b"], frame=Galactic()))) < (
        1e-6 * u.arcsec
    )


def test_same_seed_same_catalogue_and_stated_spread():
    stars = disc(20_000, seed=7)
    errors = {
        "parallax": 0.1 * u.mas,
        "radial_velocity": lambda cat: (1.0 + 2.0 * cat["distance"].to_value(u.kpc)) * KMS,
        "feh": 0.05 * u.dex,
    }
    sel = Selection(fraction=0.5)
    a = observe.survey(stars, errors=errors, selection=sel, seed=11)
    b = observe.survey(stars, errors=errors, selection=sel, seed=11)
    c = observe.survey(stars, errors=errors, selection=sel, seed=12)
    assert a.colnames == b.colnames
    for name in a.colnames:
        np.testing.assert_array_equal(a[name], b[name])
    assert len(a) != len(c) or np.any(a["parallax"] != c["parallax"])
    for name in errors:
        z = ((a[name] - a[f"{name}_true"]) / a[f"{name}_error"]).to_value(u.one)
        # standard normal: mean 0 and spread 1, within 5 standard errors
        assert abs(z.mean()) < 5 / np.sqrt(len(z))
        assert abs(z.std() - 1) < 5 / np.sqrt(2 * len(z))
    np.testing.assert_allclose(
        a["radial_velocity_error"].to_value(KMS), 1 + 2 * a["distance"].to_value(u.kpc)
    )
    assert np.all(a["parallax_error"] == 0.1 * u.mas)
    assert a.meta["errors"]["parallax"] == "0.1 mas"
    # a subsample of about half the stars
    n = len(stars)
    assert abs(len(a) - n / 2) < 5 * np.sqrt(n / 4)


def test_noisy_proper_motions_turn_into_galactic_axes():
    stars = disc(3000, seed=8)
    cat = observe.survey(stars, errors={"pm_ra_cosdec": 0.5 * u.mas / u.yr,
                                        "pm_dec": 0.5 * u.mas / u.yr}, seed=3)
    gal = SkyCoord(ra=cat["ra"], dec=cat["dec"], pm_ra_cosdec=cat["pm_ra_cosdec"],
                   pm_dec=cat["pm_dec"], frame=ICRS()).transform_to(Galactic())
    np.testing.assert_allclose(cat["pm_l_cosb"].value, gal.pm_l_cosb.to_value(u.mas / u.yr),
                               atol=1e-10)
    total_obs = np.hypot(cat["pm_l_cosb"], cat["pm_b"])
    total_icrs = np.hypot(cat["pm_ra_cosdec"], cat["pm_dec"])
    np.testing.assert_allclose(total_obs.value, total_icrs.value, rtol=1e-9)


def test_selections():
    stars = disc(20_000, seed=9, thickness=0.5)
    stars["G"] = (10 + 5 * np.random.default_rng(0).random(len(stars))) * u.mag
    centre = SkyCoord(l=90 * u.deg, b=0 * u.deg, frame=Galactic())
    sel = Selection(cone=(centre, 40 * u.deg), min_abs_b=1 * u.deg, max_distance=5 * u.kpc,
                    min_distance=0.2 * u.kpc, min_parallax_over_error=5.0,
                    magnitude_range=[10.5, 14] * u.mag)
    cat = observe.survey(stars, errors={"parallax": 0.05 * u.mas, "G": 0.01 * u.mag},
                         selection=sel, magnitude="G", seed=1)
    assert len(cat) > 50
    sep = SkyCoord(l=cat["l"], b=cat["b"], frame=Galactic()).separation(centre)
    assert np.all(sep <= 40 * u.deg)
    assert np.all(np.abs(cat["b"]) >= 1 * u.deg)
    assert np.all((cat["distance"] >= 0.2 * u.kpc) & (cat["distance"] <= 5 * u.kpc))
    assert np.all(cat["parallax"] / cat["parallax_error"] >= 5)
    assert np.all((cat["G"] >= 10.5 * u.mag) & (cat["G"] <= 14 * u.mag))
    counts = cat.meta["counts"]
    assert list(counts) == ["input", "cone", "min_abs_b", "min_distance", "max_distance",
                            "min_parallax_over_error", "magnitude_range"]
    assert counts["magnitude_range"] == len(cat)
    assert all(a >= b for a, b in zip(list(counts.values()), list(counts.values())[1:],
                                      strict=False))
    # the cuts keep exactly the stars that pass them in the uncut catalogue
    full = observe.survey(stars, errors={"parallax": 0.05 * u.mas, "G": 0.01 * u.mag},
                          magnitude="G", seed=1)
    np.testing.assert_array_equal(full["parallax"][cat["source_id"]], cat["parallax"])


def test_absolute_magnitudes_become_apparent():
    stars = disc(2000, seed=10)
    stars["M_G"] = np.full(len(stars), 4.0) * u.mag
    cat = observe.survey(stars, magnitude="M_G", absolute_magnitude=True, seed=0)
    expected = 4.0 + 5 * np.log10(cat["distance"].to_value(u.pc) / 10)
    np.testing.assert_allclose(cat["M_G"].to_value(u.mag), expected)
    assert np.all(cat["M_G_abs"] == 4.0 * u.mag)
    # errors that grow with the apparent magnitude, as Gaia's do
    def sigma_of_g(c):
        return 0.02 * u.mas * 10 ** (0.2 * (c["M_G"].to_value(u.mag) - 15))

    noisy = observe.survey(stars, magnitude="M_G", absolute_magnitude=True,
                           errors={"parallax": sigma_of_g}, seed=0)
    np.testing.assert_allclose(noisy["parallax_error"].to_value(u.mas),
                               0.02 * 10 ** (0.2 * (expected - 15)))
    assert noisy.meta["errors"]["parallax"].startswith("callable")


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".h5"])
def test_catalogue_files_round_trip(tmp_path, suffix):
    stars = disc(300, seed=12)
    cat = observe.survey(stars, errors={"parallax": 0.02 * u.mas}, seed=5)
    path = observe.write_catalogue(cat, tmp_path / f"cat{suffix}")
    back = observe.read_catalogue(path)
    assert back.colnames == cat.colnames
    for name in ("ra", "parallax", "parallax_error", "pm_dec", "radial_velocity", "age", "feh"):
        assert back[name].unit == cat[name].unit
        np.testing.assert_array_equal(back[name].value, cat[name].value)
    assert back.meta["seed"] == 5
    assert back.meta["galactocentric_frame"]["z_sun"]["value"] == pytest.approx(20.8)
    with pytest.raises(ValueError, match="format"):
        observe.write_catalogue(cat, tmp_path / "cat.txt")


# -- external galaxies -----------------------------------------------------------------------


def test_face_on_disc_has_the_systemic_velocity():
    stars = disc(5000, seed=13, r_range=(0.5, 8))
    v_sys = 1234.5 * KMS
    proj = observe.project(stars, 10 * u.Mpc, 0 * u.deg, 20 * u.deg, v_sys)
    np.testing.assert_allclose(proj["v_los"].to_value(KMS), v_sys.value, atol=1e-9)
    maps = observe.ifu_maps(stars, 10 * u.Mpc, 0 * u.deg, 20 * u.deg, v_sys,
                            pixel=4 * u.arcsec, fov=400 * u.arcsec)
    v = maps["v_los"].values
    assert np.isfinite(v).sum() > 100
    np.testing.assert_allclose(v[np.isfinite(v)], v_sys.value, atol=1e-8)
    # face-on from +z the disc turns counter-clockwise on the sky (east is left)
    mask = np.hypot(proj["east"], proj["north"]) > 0 * u.arcsec
    east, north = proj["east"].value[mask], proj["north"].value[mask]
    # the projected motion: a short step along the velocity
    step = observe.project(_moved(stars[mask], 1e-3), 10 * u.Mpc, 0 * u.deg, 20 * u.deg, v_sys)
    # angular momentum on the sky, in the (west, north) right-handed axes seen by the observer
    west, d_west = -east, -(step["east"].value - east)
    d_north = step["north"].value - north
    assert np.all(west * d_north - north * d_west > 0)


def _moved(stars: QTable, dt_gyr: float) -> QTable:
    out = stars.copy()
    for c in "xyz":
        out[c] = stars[c] + (stars[f"v{c}"] * dt_gyr * u.Gyr).to(u.kpc)
    return out


def test_edge_on_amplitude_matches_v_phi_and_the_receding_side():
    v_phi = 180.0
    n = 20_000
    rng = np.random.default_rng(14)
    phi = rng.uniform(0, 2 * np.pi, n)
    r0 = 10.0
    ring = QTable({"x": r0 * np.cos(phi) * u.kpc, "y": r0 * np.sin(phi) * u.kpc,
                   "z": np.zeros(n) * u.kpc, "vx": -v_phi * np.sin(phi) * KMS,
                   "vy": v_phi * np.cos(phi) * KMS, "vz": np.zeros(n) * KMS})
    ring.meta["mass_per_star"] = {"value": 1e5, "unit": "solMass"}
    proj = observe.project(ring, 20 * u.Mpc, 90 * u.deg, 90 * u.deg, 500 * KMS)
    dv = proj["v_los"].to_value(KMS) - 500
    assert np.max(np.abs(dv)) == pytest.approx(v_phi, rel=1e-6)
    # the receding half of the major axis lies at the position angle (90 deg: east)
    assert np.all(dv[proj["east"].value > 1] > 0) and np.all(dv[proj["east"].value < -1] < 0)
    maps = observe.ifu_maps(ring, 20 * u.Mpc, 90 * u.deg, 90 * u.deg, 500 * KMS,
                            pixel=2 * u.arcsec, fov=242 * u.arcsec)  # a row centred on north=0
    v = maps["v_los"].values - 500
    amp = np.nanmax(np.abs(v))
    pixel_kpc = u.Quantity(maps.attrs["pixel_physical"]).to_value(u.kpc)
    # the outermost pixel holds stars within one pixel of the tangent point
    assert v_phi * (1 - pixel_kpc / r0) <= amp <= v_phi * (1 + 1e-9)
    major = maps["v_los"].sel(north=0, method="nearest")
    assert major.sel(east=100, method="nearest") > 500 > major.sel(east=-100, method="nearest")


def test_psf_conserves_mass_and_blurs():
    stars = disc(20_000, seed=15, r_range=(0.1, 3))
    kw = dict(pixel=1 * u.arcsec, fov=(120, 100) * u.arcsec)
    sharp = observe.ifu_maps(stars, 20 * u.Mpc, 50 * u.deg, 10 * u.deg, **kw)
    blurred = observe.ifu_maps(stars, 20 * u.Mpc, 50 * u.deg, 10 * u.deg,
                               psf_fwhm=6 * u.arcsec, **kw)
    assert sharp["surface_density"].shape == (100, 120)
    total = float(sharp["surface_density"].sum())
    assert float(blurred["surface_density"].sum()) == pytest.approx(total, rel=1e-12)
    assert float(blurred["surface_density"].max()) < float(sharp["surface_density"].max())
    # the mass in the field is the mass of the stars: Sigma * pixel area summed
    area_pc2 = u.Quantity(sharp.attrs["pixel_physical"]).to_value(u.pc) ** 2
    assert total * area_pc2 == pytest.approx(len(stars) * 1e6, rel=1e-12)
    assert int(sharp["counts"].sum()) == len(stars)
    # mean labels are mass-weighted means of the stars in a pixel
    feh = blurred["feh"].values
    assert np.nanmin(feh) >= stars["feh"].min().value - 1e-12
    assert np.nanmax(feh) <= stars["feh"].max().value + 1e-12


def test_ifu_maps_units_and_file(tmp_path):
    stars = disc(10_000, seed=16, r_range=(0.1, 5), sigma_v=40)
    maps = observe.ifu_maps(stars, 15 * u.Mpc, 40 * u.deg, 0 * u.deg, 800 * KMS,
                            pixel=3 * u.arcsec, fov=90 * u.arcsec, psf_fwhm=4 * u.arcsec,
                            density_unit="solMass / kpc2")
    for name in ("surface_density", "v_los", "sigma_los", "age", "feh", "ofe", "counts"):
        assert name in maps
        u.Unit(maps[name].attrs["units"])  # astropy parses it
    assert u.Unit(maps["surface_density"].attrs["units"]) == u.Msun / u.kpc**2
    assert u.Quantity(maps.attrs["distance"]) == 15 * u.Mpc
    assert u.Quantity(maps.attrs["psf_fwhm"]) == 4 * u.arcsec
    sigma = maps["sigma_los"].values[maps["counts"].values >= 10]
    assert sigma.size > 20
    assert 20 < np.median(sigma) < 60  # a 40 km/s dispersion seen along the line of sight
    path = observe.write_ifu_maps(maps, tmp_path / "maps.nc")
    back = observe.read_ifu_maps(path)
    np.testing.assert_allclose(back["v_los"].values, maps["v_los"].values)
    assert back["v_los"].attrs["units"] == "km / s"
    assert back.attrs["inclination"] == maps.attrs["inclination"]


def test_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stars = disc(2000, seed=17)
    cat = observe.survey(stars, seed=0)
    fig = observe.plot_sky(cat, color="feh", path=tmp_path / "sky.png")
    assert (tmp_path / "sky.png").stat().st_size > 1000
    plt.close(fig)
    maps = observe.ifu_maps(stars, 20 * u.Mpc, 60 * u.deg, 30 * u.deg, pixel=4 * u.arcsec,
                            fov=240 * u.arcsec)
    fig = observe.plot_ifu_maps(maps, path=tmp_path / "ifu.png")
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.images]) == 6
    plt.close(fig)
    with pytest.raises(ValueError, match="nope"):
        observe.plot_ifu_maps(maps, variables=["nope"])
