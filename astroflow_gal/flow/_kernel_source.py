"""C source of the fused rational-quadratic spline (compiled on first use by :mod:`.fused`).

One pass over the elements computes, per element, its bin's knots from the raw parameters
(softmax, cumulative sum), the bin (a linear scan over the ``K - 1`` inner knots), the spline
value and log-derivative; the backward recomputes the same quantities and writes the gradient
with respect to the input and to the ``3 K - 1`` raw parameters of the element. The formulas are
those of :func:`astroflow_gal.flow.spline._spline_core` and ``_ForwardSpline.backward``; the
inverse's backward differentiates the inverse implicitly (``dxi/dy = 1 / (dy/dxi)``).

Forward, inverse and both backwards run on tiles of 16 elements with every loop across the
tile, so that the compiler vectorises them (an AVX2 clone is chosen at load time where the CPU
has it); the element-by-element loop does the last partial tile and tiles whose exponentials
need the shifted softmax, with the same operations in the same order (the same results, bit for
bit). The body is written once over a type ``real`` and included
twice (``float`` and ``double``).
Work is split over ``nthreads`` POSIX threads started and joined inside each call: no thread,
pool or runtime outlives a call.
"""

BODY = r"""
static inline real NAME(softplus)(real v) { return v > (real)20 ? v : LOG1P(EXP(v)); }
static inline real NAME(sigmoid)(real v) { return (real)1 / ((real)1 + EXP(-v)); }

typedef struct {
  const real *x, *theta, *gy, *gl;
  real *y, *ld, *gx, *gt;
  long n;
  int K, inverse, backward;
  real B;
} NAME(args);

/* Knots of one element: ex[r][i] = exp(raw - max), right[r][i] = right-hand knot of bin i,
   rows r = 0 (x, widths) and 1 (y, heights); total[r] = sum of ex[r]. */
static inline void NAME(knots)(const real *t, int K, real B, real *ex, real *right,
                               real *total) {
  for (int r = 0; r < 2; ++r) {
    const real *raw = t + r * K;
    /* exp(raw) without the shift by the maximum, as the torch spline, while the sum shows
       that no term overflowed or lost its precision; else the shifted softmax */
    real cum = 0;
    for (int i = 0; i < K; ++i) ex[r * K + i] = VEXP(raw[i]); /* vectorised loop */
    for (int i = 0; i < K; ++i) {
      cum += ex[r * K + i];
      right[r * K + i] = cum;
    }
    if (!(cum > (real)1e-25 && cum < (real)1e35)) {
      real m = raw[0];
      for (int i = 1; i < K; ++i) m = raw[i] > m ? raw[i] : m;
      cum = 0;
      for (int i = 0; i < K; ++i) {
        real e = EXP(raw[i] - m);
        ex[r * K + i] = e;
        cum += e;
        right[r * K + i] = cum;
      }
    }
    real scale = ((real)2 * B) / cum;
    for (int i = 0; i < K; ++i) right[r * K + i] = right[r * K + i] * scale - B;
    total[r] = cum;
  }
}

/* The backward of one element in its bin: from the gradients gy of its output and gl of its
   log-derivative, the gradients with respect to its input (g[0]), the bin's width and height
   (g[1], g[2]), its lower knot's x and y (g[3], g[4]) and the derivatives at its ends (g[5],
   g[6]); xi, w, h, s and curv as in the forward. */
static inline void NAME(element_grads)(real xi, real w, real h, real s, real curv, real d_lo,
                                       real d_hi, real gy, real gl, int inv, real *g) {
  const real one_m = (real)1 - xi;
  const real tt = xi * one_m;
  const real den = s + curv * tt;
  /* Partial derivatives at fixed xi of h R(xi) = y - y_lo and of L = log dy/dx. */
  const real inv_den = (real)1 / den;
  const real m = d_hi * xi * xi + (real)2 * s * tt + d_lo * one_m * one_m;
  const real inv_m = (real)1 / m;
  const real ratio = (s * xi * xi + d_lo * tt) * inv_den;
  const real two_t = (real)1 - (real)2 * tt;
  const real dden_dxi = curv * ((real)1 - (real)2 * xi);
  const real hd = h * inv_den;
  const real hr_s = hd * (xi * xi - ratio * two_t);
  const real hr_xi = hd * ((real)2 * s * xi + d_lo * ((real)1 - (real)2 * xi) - ratio * dden_dxi);
  const real hr_dlo = hd * tt * ((real)1 - ratio);
  const real hr_dhi = -hd * ratio * tt;
  const real l_s = (real)2 / s + (real)2 * tt * inv_m - (real)2 * two_t * inv_den;
  const real l_xi = (real)2 * (d_hi * xi + s * ((real)1 - (real)2 * xi) - d_lo * one_m) * inv_m
                    - (real)2 * dden_dxi * inv_den;
  const real l_dlo = one_m * one_m * inv_m - (real)2 * tt * inv_den;
  const real l_dhi = xi * xi * inv_m - (real)2 * tt * inv_den;
  real g_in, g_s, g_dlo, g_dhi, g_h, g_w, g_xlo, g_ylo;
  if (!inv) {
    /* y = y_lo + h R(xi), L, with xi = (x - x_lo) / w */
    const real g_xi = gy * hr_xi + gl * l_xi;
    g_s = gy * hr_s + gl * l_s;
    g_dlo = gy * hr_dlo + gl * l_dlo;
    g_dhi = gy * hr_dhi + gl * l_dhi;
    g_in = g_xi / w;
    g_w = -(g_s * s + g_xi * xi) / w;
    g_h = gy * ratio + g_s / w;
    g_xlo = -g_in;
    g_ylo = gy;
  } else {
    /* outputs x = x_lo + w xi and -L, with xi solving y = y_lo + h R(xi): gy, gl are the
       gradients of those outputs; dxi/dy = 1 / hr_xi, dxi/dp = -d(y_lo + h R)/dp / hr_xi */
    const real g_xi = gy * w - gl * l_xi;
    g_in = g_xi / hr_xi;
    const real gyp = -g_in, glp = -gl;
    g_s = gyp * hr_s + glp * l_s;
    g_dlo = gyp * hr_dlo + glp * l_dlo;
    g_dhi = gyp * hr_dhi + glp * l_dhi;
    g_h = gyp * ratio + g_s / w;
    g_w = -g_s * s / w + gy * xi;
    g_xlo = gy;
    g_ylo = gyp;
  }
  g[0] = g_in;
  g[1] = g_w;
  g[2] = g_h;
  g[3] = g_xlo;
  g[4] = g_ylo;
  g[5] = g_dlo;
  g[6] = g_dhi;
}

ATTR_CLONES static void NAME(range)(const NAME(args) *a, long begin, long end) {
  const int K = a->K, P = 3 * K - 1, inv = a->inverse;
  const real B = a->B;
  const real floor_ = (real)FLOOR;
  real ex[2 * K], right[2 * K], total[2];
  for (long e = begin; e < end; ++e) {
    const real *t = a->theta + e * P;
    const real v = a->x[e];
    const int inside = v >= -B && v <= B;
    if (!inside) {
      if (a->backward) {
        a->gx[e] = a->gy ? a->gy[e] : (real)0;
        memset(a->gt + e * P, 0, sizeof(real) * P);
      } else {
        a->y[e] = v;
        a->ld[e] = 0;
      }
      continue;
    }
    NAME(knots)(t, K, B, ex, right, total);
    const real *search = right + (inv ? K : 0);
    int idx = 0;
    for (int i = 0; i < K - 1; ++i) idx += search[i] <= v;
    const int lo_free = idx > 0, hi_free = idx < K - 1;
    const real x_lo = lo_free ? right[idx - 1] : -B;
    const real x_hi = hi_free ? right[idx] : B;
    const real y_lo = lo_free ? right[K + idx - 1] : -B;
    const real y_hi = hi_free ? right[K + idx] : B;
    real w = x_hi - x_lo, h = y_hi - y_lo;
    w = w > floor_ ? w : floor_;
    h = h > floor_ ? h : floor_;
    const real *rd = t + 2 * K;
    const real d_lo = lo_free ? NAME(softplus)(rd[idx - 1]) : (real)1;
    const real d_hi = hi_free ? NAME(softplus)(rd[idx]) : (real)1;
    const real s = h / w;
    const real curv = d_hi + d_lo - (real)2 * s;
    real xi;
    if (inv) {
      const real dy = v - y_lo;
      const real qa = h * (s - d_lo) + dy * curv;
      const real qb = h * d_lo - dy * curv;
      const real qc = -s * dy;
      real disc = qb * qb - (real)4 * qa * qc;
      disc = disc > (real)TINY ? disc : (real)TINY;
      xi = ((real)2 * qc) / (-qb - SQRT(disc));
    } else {
      xi = (v - x_lo) / w;
    }
    xi = xi < (real)0 ? (real)0 : (xi > (real)1 ? (real)1 : xi);
    const real one_m = (real)1 - xi;
    const real tt = xi * one_m;
    const real den = s + curv * tt;
    const real num = (s * s) * (d_hi * xi * xi + (real)2 * s * tt + d_lo * one_m * one_m);
    if (!a->backward) {
      const real logd = LOG(num / (den * den));
      if (inv) {
        a->y[e] = x_lo + xi * w;
        a->ld[e] = -logd;
      } else {
        a->y[e] = y_lo + h * (s * xi * xi + d_lo * tt) / den;
        a->ld[e] = logd;
      }
      continue;
    }
    const real gy = a->gy ? a->gy[e] : (real)0;
    const real gl = a->gl ? a->gl[e] : (real)0;
    real gr[7];
    NAME(element_grads)(xi, w, h, s, curv, d_lo, d_hi, gy, gl, inv, gr);
    const real g_in = gr[0], g_w = gr[1], g_h = gr[2], g_xlo = gr[3], g_ylo = gr[4];
    const real g_dlo = gr[5], g_dhi = gr[6];
    a->gx[e] = g_in;
    real *g = a->gt + e * P;
    /* knot gradients of the two rows: lower knot (idx - 1) and upper knot (idx) */
    const real g_lo[2] = {lo_free ? g_xlo - g_w : (real)0, lo_free ? g_ylo - g_h : (real)0};
    const real g_hi[2] = {hi_free ? g_w : (real)0, hi_free ? g_h : (real)0};
    for (int r = 0; r < 2; ++r) {
      /* right = 2 B cumsum(p) - B, p = softmax(raw): dL/dp_i = 2 B sum_{j >= i} dL/dright_j */
      const real inv_total = (real)1 / total[r];
      real gp[K];
      real dot = 0;
      for (int i = 0; i < K; ++i) {
        real acc = 0;
        if (i <= idx - 1) acc += g_lo[r];
        if (i <= idx) acc += g_hi[r];
        gp[i] = (real)2 * B * acc;
        dot += gp[i] * ex[r * K + i] * inv_total;
      }
      for (int i = 0; i < K; ++i) g[r * K + i] = ex[r * K + i] * inv_total * (gp[i] - dot);
    }
    real *gd = g + 2 * K;
    for (int i = 0; i < K - 1; ++i) gd[i] = 0;
    if (lo_free) gd[idx - 1] += g_dlo * NAME(sigmoid)(rd[idx - 1]);
    if (hi_free) gd[idx] += g_dhi * NAME(sigmoid)(rd[idx]);
  }
}

/* One tile of TILE elements from e0, every loop running across the elements so that it
   vectorises, with the same operations in the same order as NAME(knots) and NAME(range):
   ex[i][l] = exp(raw_i) (unshifted), rt[i][l] the right-hand knots (rows 0..K-1 of x, K..2K-1
   of y), total[r][l] the sums of the exponentials. Returns nonzero if a sum left the range of
   the unshifted exponentials: the caller then runs the tile element by element. */
static inline int NAME(tile_knots)(const NAME(args) *a, long e0, real (*ex)[TILE],
                                   real (*rt)[TILE], real (*total)[TILE]) {
  const int K = a->K, P = 3 * K - 1;
  const real B = a->B;
  const real *t0 = a->theta + e0 * P;
  real cum[TILE], scale[TILE];
  for (int i = 0; i < 2 * K; ++i)
    for (int l = 0; l < TILE; ++l) ex[i][l] = t0[l * P + i];
  for (int i = 0; i < 2 * K; ++i)
    for (int l = 0; l < TILE; ++l) ex[i][l] = VEXP(ex[i][l]);
  int bad = 0;
  for (int r = 0; r < 2; ++r) {
    for (int l = 0; l < TILE; ++l) cum[l] = 0;
    for (int i = 0; i < K; ++i)
      for (int l = 0; l < TILE; ++l) {
        cum[l] += ex[r * K + i][l];
        rt[r * K + i][l] = cum[l];
      }
    for (int l = 0; l < TILE; ++l) {
      bad |= !(cum[l] > (real)1e-25 && cum[l] < (real)1e35);
      scale[l] = ((real)2 * B) / cum[l];
      total[r][l] = cum[l];
    }
    for (int i = 0; i < K; ++i)
      for (int l = 0; l < TILE; ++l) rt[r * K + i][l] = rt[r * K + i][l] * scale[l] - B;
  }
  return bad;
}

/* The bin of every element of the tile (after NAME(tile_knots)): its input v and the input
   clamped to [-B, B], the bin index, the bin's knots, the raw derivatives at its ends (r_lo,
   r_hi; 0 at the boundary) and the derivatives themselves (1 at the boundary). */
typedef struct {
  real v[TILE], vc[TILE], x_lo[TILE], x_hi[TILE], y_lo[TILE], y_hi[TILE];
  real r_lo[TILE], r_hi[TILE], d_lo[TILE], d_hi[TILE];
  int idx[TILE];
} NAME(tile);

static inline void NAME(tile_bins)(const NAME(args) *a, long e0, real (*rt)[TILE],
                                   NAME(tile) *b) {
  const int K = a->K, P = 3 * K - 1;
  const real B = a->B;
  for (int l = 0; l < TILE; ++l) {
    b->v[l] = a->x[e0 + l];
    const real lo = b->v[l] < -B ? -B : b->v[l];
    b->vc[l] = lo > B ? B : lo;
    b->idx[l] = 0;
  }
  const int off = a->inverse ? K : 0;
  for (int i = 0; i < K - 1; ++i)
    for (int l = 0; l < TILE; ++l) b->idx[l] += rt[off + i][l] <= b->vc[l];
  for (int l = 0; l < TILE; ++l) {
    b->x_lo[l] = -B; b->y_lo[l] = -B; b->x_hi[l] = B; b->y_hi[l] = B;
  }
  for (int i = 0; i < K - 1; ++i)
    for (int l = 0; l < TILE; ++l) {
      if (b->idx[l] - 1 == i) { b->x_lo[l] = rt[i][l]; b->y_lo[l] = rt[K + i][l]; }
      if (b->idx[l] == i) { b->x_hi[l] = rt[i][l]; b->y_hi[l] = rt[K + i][l]; }
    }
  for (int l = 0; l < TILE; ++l) {
    const real *rd = a->theta + (e0 + l) * P + 2 * K;
    b->r_lo[l] = b->idx[l] > 0 ? rd[b->idx[l] - 1] : (real)0;
    b->r_hi[l] = b->idx[l] < K - 1 ? rd[b->idx[l]] : (real)0;
  }
  for (int l = 0; l < TILE; ++l) {
    b->d_lo[l] = b->idx[l] > 0 ? NAME(softplus)(b->r_lo[l]) : (real)1;
    b->d_hi[l] = b->idx[l] < K - 1 ? NAME(softplus)(b->r_hi[l]) : (real)1;
  }
}

/* Element l of a tile in its bin: the bin's width w and height h (at least FLOOR), slope
   s = h / w, curvature term d_lo + d_hi - 2 s, and the returned position xi in [0, 1] (from
   the input, or for the inverse from the root of the quadratic), as in NAME(range). */
static inline real NAME(tile_xi)(const NAME(tile) *b, int l, int inv, real *w_out, real *h_out,
                                 real *s_out, real *curv_out) {
  const real floor_ = (real)FLOOR;
  const real x_lo = b->x_lo[l], y_lo = b->y_lo[l], d_lo = b->d_lo[l], d_hi = b->d_hi[l];
  real w = b->x_hi[l] - x_lo, h = b->y_hi[l] - y_lo;
  w = w > floor_ ? w : floor_;
  h = h > floor_ ? h : floor_;
  const real s = h / w;
  const real curv = d_hi + d_lo - (real)2 * s;
  real xi;
  if (inv) {
    const real dy = b->vc[l] - y_lo;
    const real qa = h * (s - d_lo) + dy * curv;
    const real qb = h * d_lo - dy * curv;
    const real qc = -s * dy;
    real disc = qb * qb - (real)4 * qa * qc;
    disc = disc > (real)TINY ? disc : (real)TINY;
    xi = ((real)2 * qc) / (-qb - SQRT(disc));
  } else {
    xi = (b->vc[l] - x_lo) / w;
  }
  *w_out = w;
  *h_out = h;
  *s_out = s;
  *curv_out = curv;
  return xi < (real)0 ? (real)0 : (xi > (real)1 ? (real)1 : xi);
}

/* Forward or inverse (no backward) on tiles; the last partial tile, and tiles that need the
   shifted softmax, go element by element through NAME(range). */
ATTR_CLONES static void NAME(range_tiled)(const NAME(args) *a, long begin, long end) {
  const int K = a->K, inv = a->inverse;
  const real B = a->B;
  real ex[2 * K][TILE], rt[2 * K][TILE], total[2][TILE];
  NAME(tile) b;
  long e0 = begin;
  for (; e0 + TILE <= end; e0 += TILE) {
    if (NAME(tile_knots)(a, e0, ex, rt, total)) {
      NAME(range)(a, e0, e0 + TILE);
      continue;
    }
    NAME(tile_bins)(a, e0, rt, &b);
    real num[TILE], den[TILE], out[TILE];
    for (int l = 0; l < TILE; ++l) {
      const real x_lo = b.x_lo[l], y_lo = b.y_lo[l], d_lo = b.d_lo[l], d_hi = b.d_hi[l];
      real w, h, s, curv;
      const real xi = NAME(tile_xi)(&b, l, inv, &w, &h, &s, &curv);
      const real one_m = (real)1 - xi;
      const real tt = xi * one_m;
      den[l] = s + curv * tt;
      num[l] = (s * s) * (d_hi * xi * xi + (real)2 * s * tt + d_lo * one_m * one_m);
      out[l] = inv ? x_lo + xi * w : y_lo + h * (s * xi * xi + d_lo * tt) / den[l];
    }
    for (int l = 0; l < TILE; ++l) {
      const real v = b.v[l];
      const int inside = v >= -B && v <= B;
      const real logd = LOG(num[l] / (den[l] * den[l]));
      a->y[e0 + l] = inside ? out[l] : v;
      a->ld[e0 + l] = inside ? (inv ? -logd : logd) : (real)0;
    }
  }
  if (e0 < end) NAME(range)(a, e0, end);
}

/* Backward on tiles, as NAME(range_tiled): the partial derivatives and the gradients of the
   2 K knot parameters with every loop across the tile, the same operations in the same order
   as NAME(range), so that the results are the same bit for bit. */
ATTR_CLONES static void NAME(range_tiled_backward)(const NAME(args) *a, long begin, long end) {
  const int K = a->K, P = 3 * K - 1, inv = a->inverse;
  const real B = a->B;
  real ex[2 * K][TILE], rt[2 * K][TILE], gt[2 * K][TILE], total[2][TILE];
  real g_in[TILE], g_lo[2][TILE], g_hi[2][TILE], g_dlo[TILE], g_dhi[TILE];
  real inv_total[TILE], dot[TILE], sg_lo[TILE], sg_hi[TILE];
  NAME(tile) b;
  long e0 = begin;
  for (; e0 + TILE <= end; e0 += TILE) {
    if (NAME(tile_knots)(a, e0, ex, rt, total)) {
      NAME(range)(a, e0, e0 + TILE);
      continue;
    }
    NAME(tile_bins)(a, e0, rt, &b);
    for (int l = 0; l < TILE; ++l) {
      const int lo_free = b.idx[l] > 0, hi_free = b.idx[l] < K - 1;
      real w, h, s, curv;
      const real xi = NAME(tile_xi)(&b, l, inv, &w, &h, &s, &curv);
      const real gy = a->gy ? a->gy[e0 + l] : (real)0;
      const real gl = a->gl ? a->gl[e0 + l] : (real)0;
      real gr[7];
      NAME(element_grads)(xi, w, h, s, curv, b.d_lo[l], b.d_hi[l], gy, gl, inv, gr);
      g_in[l] = gr[0];
      g_dlo[l] = gr[5];
      g_dhi[l] = gr[6];
      g_lo[0][l] = lo_free ? gr[3] - gr[1] : (real)0; /* w = x_hi - x_lo, h = y_hi - y_lo */
      g_lo[1][l] = lo_free ? gr[4] - gr[2] : (real)0;
      g_hi[0][l] = hi_free ? gr[1] : (real)0;
      g_hi[1][l] = hi_free ? gr[2] : (real)0;
    }
    for (int r = 0; r < 2; ++r) {
      for (int l = 0; l < TILE; ++l) {
        inv_total[l] = (real)1 / total[r][l];
        dot[l] = 0;
      }
      for (int i = 0; i < K; ++i)
        for (int l = 0; l < TILE; ++l) {
          real acc = 0;
          if (i <= b.idx[l] - 1) acc += g_lo[r][l];
          if (i <= b.idx[l]) acc += g_hi[r][l];
          gt[r * K + i][l] = (real)2 * B * acc;
          dot[l] += gt[r * K + i][l] * ex[r * K + i][l] * inv_total[l];
        }
      for (int i = 0; i < K; ++i)
        for (int l = 0; l < TILE; ++l)
          gt[r * K + i][l] = ex[r * K + i][l] * inv_total[l] * (gt[r * K + i][l] - dot[l]);
    }
    for (int l = 0; l < TILE; ++l) {
      sg_lo[l] = NAME(sigmoid)(b.r_lo[l]);
      sg_hi[l] = NAME(sigmoid)(b.r_hi[l]);
    }
    for (int l = 0; l < TILE; ++l) {
      const long e = e0 + l;
      const int inside = b.v[l] >= -B && b.v[l] <= B;
      real *g = a->gt + e * P;
      if (!inside) {
        a->gx[e] = a->gy ? a->gy[e] : (real)0;
        memset(g, 0, sizeof(real) * P);
        continue;
      }
      a->gx[e] = g_in[l];
      for (int i = 0; i < 2 * K; ++i) g[i] = gt[i][l];
      real *gd = g + 2 * K;
      for (int i = 0; i < K - 1; ++i) gd[i] = 0;
      if (b.idx[l] > 0) gd[b.idx[l] - 1] += g_dlo[l] * sg_lo[l];
      if (b.idx[l] < K - 1) gd[b.idx[l]] += g_dhi[l] * sg_hi[l];
    }
  }
  if (e0 < end) NAME(range)(a, e0, end);
}

static void NAME(range_any)(const NAME(args) *a, long begin, long end) {
  if (a->backward) NAME(range_tiled_backward)(a, begin, end);
  else NAME(range_tiled)(a, begin, end);
}

typedef struct {
  const NAME(args) *a;
  long begin, end;
} NAME(chunk);

static void *NAME(worker)(void *p) {
  const NAME(chunk) *c = (const NAME(chunk) *)p;
  NAME(range_any)(c->a, c->begin, c->end);
  return NULL;
}

static void NAME(run)(const NAME(args) *a, int nthreads) {
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  if (nthreads < 1 || a->n < MIN_PER_THREAD * 2) nthreads = 1;
  while (nthreads > 1 && a->n / nthreads < MIN_PER_THREAD) --nthreads;
  if (nthreads == 1) {
    NAME(range_any)(a, 0, a->n);
    return;
  }
  pthread_t threads[MAX_THREADS];
  NAME(chunk) chunks[MAX_THREADS];
  int started[MAX_THREADS];
  long step = (a->n + nthreads - 1) / nthreads;
  for (int k = 0; k < nthreads; ++k) {
    chunks[k].a = a;
    chunks[k].begin = k * step < a->n ? k * step : a->n;
    chunks[k].end = (k + 1) * step < a->n ? (k + 1) * step : a->n;
    started[k] = 0;
  }
  for (int k = 1; k < nthreads; ++k)
    started[k] = pthread_create(&threads[k], NULL, NAME(worker), &chunks[k]) == 0;
  NAME(range_any)(a, chunks[0].begin, chunks[0].end);
  for (int k = 1; k < nthreads; ++k) {
    if (started[k]) pthread_join(threads[k], NULL);
    else NAME(range_any)(a, chunks[k].begin, chunks[k].end); /* no thread: run it here */
  }
}

void NAME(afg_spline_forward)(const real *x, const real *theta, real *y, real *ld, long n,
                              int K, double B, int inverse, int nthreads) {
  NAME(args) a = {x, theta, NULL, NULL, y, ld, NULL, NULL, n, K, inverse, 0, (real)B};
  NAME(run)(&a, nthreads);
}

void NAME(afg_spline_backward)(const real *x, const real *theta, const real *gy,
                               const real *gl, real *gx, real *gt, long n, int K, double B,
                               int inverse, int nthreads) {
  NAME(args) a = {x, theta, gy, gl, NULL, NULL, gx, gt, n, K, inverse, 1, (real)B};
  NAME(run)(&a, nthreads);
}
"""

