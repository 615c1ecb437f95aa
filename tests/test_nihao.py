"""The NIHAO reader on constructed star files with known answers."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest

from astroflow_gal.data import GalaxySuite, NonFiniteRowsWarning, read_nihao
from astroflow_gal.data.nihao import (
    NihaoCuts,
    load_nihao_galaxy,
    parse_nihao_name,
    radius_cut,
)

NO_CUTS = dict(r_percentile=None, r_cap=None, n_highest_z=0, feh_min=None, ofe_min=None,
               min_stars=0)


def random_directions(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def base_columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stars with harmless values; ages are distinct so that every star can be recognised."""
    return {
        "pos": random_directions(n, rng) * rng.uniform(0.5, 5, size=(n, 1)),
        "vel": rng.normal(0, 50, size=(n, 3)),
        "Z": rng.uniform(0.001, 0.03, size=n),
        "feh": rng.uniform(-2, 0.3, size=n),
        "ofe": rng.uniform(-0.3, 0.5, size=n),
        "mass": rng.uniform(1e4, 5e4, size=n),
        "age": rng.permutation(np.linspace(0.01, 13.5, n)),
    }


def write_file(folder: Path, name: str, cols: dict[str, np.ndarray]) -> Path:
    data = np.vstack([
        cols["pos"].T, cols["vel"].T, cols["Z"], cols["feh"], cols["ofe"], cols["mass"],
        cols["age"],
    ])
    path = folder / name
    np.save(path, data)
    return path


def kept_ages(galaxy) -> np.ndarray:
    return np.sort(galaxy.stars["age"].value)


# --- file names and the radius cut -------------------------------------------------------------


def test_parse_name():
    assert parse_nihao_name("/a/b/snap_g8.26e11_7.1e11.npy") == ("snap", "g8.26e11", 7.1e11)
    assert parse_nihao_name("my_data_g2.7e12_3e12.npy") == ("my_data", "g2.7e12", 3e12)
    with pytest.raises(ValueError, match="prefix"):
        parse_nihao_name("galaxy.npy")
    with pytest.raises(ValueError, match="not a number"):
        parse_nihao_name("p_g1_heavy.npy")


def test_radius_cut_without_cap():
    r = 0.01 * np.arange(1, 1001)  # the 95th percentile lies between r[949] and r[950]
    keep, limit, capped = radius_cut(r, 95, 27.7)
    assert keep.sum() == 950 and keep[:950].all()
    assert not capped and 9.50 < limit < 9.51


def test_radius_cut_with_cap_repeats_percentile_on_kept_stars():
    r = 0.02 * np.arange(1, 2001)  # 95th percentile ~ 38 kpc > 27.7 kpc
    keep, limit, capped = radius_cut(r, 95, 27.7)
    assert capped
    # r <= 27.7 keeps 1385 stars; their 95th percentile lies between r[1314] and r[1315]
    assert keep.sum() == 1315 and keep[:1315].all()
    assert 26.30 < limit < 26.32
    keep_nocap, _, _ = radius_cut(r, 95, None)
    assert keep_nocap.sum() == 1900
    keep_caponly, _, _ = radius_cut(r, None, 27.7)
    assert keep_caponly.sum() == 1385


# --- the full cleaning -------------------------------------------------------------------------


def test_cleaning_and_conditions_known_answer(tmp_path):
    rng = np.random.default_rng(1)
    n = 1000
    cols = base_columns(n, rng)
    radii = 0.01 * np.arange(1, n + 1)  # star i has r = 0.01 (i + 1) kpc: the 50 outermost go
    cols["pos"] = random_directions(n, rng) * radii[:, None]
    outliers = np.arange(950, 1000)
    inside = rng.permutation(950)
    high_z, low_feh, low_ofe, edge = inside[:10], inside[10:13], inside[13:17], inside[17:19]
    cols["Z"][high_z] = np.linspace(0.2, 0.3, 10)  # the 10 highest Z
    cols["Z"][outliers[:5]] = 0.9  # beyond the radius cut: already gone before the Z cut
    cols["feh"][low_feh] = -9.0
    cols["ofe"][low_ofe] = -1.5
    cols["feh"][edge[0]] = -8.0  # exactly at the limits: kept
    cols["ofe"][edge[1]] = -1.0
    write_file(tmp_path, "snap_g1.23e10_4.5e10.npy", cols)

    suite = GalaxySuite.from_nihao(tmp_path)
    assert suite.ids == ["g1.23e10"]
    g = suite["g1.23e10"]
    expected = np.ones(n, dtype=bool)
    expected[outliers] = False
    expected[high_z] = False
    expected[low_feh] = False
    expected[low_ofe] = False
    assert g.n_stars == 950 - 10 - 3 - 4
    np.testing.assert_array_equal(kept_ages(g), np.sort(cols["age"][expected]))
    counts = g.meta["counts"]
    assert counts == {"raw": 1000, "nonfinite": 0, "radius": 50, "highest_Z": 10, "feh": 3,
                      "ofe": 4, "Z_min": 0, "kept": 933}
    assert g.meta["M_dm"] == 4.5e10 and g.meta["prefix"] == "snap"
    assert g.meta["r_cap_applied"] is False
    # conditions of the kept stars, in schema units
    age = cols["age"][expected]
    np.testing.assert_allclose(g.conditions["M_stars"].to_value(u.Msun),
                               cols["mass"][expected].sum(), rtol=1e-12)
    np.testing.assert_allclose(g.conditions["tau50"].to_value(u.Gyr), np.median(age), rtol=1e-12)
    np.testing.assert_allclose(g.conditions["tau10"].to_value(u.Gyr), np.percentile(age, 10),
                               rtol=1e-12)
    np.testing.assert_allclose(g.conditions["Z_av"].value, cols["Z"][expected].mean(),
                               rtol=1e-12)
    # per-star values travel with their star through the rotation
    order = np.argsort(cols["age"][expected])
    got = np.argsort(g.stars["age"].value)
    for name in ("Z", "feh", "ofe"):
        np.testing.assert_array_equal(g.stars[name].value[got], cols[name][expected][order])
    np.testing.assert_array_equal(g.masses.value[got], cols["mass"][expected][order])
    r_new = np.sqrt(sum(g.stars[c].value ** 2 for c in ("x", "y", "z")))
    np.testing.assert_allclose(r_new[got], radii[expected][order], rtol=1e-12)


