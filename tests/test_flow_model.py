"""ConditionalSplineFlow: round trip, exact log-determinant, normalisation, gradients, seeds."""

from __future__ import annotations

import math
import time

import pytest
import torch

from astroflow_gal.flow import ConditionalSplineFlow

DTYPES = [torch.float32, torch.float64]
DIMS = [2, 3, 6, 10]
CONDS = [0, 4]
ROUND_TRIP_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
SMALL = dict(n_layers=3, bins=6, hidden=16, hidden_layers=2)


def _flow(dim: int, cond_dim: int, dtype: torch.dtype, seed: int = 0, **kw):
    args = {**SMALL, **kw}
    return ConditionalSplineFlow(dim, cond_dim, seed=seed, **args).to(dtype)


def _inputs(n: int, dim: int, cond_dim: int, dtype: torch.dtype, seed: int = 0):
    """Rows mostly inside [-B, B], and rows with one coordinate far outside it (|x| from 4 to
    10, B = 3)."""
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, dim, dtype=dtype, generator=g)
    k = n // 5
    far = torch.empty(k, dtype=dtype).uniform_(4.0, 10.0, generator=g)
    axis = torch.randint(0, dim, (k,), generator=g)
    x[torch.arange(k), axis] = far * torch.sign(torch.randn(k, dtype=dtype, generator=g))
    c = torch.randn(n, cond_dim, dtype=dtype, generator=g) if cond_dim else None
    return x, c


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond_dim", CONDS)
@pytest.mark.parametrize("dim", DIMS)
def test_round_trip(dim, cond_dim, dtype):
    flow = _flow(dim, cond_dim, dtype, seed=dim)
    x, c = _inputs(300, dim, cond_dim, dtype, seed=dim)
    z, ld = flow(x, c)
    assert z.shape == x.shape and ld.shape == (300,)
    assert z.dtype == dtype and ld.dtype == dtype
    x_back, ld_inv = flow.inverse(z, c)
    tol = ROUND_TRIP_TOL[dtype]
    # absolute tolerance for rows of order 1; for rows of size |x| it is relative (float spacing
    # grows with |x|: at |x| = 10 one float32 ulp is already 1e-6)
    scale = x.abs().amax(1, keepdim=True).clamp_min(1.0)
    assert ((x_back - x).abs() / scale).max() <= tol
    assert (ld + ld_inv).abs().max() <= 100 * tol
    # and latent -> data -> latent
    z2 = torch.randn(300, dim, dtype=dtype, generator=torch.Generator().manual_seed(1))
    x2, _ = flow.inverse(z2, c)
    z2_back, _ = flow(x2, c)
    assert (z2_back - z2).abs().max() <= tol


@pytest.mark.parametrize("cond_dim", CONDS)
@pytest.mark.parametrize("dim", DIMS)
def test_logdet_is_slogdet_of_jacobian(dim, cond_dim):
    dtype = torch.float64
    flow = _flow(dim, cond_dim, dtype, seed=10 + dim)
    x, c = _inputs(8, dim, cond_dim, dtype, seed=3)
    x[0] = 1.5 * x[0] / x[0].abs().max()  # one row fully inside
    for fn, inp in ((flow, x), (flow.inverse, flow(x, c)[0].detach())):
        inp = inp.clone().requires_grad_(True)
        out, ld = fn(inp, c)
        # rows are independent: row i of every output's gradient is row i's Jacobian row
        jac = torch.stack(
            [torch.autograd.grad(out[:, j].sum(), inp, retain_graph=True)[0] for j in range(dim)],
            dim=1,
        )
        _, logabs = torch.linalg.slogdet(jac)
        assert (logabs - ld.detach()).abs().max() <= 1e-8


@pytest.mark.parametrize("cond_dim", CONDS)
def test_density_integrates_to_one(cond_dim):
    """A 2-D flow's density summed on a fine grid: 1 within 1e-3."""
    dtype = torch.float64
    flow = _flow(2, cond_dim, dtype, seed=4)
    with torch.no_grad():  # a visibly non-Gaussian density
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, dtype=dtype,
                                     generator=torch.Generator().manual_seed(p.numel())))
    half, n = 10.0, 401
    grid = torch.linspace(-half, half, n, dtype=dtype)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    c = torch.tensor([0.3, -0.5, 1.0, 0.2], dtype=dtype) if cond_dim else None
    with torch.no_grad():
        p = torch.exp(flow.log_prob(pts, c)).reshape(n, n)
    step = float(grid[1] - grid[0])
    total = float(torch.trapezoid(torch.trapezoid(p, dx=step, dim=1), dx=step))
    assert abs(total - 1.0) < 1e-3
    # and the density is far from the base normal (the check is not trivial)
    base = torch.exp(flow.base_log_prob(pts)).reshape(n, n)
    assert float((p - base).abs().max()) > 1e-2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond_dim", CONDS)
