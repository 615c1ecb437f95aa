"""The cylindrical velocity frame: an exact rotation of (vx, vy) to (v_R, v_phi) per star."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import perturbed_flow

from astroflow_gal import GalaxyModel
from astroflow_gal.data import schema
from astroflow_gal.normalizer import Normalizer


@pytest.fixture(scope="module")
def cylindrical(small_suite) -> Normalizer:
    stars, _, conds = small_suite.to_arrays()
    return Normalizer.fit(stars, conds, velocity_frame="cylindrical")


@pytest.fixture(scope="module")
def stars(small_suite) -> torch.Tensor:
    values, _, _ = small_suite.to_arrays()
    x = torch.from_numpy(values[:500].copy())
    x[0, :2] = 0.0  # a star on the axis R = 0
    return x


def test_transforms_are_named_after_the_cylindrical_components(cylindrical):
    names = [t.name for t in cylindrical.star_transforms]
    assert names[3:5] == ["v_R", "v_phi"]
    assert cylindrical.star_names == schema.STAR_NAMES
    assert set(cylindrical.star_supports) == set(schema.STAR_NAMES)


def test_the_synthetic_discs_rotate_prograde(small_suite, cylindrical):
    # v_phi = (x vy - y vx) / R: the discs rotate towards +phi, so the fitted mean of v_phi is
    # positive and large, while Cartesian vx averages out over the azimuth.
    cartesian = Normalizer.fit(*small_suite.to_arrays()[::2])
    by_name = {t.name: t for t in cylindrical.star_transforms}
    assert by_name["v_phi"].mean > 20.0
    assert abs(by_name["v_R"].mean) < 0.2 * by_name["v_phi"].mean
    assert abs(cartesian.star_transforms[3].mean) < 0.2 * by_name["v_phi"].mean


def test_round_trip_is_exact_including_the_axis(cylindrical, stars):
    y, _ = cylindrical.stars_to_flow(stars)
    back = cylindrical.stars_from_flow(y)
    assert torch.allclose(back, stars, rtol=1e-11, atol=1e-9)
    # on the axis the azimuth is 0: v_R = vx and v_phi = vy
    t_R, t_phi = cylindrical.star_transforms[3:5]
    assert float(y[0, 3]) == pytest.approx((float(stars[0, 3]) - t_R.mean) / t_R.std)
    assert float(y[0, 4]) == pytest.approx((float(stars[0, 4]) - t_phi.mean) / t_phi.std)


def test_components_match_their_definition(cylindrical, stars):
    y, _ = cylindrical.stars_to_flow(stars)
    x, yy, vx, vy = (stars[1:, i] for i in (0, 1, 3, 4))
    R = torch.hypot(x, yy)
    t_R, t_phi = cylindrical.star_transforms[3:5]
    assert torch.allclose(y[1:, 3] * t_R.std + t_R.mean, (x * vx + yy * vy) / R, atol=1e-9)
    assert torch.allclose(y[1:, 4] * t_phi.std + t_phi.mean, (x * vy - yy * vx) / R, atol=1e-9)


def test_log_jacobian_matches_autograd(cylindrical, stars):
    cartesian = Normalizer(
        [t if t.name not in ("v_R", "v_phi") else type(t)(n, t.log10, t.mean, t.std)
         for t, n in zip(cylindrical.star_transforms, schema.STAR_NAMES, strict=True)],
        cylindrical.condition_transforms,
    )
    for row in stars[1:6]:
        jac = torch.autograd.functional.jacobian(
            lambda v: cylindrical.stars_to_flow(v[None])[0][0], row
        )
        _, log_jac = cylindrical.stars_to_flow(row[None])
        assert float(torch.logdet(jac)) == pytest.approx(float(log_jac[0]), abs=1e-9)
        # a rotation: the same log-Jacobian as the Cartesian map with the same scales
        assert float(log_jac[0]) == pytest.approx(float(cartesian.stars_to_flow(row[None])[1][0]))


def test_description_round_trip_and_old_files(cylindrical, stars):
    again = Normalizer.from_dict(cylindrical.to_dict())
    assert again.velocity_frame == "cylindrical"
    assert torch.equal(again.stars_to_flow(stars)[0], cylindrical.stars_to_flow(stars)[0])
    old = cylindrical.to_dict()
    del old["velocity_frame"]
    with pytest.raises(ValueError, match="cylindrical velocity frame"):
        Normalizer.from_dict(old)  # v_R transforms without the frame: refused, not misread


def test_subsets_keep_the_frame_only_with_velocities(cylindrical):
    assert cylindrical.subset(schema.POSITION_NAMES).velocity_frame == "cartesian"
    phase = cylindrical.subset(schema.PHASE_SPACE_NAMES)
    assert phase.velocity_frame == "cylindrical"
    assert phase.star_names == schema.PHASE_SPACE_NAMES
    with pytest.raises(ValueError, match="needs the columns x, y, vx, vy"):
        cylindrical.subset(("vx", "vy", "vz"))


def test_bad_frames_are_refused(small_suite):
    stars, _, conds = small_suite.to_arrays()
    with pytest.raises(ValueError, match="velocity_frame must be one of"):
        Normalizer.fit(stars, conds, velocity_frame="spherical")
    with pytest.raises(ValueError, match="missing"):
        Normalizer.fit(stars[:, 3:], conds, star_names=schema.STAR_NAMES[3:],
                       velocity_frame="cylindrical")
    bad = stars.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.fit(bad, conds, velocity_frame="cylindrical")


@pytest.fixture(scope="module")
def cylindrical_model(small_suite, cylindrical) -> GalaxyModel:
    conds = small_suite.to_arrays()[2]
    training_range = {n: [float(conds[:, i].min()), float(conds[:, i].max())]
                      for i, n in enumerate(schema.CONDITION_NAMES)}
    return GalaxyModel(perturbed_flow(10, 4, seed=3, scale=0.1), cylindrical,
                       training_range=training_range)


def test_samples_rotate_prograde_and_save_round_trip(cylindrical_model, mid_conditions, tmp_path):
    table = cylindrical_model.sample(20_000, mid_conditions, seed=1)
    x, y = table["x"].value, table["y"].value
    vx, vy = table["vx"].value, table["vy"].value
    R = np.hypot(x, y)
    v_phi = (x * vy - y * vx) / R
    t_phi = cylindrical_model.normalizer.star_transforms[4]
    # a mildly perturbed flow keeps v_phi near its training mean: the rotation comes back with
    # the right sign, while the Cartesian components average out over the azimuth
    assert np.mean(v_phi) == pytest.approx(t_phi.mean, rel=0.3)
    assert abs(np.mean(vx)) < 0.3 * t_phi.mean and abs(np.mean(vy)) < 0.3 * t_phi.mean
    path = tmp_path / "cyl.h5"
    cylindrical_model.save(path)
    loaded = GalaxyModel.load(path)
    assert loaded.normalizer.velocity_frame == "cylindrical"
    probe = table[:200]
    assert np.allclose(loaded.log_edf(probe, mid_conditions),
                       cylindrical_model.log_edf(probe, mid_conditions))


def test_flow_values_are_invariant_under_a_rotation_about_z(cylindrical_model, mid_conditions):
    # Rotating a star's position and velocity together about the z axis leaves z, v_R, v_phi
    # and v_z unchanged: the flow sees an axisymmetric galaxy's velocities as functions of R, z.
    table = cylindrical_model.sample(50, mid_conditions, seed=2)
    values = torch.from_numpy(np.stack([table[n].value for n in schema.STAR_NAMES], axis=1))
    angle = 0.7
    c, s = np.cos(angle), np.sin(angle)
    rotated = values.clone()
    for i, j in ((0, 1), (3, 4)):
        rotated[:, i] = c * values[:, i] - s * values[:, j]
        rotated[:, j] = s * values[:, i] + c * values[:, j]
    y0, _ = cylindrical_model.normalizer.stars_to_flow(values)
    y1, _ = cylindrical_model.normalizer.stars_to_flow(rotated)
    assert torch.allclose(y0[:, 2:], y1[:, 2:], atol=1e-9)  # z, v_R, v_phi, vz, chemistry, age
    assert not torch.allclose(y0[:, :2], y1[:, :2])