def test_each_cut_can_be_switched_off(tmp_path):
    rng = np.random.default_rng(2)
    cols = base_columns(600, rng)
    cols["pos"][:20] *= 30  # far outliers
    cols["feh"][20:25] = -10
    cols["ofe"][25:28] = -3
    write_file(tmp_path, "p_g1_1e10.npy", cols)
    path = tmp_path / "p_g1_1e10.npy"
    assert load_nihao_galaxy(path, NihaoCuts(**NO_CUTS)).n_stars == 600
    only_feh = dict(NO_CUTS, feh_min=-8.0)
    assert load_nihao_galaxy(path, NihaoCuts(**only_feh)).n_stars == 595
    only_ofe = dict(NO_CUTS, ofe_min=-1.0)
    assert load_nihao_galaxy(path, NihaoCuts(**only_ofe)).n_stars == 597
    only_z = dict(NO_CUTS, n_highest_z=7)
    g = load_nihao_galaxy(path, NihaoCuts(**only_z))
    assert g.n_stars == 593
    assert g.stars["Z"].value.max() == np.sort(cols["Z"])[-8]
    only_cap = dict(NO_CUTS, r_cap=10.0)
    g = load_nihao_galaxy(path, NihaoCuts(**only_cap))
    assert g.n_stars == int((np.linalg.norm(cols["pos"], axis=1) <= 10.0).sum())
    with pytest.raises(TypeError, match="r_maximum"):
        read_nihao(tmp_path, r_maximum=3)


def test_radius_cap_applies_on_extended_galaxy(tmp_path):
    rng = np.random.default_rng(3)
    n = 2000
    cols = base_columns(n, rng)
    radii = 0.02 * np.arange(1, n + 1)
    cols["pos"] = random_directions(n, rng) * radii[:, None]
    write_file(tmp_path, "p_big_1e12.npy", cols)
    g = load_nihao_galaxy(tmp_path / "p_big_1e12.npy", NihaoCuts(n_highest_z=0))
    assert g.n_stars == 1315
    assert g.meta["r_cap_applied"] is True and 26.30 < g.meta["r_cut_kpc"] < 26.32
    np.testing.assert_array_equal(kept_ages(g), np.sort(cols["age"][:1315]))


def test_small_galaxies_left_out(tmp_path):
    rng = np.random.default_rng(4)
    write_file(tmp_path, "s_big_1e11.npy", base_columns(700, rng))
    write_file(tmp_path, "s_small_1e9.npy", base_columns(520, rng))  # 520 -> 484 after cuts
    suite = read_nihao(tmp_path)
    assert suite.ids == ["big"]
    left = suite.meta["nihao"]["left_out"]
    assert left == [{"id": "small", "file": "s_small_1e9.npy", "n_stars": 484}]
    assert suite.meta["source"] == "NIHAO"
    assert suite.meta["nihao"]["cuts"]["r_cap"] == 27.7
    assert len(read_nihao(tmp_path, min_stars=400)) == 2