@pytest.mark.parametrize("dim", DIMS)
def test_gradients_reach_everything_and_are_finite(dim, cond_dim, dtype):
    flow = _flow(dim, cond_dim, dtype, seed=dim)
    x, c = _inputs(32, dim, cond_dim, dtype, seed=dim)
    # edge cases: exactly at +-B, 0 and on one axis far outside
    x[0], x[1], x[2] = 3.0, -3.0, 0.0
    x[3, 0] = 1e3
    x = x.requires_grad_(True)
    if c is not None:
        c = c.requires_grad_(True)
    lp = flow.log_prob(x, c)
    assert torch.isfinite(lp).all()
    lp.sum().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    if c is not None:
        assert torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0
    # sampling gradients reach the parameters as well
    flow.zero_grad()
    s = flow.sample(32, c[:1].detach() if c is not None else None,
                    generator=torch.Generator().manual_seed(0))
    s.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in flow.parameters())


@pytest.mark.parametrize("cond_dim", CONDS)
def test_same_seed_same_sample(cond_dim):
    flow = _flow(3, cond_dim, torch.float32, seed=0)
    c = torch.randn(cond_dim) if cond_dim else None
    with torch.no_grad():
        a = flow.sample(500, c, generator=torch.Generator().manual_seed(42))
        b = flow.sample(500, c, generator=torch.Generator().manual_seed(42))
        d = flow.sample(500, c, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, d)
    assert a.shape == (500, 3) and torch.isfinite(a).all()