HEADER = r"""
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#define MAX_THREADS 64
#define MIN_PER_THREAD 1024
#define TILE 16
#define ATTR_CLONES __attribute__((target_clones("avx2", "default")))

/* exp in float32 without a libm call, so that loops over the K bins vectorise: 2^n 2^(r/ln2)
   with n = round(x / ln 2), r reduced in two parts of ln 2, and a degree-6 polynomial; relative
   error below 2e-7 (about 1.5 ulp), arguments clamped to [-87.3, 88.7] (no overflow to inf, no
   denormals: the callers test the sums), NaN passed through. */
static inline float vexp_f32(float x) {
  const float xc = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  union { int i; float f; } scale;
  scale.i = ((int)n + 127) << 23;
  const float out = p * scale.f;
  return x != x ? x : out;
}
int afg_abi_version(void) { return 1; }
"""


def source() -> str:
    """The complete C translation unit: the body for ``float`` (suffix ``_f32``) and for
    ``double`` (suffix ``_f64``)."""
    parts = [HEADER]
    for real, suffix, fns, floor, tiny in (
        ("float", "f32", ("expf", "log1pf", "logf", "sqrtf", "vexp_f32"), "3.2927225e-10f",
         "1.17549435e-38f"),
        ("double", "f64", ("exp", "log1p", "log", "sqrt", "exp"), "1.221338669755462e-77",
         "2.2250738585072014e-308"),
    ):
        exp, log1p, log, sqrt, vexp = fns
        parts.append(
            f"#define real {real}\n#define NAME(x) x##_{suffix}\n#define EXP {exp}\n"
            f"#define LOG1P {log1p}\n#define LOG {log}\n#define SQRT {sqrt}\n#define VEXP {vexp}\n"
            f"#define FLOOR {floor}\n#define TINY {tiny}\n"
        )
        parts.append(BODY)
        parts.append(
            "#undef real\n#undef NAME\n#undef EXP\n#undef VEXP\n#undef LOG1P\n#undef LOG\n"
            "#undef SQRT\n#undef FLOOR\n#undef TINY\n"
        )
    return "".join(parts)