# --- alignment ---------------------------------------------------------------------------------


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_tilted_elongated_disc_ends_with_spin_on_z_and_major_axis_on_x(tmp_path):
    rng = np.random.default_rng(5)
    n = 6000
    radius = rng.gamma(2.0, 2.0, size=n)
    phi = rng.uniform(0, 2 * np.pi, size=n)
    # an elongated (bar-like) disc, major axis along x, rotating counter-clockwise (spin +z)
    pos0 = np.stack([radius * np.cos(phi), 0.4 * radius * np.sin(phi),
                     rng.normal(0, 0.05, size=n)], axis=1)
    vphi = 180.0 + rng.normal(0, 10, size=n)
    vel0 = np.stack([-vphi * np.sin(phi), vphi * np.cos(phi), rng.normal(0, 10, size=n)], axis=1)
    # turn the disc by 35 degrees in its plane, then tilt it by 70 degrees
    rot = rotation_about(np.array([1.0, 2.0, 0.5]), np.radians(70)) @ rotation_about(
        np.array([0.0, 0.0, 1.0]), np.radians(35))
    cols = base_columns(n, rng)
    cols["pos"] = pos0 @ rot.T
    cols["vel"] = vel0 @ rot.T
    write_file(tmp_path, "t_disc_1e11.npy", cols)
    g = load_nihao_galaxy(tmp_path / "t_disc_1e11.npy", NihaoCuts(**NO_CUTS))
    pos = np.stack([g.stars[c].value for c in ("x", "y", "z")], axis=1)
    vel = np.stack([g.stars[c].value for c in ("vx", "vy", "vz")], axis=1)
    m = g.masses.value
    spin = np.sum(m[:, None] * np.cross(pos, vel), axis=0)
    assert spin[2] > 0
    assert np.hypot(spin[0], spin[1]) < 1e-12 * spin[2]
    ixy = np.sum(m * pos[:, 0] * pos[:, 1])
    ixx, iyy = np.sum(m * pos[:, 0] ** 2), np.sum(m * pos[:, 1] ** 2)
    assert abs(ixy) < 1e-10 * ixx and ixx > 4 * iyy
    # the result is the original untilted disc up to a half turn about z and sample noise
    order = np.argsort(cols["age"])
    got = np.argsort(g.stars["age"].value)
    sign = np.sign(np.sum(pos[got, 0] * pos0[order, 0]))
    np.testing.assert_allclose(sign * pos[got, :2], pos0[order, :2], atol=0.05 * radius.max())
    assert np.std(pos[:, 2]) < 0.1
    # a proper rotation, recorded in the metadata, applied to positions and velocities alike
    r = np.array(g.meta["rotation"])
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(cols["pos"][order] @ r.T, pos[got], atol=1e-10)
    np.testing.assert_allclose(cols["vel"][order] @ r.T, vel[got], atol=1e-9)


def test_alignment_can_be_switched_off(tmp_path):
    rng = np.random.default_rng(6)
    cols = base_columns(50, rng)
    write_file(tmp_path, "n_a_1e9.npy", cols)
    g = load_nihao_galaxy(tmp_path / "n_a_1e9.npy",
                          NihaoCuts(**dict(NO_CUTS, align_spin=False, align_major_axis=False)))
    order, got = np.argsort(cols["age"]), np.argsort(g.stars["age"].value)
    np.testing.assert_array_equal(g.stars["x"].value[got], cols["pos"][order, 0])
    np.testing.assert_array_equal(g.stars["vz"].value[got], cols["vel"][order, 2])


# --- bad input ---------------------------------------------------------------------------------


def test_nonfinite_rows_dropped_with_warning(tmp_path):
    rng = np.random.default_rng(7)
    cols = base_columns(600, rng)
    cols["vel"][3, 1] = np.nan
    cols["age"][8] = np.inf
    write_file(tmp_path, "w_g_1e10.npy", cols)
    with pytest.warns(NonFiniteRowsWarning, match=r"w_g_1e10\.npy: dropped 2 star row"):
        g = load_nihao_galaxy(tmp_path / "w_g_1e10.npy", NihaoCuts(**NO_CUTS))
    assert g.n_stars == 598 and g.meta["counts"]["nonfinite"] == 2


def test_bad_files_named_in_errors(tmp_path):
    np.save(tmp_path / "a_g1_1e10.npy", np.zeros((10, 30)))
    with pytest.raises(ValueError, match=r"a_g1_1e10\.npy.*shape \(11, N\)"):
        load_nihao_galaxy(tmp_path / "a_g1_1e10.npy")
    np.save(tmp_path / "b_g2_1e10.npy", np.array([{"x": 1}] * 11, dtype=object),
            allow_pickle=True)
    with pytest.raises(ValueError, match=r"b_g2_1e10\.npy"):
        load_nihao_galaxy(tmp_path / "b_g2_1e10.npy")
    (tmp_path / "c_g3_1e10.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"c_g3_1e10\.npy"):
        load_nihao_galaxy(tmp_path / "c_g3_1e10.npy")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no NIHAO star files"):
        read_nihao(empty)
    with pytest.raises(FileNotFoundError):
        read_nihao(tmp_path / "nowhere")


def test_suite_round_trip_keeps_masses_and_meta(tmp_path):
    rng = np.random.default_rng(8)
    folder = tmp_path / "nihao"
    folder.mkdir()
    write_file(folder, "r_g7_1e11.npy", base_columns(800, rng))
    suite = read_nihao(folder)
    suite.write(tmp_path / "s.h5")
    back = GalaxySuite.read(tmp_path / "s.h5")
    assert back.meta == suite.meta
    assert back["g7"].meta == suite["g7"].meta
    assert back["g7"].masses.value.tobytes() == suite["g7"].masses.value.tobytes()