def test_seed_gives_same_weights_and_leaves_global_rng():
    state = torch.random.get_rng_state()
    f1 = ConditionalSplineFlow(4, 2, seed=3, **SMALL)
    f2 = ConditionalSplineFlow(4, 2, seed=3, **SMALL)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (k1, v1), (k2, v2) in zip(f1.state_dict().items(), f2.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    f3 = ConditionalSplineFlow(4, 2, seed=4, **SMALL)
    assert not torch.equal(f1.layers[1].net1.network[0].weight, f3.layers[1].net1.network[0].weight)


def test_to_moves_everything():
    """No hard-coded device or dtype: every tensor follows .to(); outputs follow the flow."""
    flow = _flow(5, 4, torch.float32).to(torch.float64)
    for name, t in list(flow.named_parameters()) + list(flow.named_buffers()):
        assert t.dtype == torch.float64, name
    x, c = _inputs(10, 5, 4, torch.float64)
    z, ld = flow(x, c)
    assert z.dtype == ld.dtype == torch.float64
    s = flow.sample(7, c[0])
    assert s.dtype == torch.float64
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        moved = _flow(5, 4, torch.float32).to(dev)
        for name, t in list(moved.named_parameters()) + list(moved.named_buffers()):
            assert t.device.type == dev, name
        xs, cs = _inputs(10, 5, 4, torch.float32)
        z, ld = moved(xs.to(dev), cs.to(dev))
        assert z.device.type == dev and ld.device.type == dev
        assert moved.sample(4, cs[0].to(dev)).device.type == dev


def _grads(flow, x, c, rows: bool):
    """log p, and its gradients w.r.t. x, c and every weight; all rows at once or row by row."""
    flow.zero_grad()
    x = x.clone().requires_grad_(True)
    c = c.detach().clone().requires_grad_(c.requires_grad)
    if rows:
        lp = torch.cat([flow.log_prob(x[i : i + 1], c[i : i + 1]) for i in range(x.shape[0])])
    else:
        lp = flow.log_prob(x, c)
    lp.sum().backward()
    weights = [p.grad.clone() for p in flow.parameters()]
    return lp.detach(), x.grad, c.grad, weights


@pytest.mark.parametrize("c_grad", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_condition_dedupe_equals_per_row(dtype, c_grad):
    """Many stars, few distinct conditions: values and gradients (x, weights, and c when asked)
    equal the star-by-star evaluation."""
    flow = _flow(6, 4, dtype, seed=1)
    g = torch.Generator().manual_seed(5)
    galaxies = torch.randn(3, 4, dtype=dtype, generator=g)
    which = torch.randint(0, 3, (30,), generator=g)
    x, _ = _inputs(30, 6, 0, dtype, seed=2)
    c = galaxies[which].requires_grad_(c_grad)
    rows, index = flow._condition_rows(c.detach(), 30)
    assert rows.shape[0] == 3 and index is not None  # the dedupe path is taken
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    lp, gx, gc, gw = _grads(flow, x, c, rows=False)
    lp_r, gx_r, gc_r, gw_r = _grads(flow, x, c, rows=True)
    torch.testing.assert_close(lp, lp_r, atol=tol, rtol=tol)
    torch.testing.assert_close(gx, gx_r, atol=10 * tol, rtol=10 * tol)
    for a, b in zip(gw, gw_r, strict=True):
        torch.testing.assert_close(a, b, atol=10 * tol, rtol=10 * tol)
    if c_grad:
        torch.testing.assert_close(gc, gc_r, atol=10 * tol, rtol=10 * tol)
    # the inverse, and one broadcast row, agree too
    with torch.no_grad():
        z, _ = flow(x, c)
        xb, _ = flow.inverse(z, c)
        one = which == 0
        lp_one = flow.log_prob(x[one], galaxies[0])
    assert (xb - x).abs().max() <= ROUND_TRIP_TOL[dtype]
    torch.testing.assert_close(lp_one, lp[one], atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_row_ids_partition_rows_like_unique(dtype):
    """Equal rows share an id, different rows do not, and ids are dense 0 .. M - 1."""
    from astroflow_gal.flow.model import _row_ids

    g = torch.Generator().manual_seed(3)
    # Rows that differ in one column only, so a per-column shortcut would merge them.
    base = torch.randint(0, 3, (40, 4), generator=g).to(dtype)
    rows = base[torch.randint(0, 40, (500,), generator=g)]
    ids = _row_ids(rows)
    _, expected = torch.unique(rows, dim=0, return_inverse=True)
    assert ids.shape == (500,) and ids.dtype == torch.long
    assert set(ids.tolist()) == set(range(int(ids.max()) + 1))
    pairs = torch.unique(torch.stack([ids, expected], 1), dim=0)
    n_groups = int(expected.max()) + 1
    assert pairs.shape[0] == n_groups and int(ids.max()) + 1 == n_groups


def test_log_prob_is_base_plus_logdet():
    flow = _flow(3, 4, torch.float64)
    x, c = _inputs(20, 3, 4, torch.float64)
    z, ld = flow(x, c)
    expected = -0.5 * (z**2).sum(1) - 1.5 * math.log(2 * math.pi) + ld
    torch.testing.assert_close(flow.log_prob(x, c), expected)


def test_errors_are_clear():
    flow = _flow(3, 4, torch.float32)
    with pytest.raises(ValueError, match="shape"):
        flow(torch.zeros(5, 4), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="condition"):
        flow(torch.zeros(5, 3), None)
    with pytest.raises(ValueError, match="rows"):
        flow(torch.zeros(5, 3), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="unconditional"):
        _flow(3, 0, torch.float32)(torch.zeros(5, 3), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="dim"):
        ConditionalSplineFlow(1, 0)
    assert flow.config == dict(dim=3, cond_dim=4, n_layers=3, bins=6, bound=3.0, hidden=16,
                               hidden_layers=2, negative_slope=0.2)


@pytest.mark.parametrize("cond_dim", CONDS)
def test_blocked_no_grad_path_equals_plain(cond_dim):
    """Without gradients, rows run in blocks and (many conditions) grouped by condition, large
    groups with their condition broadcast: the same values as the plain path."""
    dtype = torch.float64
    flow = _flow(5, cond_dim, dtype, seed=7)
    g = torch.Generator().manual_seed(8)
    n = 400
    x = 1.5 * torch.randn(n, 5, dtype=dtype, generator=g)
    if cond_dim:
        galaxies = torch.randn(6, cond_dim, dtype=dtype, generator=g)
        # two large galaxies, four with a handful of stars each, rows shuffled
        which = torch.cat([torch.zeros(200), torch.ones(150), torch.arange(2, 6).repeat(13)[:50]])
        c = galaxies[which.long()[torch.randperm(n, generator=g)]]
    else:
        c = None
    z_ref, ld_ref = flow(x, c)  # gradient recording on: one block, gathered conditions
    x_ref, lx_ref = flow.inverse(z_ref.detach(), c)
    flow.chunk_size = 64
    with torch.no_grad():
        z, ld = flow(x, c)
        xb, lx = flow.inverse(z_ref.detach(), c)
        s1 = flow.sample(300, c[:1] if c is not None else None,
                         generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        s2 = flow.sample(300, c[:1] if c is not None else None,
                         generator=torch.Generator().manual_seed(3))
    flow.chunk_size = 10_000
    s3 = flow.sample(300, c[:1] if c is not None else None,
                     generator=torch.Generator().manual_seed(3)).detach()
    for got, ref in ((z, z_ref), (ld, ld_ref), (xb, x_ref), (lx, lx_ref), (s1, s3), (s2, s3)):
        torch.testing.assert_close(got, ref.detach(), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("cond_dim", [0, 4])
def test_blocks_on_worker_threads_equal_one_thread(cond_dim):
    """Blocks run on two worker threads give the one-thread result exactly, record no graph,
    and leave torch's thread count as it was."""
    flow = _flow(5, cond_dim, torch.float64, seed=4)
    flow.chunk_size = 64
    g = torch.Generator().manual_seed(9)
    n = 700
    x = 1.5 * torch.randn(n, 5, dtype=torch.float64, generator=g)
    if cond_dim:
        galaxies = torch.randn(5, cond_dim, dtype=torch.float64, generator=g)
        c = galaxies[torch.randint(0, 5, (n,), generator=g)]
        c[:3] = torch.randn(3, cond_dim, dtype=torch.float64, generator=g)  # small groups
    else:
        c = None
    before = torch.get_num_threads()
    results = {}
    for workers in (1, 2):
        flow.workers = workers
        with torch.no_grad():
            lp = flow.log_prob(x, c)
            s = flow.sample(n, c[:1] if c is not None else None,
                            generator=torch.Generator().manual_seed(2))
        assert not lp.requires_grad and not s.requires_grad
        assert torch.get_num_threads() == before
        results[workers] = (lp, s)
    for a, b in zip(results[1], results[2], strict=True):
        assert torch.equal(a, b)


def test_worker_errors_reach_the_caller_after_every_block():
    """An error in one block is raised in the caller once every worker has stopped (the
    other worker's blocks all ran), and torch's thread count is restored."""
    from astroflow_gal.flow.model import _run_blocks

    before = torch.get_num_threads()
    done = []

    def run_block(block):
        if block == 3:
            raise RuntimeError("block 3 failed")
        done.append(block)

    with pytest.raises(RuntimeError, match="block 3 failed"):
        _run_blocks(run_block, list(range(8)), workers=2)
    finished = sorted(done)
    assert {0, 2, 4, 6} <= set(finished) and 3 not in finished
    assert torch.get_num_threads() == before
    time.sleep(0.05)
    assert sorted(done) == finished  # nothing ran after the call returned


def test_forked_child_samples_with_workers():
    """A child forked after the parent ran blocks on worker threads samples without hanging."""
    import multiprocessing

    flow = _flow(4, 0, torch.float32, seed=1)
    flow.chunk_size, flow.workers = 32, 2
    with torch.no_grad():
        expected = flow.sample(200, generator=torch.Generator().manual_seed(0))
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_sample_in_child, (flow,)).get(timeout=60)
    assert torch.equal(got, expected)


def _sample_in_child(flow):
    with torch.no_grad():
        return flow.sample(200, generator=torch.Generator().manual_seed(0))


def test_no_worker_thread_outlives_a_call_and_thread_count_is_restored():
    """Blocks on workers start their threads for the call and join them before it returns;
    torch's thread count is back at the caller's value (here an unusual one, 3)."""
    import threading

    flow = _flow(4, 0, torch.float32, seed=1)
    flow.chunk_size, flow.workers = 32, 2
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with torch.no_grad():
            flow.sample(300, generator=torch.Generator().manual_seed(0))
        assert torch.get_num_threads() == 3
        alive = [t.name for t in threading.enumerate() if t.name.startswith("astroflow-gal")]
        assert alive == []
    finally:
        torch.set_num_threads(before)


def test_concurrent_calls_restore_the_callers_thread_count():
    """Two program threads sampling at the same time (their worker blocks overlapping) leave
    torch's process-wide thread count at the caller's value, not at the workers' 1."""
    import threading

    flow = _flow(4, 0, torch.float32, seed=1)
    flow.chunk_size, flow.workers = 16, 2
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    barrier = threading.Barrier(2)
    errors = []

    def sample_many():
        try:
            barrier.wait()
            for k in range(15):
                with torch.no_grad():
                    flow.sample(400, generator=torch.Generator().manual_seed(k))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    try:
        threads = [threading.Thread(target=sample_many) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
