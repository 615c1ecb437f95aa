"""Two-sample statistics where the answer is known: identical sets, the null, clear differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astroflow_gal.analysis.two_sample import (
    StarScaler,
    auc_standard_error,
    classifier_test,
    kernel_mmd,
    linear_mmd,
    linear_mmd_matrix,
    roc_auc,
)


def test_linear_mmd_of_identical_sets_is_zero_and_of_a_shift_is_its_square():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    assert linear_mmd(x, x) == 0.0
    assert linear_mmd(x, x[::-1]) == pytest.approx(0.0, abs=1e-24)
    shift = np.array([0.3, 0.0, -0.4, 0.0, 0.0])
    assert linear_mmd(x, x + shift) == pytest.approx(0.25, rel=1e-12)
    means = np.stack([x.mean(0), (x + shift).mean(0)])
    m = linear_mmd_matrix(means, means)
    assert m[0, 0] == 0.0 and m[0, 1] == pytest.approx(0.25) and m[1, 0] == pytest.approx(0.25)


def test_kernel_mmd_p_value_is_uniform_under_the_null():
    # 400 repeats of two samples from one distribution; 99 permutations make p a multiple of
    # 1/100, so P(p <= 0.05) = 0.05 and P(p <= 0.5) = 0.5 exactly for a valid test.
    rng = np.random.default_rng(1)
    repeats = 400
    p = np.array([
        kernel_mmd(rng.normal(size=(40, 3)), rng.normal(size=(30, 3)), n_permutations=99,
                   seed=k).p_value
        for k in range(repeats)
    ])
    for level in (0.05, 0.5):
        rate = np.mean(p <= level + 1e-12)
        sigma = math.sqrt(level * (1 - level) / repeats)  # binomial error of the rate
        assert abs(rate - level) < 3.5 * sigma, (level, rate, sigma)


def test_kernel_mmd_finds_a_difference_and_is_unbiased_near_zero():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4))
    y = rng.normal(size=(300, 4)) + np.array([0.5, 0, 0, 0])
    res = kernel_mmd(x, y, n_permutations=199, seed=0)
    assert res.p_value == pytest.approx(1 / 200) and res.mmd2 > 0
    # The median heuristic: about sqrt(2 * 4) for standard normals in 4-D.
    assert res.bandwidth == pytest.approx(math.sqrt(8), rel=0.15)
    # Unbiased: under the null the estimates average to zero (within 3 standard errors).
    null = np.array([kernel_mmd(rng.normal(size=(40, 2)), rng.normal(size=(40, 2)),
                                n_permutations=1).mmd2 for _ in range(200)])
    assert abs(null.mean()) < 3 * null.std(ddof=1) / math.sqrt(null.size)
    assert null.std() > 0
    # A variance change (same means) is invisible to the linear MMD, not to the kernel one.
    wide = rng.normal(size=(300, 4)) * 1.6
    assert kernel_mmd(x, wide, n_permutations=99).p_value <= 0.02


def test_roc_auc_and_its_error():
    assert roc_auc([2, 3, 4], [0, 1]) == 1.0
    assert roc_auc([0, 1], [2, 3]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5
    n = 400
    assert auc_standard_error(0.5, n, n) == pytest.approx(math.sqrt((2 * n + 1) / (12 * n * n)),
                                                          rel=0.02)
    assert auc_standard_error(1.0, n, n) == 0.0



@pytest.mark.usefixtures("one_torch_thread")
def test_classifier_auc_is_half_on_identical_and_near_one_on_different_distributions():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(800, 6)), rng.normal(size=(800, 6))
    null = classifier_test(x, y, epochs=100, seed=1)
    assert null.n_test == 800 and null.auc_err > 0
    assert abs(null.auc - 0.5) < 3 * null.auc_err
    z = rng.normal(size=(800, 6))
    z[:, 2] = rng.uniform(-0.2, 0.2, size=800) + 3.0
    clear = classifier_test(x, z, epochs=100, seed=1)
    assert clear.auc > 0.98 and clear.auc - 5 * clear.auc_err > 0.9


def test_bad_input_is_refused_with_the_argument_named():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="x has 3 columns and y 2"):
        linear_mmd(x, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="NaN"):
        linear_mmd(x, np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="y holds 0 stars"):
        linear_mmd(x, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="n_permutations"):
        kernel_mmd(x, x, n_permutations=0)
    with pytest.raises(ValueError, match="coincide"):
        kernel_mmd(x, x)
    with pytest.raises(ValueError, match="test_fraction"):
        classifier_test(x, x, test_fraction=1.0)


def test_star_scaler_standardises_on_the_suite(small_suite):
    scale = StarScaler.from_suite(small_suite)
    all_stars = np.concatenate([scale(g.stars) for g in small_suite])
    np.testing.assert_allclose(all_stars.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(all_stars.std(axis=0), 1.0, rtol=1e-9)
    stars = small_suite[0].stars
    z_col = list(scale.names).index("Z")
    expected = (np.log10(stars["Z"].value) - scale.mean[z_col]) / scale.std[z_col]
    np.testing.assert_allclose(scale(stars)[:, z_col], expected, rtol=1e-12)
    two = StarScaler.from_suite(small_suite, ["x", "age"])
    assert two(stars).shape == (len(stars), 2)
    with pytest.raises(KeyError):
        StarScaler(["R"], [0.0], [1.0])
    with pytest.raises(ValueError, match="std positive"):
        StarScaler(["x"], [0.0], [0.0])
