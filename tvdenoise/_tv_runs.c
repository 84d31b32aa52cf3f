/* The value-and-gradient sweeps of the cases TVLoss meets most, one loop (or two) per row:
 * the anisotropic kind on one channel (channelwise colour, or grey) and the isotropic kind on
 * one or three channels. Part of _tv_kernel.c, which includes it once per type (TV_T,
 * TV_NAME, ...) after the helpers and macros it uses (shape_t, power_mode, power, phi_d, psi_d,
 * psi_of_steps, lanes_add, padded, TV_WHOLE_ROWS, TV_INLINE); tv_gradient dispatches to these,
 * the other cases to its coefficient planes. The differences, boundaries and terms are those of
 * _tv_kernel.c's header.
 *
 * Rows wider than TV_COLUMNS values are taken in blocks of columns, so that the rows a loop
 * reads and writes (up to six) stay in the first-level cache (32-48 KB). Measured, one thread:
 * 2048-wide rows 0.60 -> 0.54 ns per value for the isotropic sweep, which still takes about
 * twice as long per value on 2048- or 4096-wide rows as on rows of 1024 or less. */
#ifndef TV_COLUMNS
#define TV_COLUMNS 512
#endif

/* psi(d) from d and its term phi = phi_d(d): no second root or power. */
static inline TV_T TV_NAME(psi_of_phi)(TV_T d, TV_T phi, int mode, TV_T eps2, TV_T beta)
{
    const TV_T q = d * d + eps2;
    switch (mode) {
    case 0: return (TV_T)((d > 0) - (d < 0));
    case 1: return d / (q > 0 ? phi : 1);
    case 2: return 2 * d;
    default: return q > 0 ? beta * phi * d / q : 0;
    }
}

/* The anisotropic kind on one channel, one run of slabs [first, last) of one image, in one
 * sweep: the gradient into gimage, grad = sum_k w_k ih_k (psi_k(p - e_k) - psi_k(p)) with
 * w_k = weight * dir_weight[k], and the return value, the sum of the terms times
 * dir_weight[k] (skip_last: without the boundary's). Each difference's psi is evaluated once:
 * pz (a plane) holds psi along the slab axis, replaced row by row by the current slab's; py (a
 * row) psi along rows, pcol (a row, with a 0 before it) along the row's columns; t (a row)
 * is scratch. `end` is the end of x: a row's last column reads the next row's first value
 * (its difference is then set to 0) except at the end, so the loops run over whole rows. */
TV_WHOLE_ROWS static double TV_NAME(direct_run)(const TV_NAME(shape_t) *s, const TV_T *image,
                                                const TV_T *end, TV_T *gimage, long first,
                                                long last, int mode, TV_T eps2, TV_T half,
                                                TV_T beta, const double *dir_weight,
                                                TV_T weight, int skip_last, TV_T *restrict pz,
                                                TV_T *restrict py, TV_T *restrict pcol,
                                                TV_T *restrict t)
{
    const long W = s->width, R = s->rows, P = s->plane;
    const TV_T ih0 = s->ih[0], ih1 = s->ih[1], ih2 = s->ih[2];
    const TV_T c0 = (TV_T)(weight * dir_weight[0]) * ih0, c1 = (TV_T)(weight * dir_weight[1]) * ih1,
               c2 = (TV_T)(weight * dir_weight[2]) * ih2;
    const TV_T wz = (TV_T)dir_weight[0], wy = (TV_T)dir_weight[1], wx = (TV_T)dir_weight[2];
    const TV_T wedge = skip_last ? 0 : wx;
    if (first > 0)
        TV_NAME(psi_of_steps)(image + (first - 1) * P, image + first * P, P, ih0, mode, eps2,
                              half, beta, pz);
    else
        memset(pz, 0, sizeof(TV_T) * (size_t)P);
    double acc[16] = {0.0};
    for (long a = first; a < last; ++a) {
        const int has_slab = a < s->slabs - 1;
        const TV_T *slab = image + a * P, *nslab = has_slab ? slab + P : slab;
        const TV_T vz = has_slab || !skip_last ? wz : 0;
        if (s->nd == 3) memset(py, 0, sizeof(TV_T) * (size_t)W);
        for (long r = 0; r < R; ++r) {
            const long o = r * W;
            const TV_T *restrict x = slab + o, *restrict xa = nslab + o;
            const int has_row = r < R - 1;
            const TV_T *restrict xr = has_row ? x + W : x;
            const TV_T vy = has_row || !skip_last ? wy : 0;
            const long cols = x + W < end ? W : W - 1;
            TV_T *restrict g = gimage + a * P + o, *restrict pzr = pz + o;
/* Columns first (their psi is needed at j - 1 and j), then the other axes and the gradient;
 * the terms, times their direction's weight, gathered in t and added up once per row. */
#define TV_DIRECT_COLUMNS(m)                                                                 \
    _Pragma("omp simd") for (long j = 0; j < cols; ++j)                                      \
    {                                                                                        \
        const int inside = j < W - 1;                                                        \
        const TV_T next = x[j + 1], d = inside ? (next - x[j]) * ih2 : 0;                    \
        const TV_T f = TV_NAME(phi_d)(d, m, eps2, half);                                     \
        pcol[j] = TV_NAME(psi_of_phi)(d, f, m, eps2, beta);                                  \
        t[j] = (inside ? wx : wedge) * f;                                                    \
    }
#define TV_DIRECT_VOLUME(m)                                                                  \
    _Pragma("omp simd") for (long j = 0; j < W; ++j)                                         \
    {                                                                                        \
        const TV_T dz = (xa[j] - x[j]) * ih0, fz = TV_NAME(phi_d)(dz, m, eps2, half);        \
        const TV_T dy = (xr[j] - x[j]) * ih1, fy = TV_NAME(phi_d)(dy, m, eps2, half);        \
        const TV_T qz = TV_NAME(psi_of_phi)(dz, fz, m, eps2, beta);                          \
        const TV_T qy = TV_NAME(psi_of_phi)(dy, fy, m, eps2, beta);                          \
        g[j] = c0 * (pzr[j] - qz) + c1 * (py[j] - qy) + c2 * (pcol[j - 1] - pcol[j]);        \
        pzr[j] = qz;                                                                         \
        py[j] = qy;                                                                          \
        t[j] += vz * fz + vy * fy;                                                           \
    }
#define TV_DIRECT_IMAGE(m)                                                                   \
    _Pragma("omp simd") for (long j = 0; j < W; ++j)                                         \
    {                                                                                        \
        const TV_T dz = (xa[j] - x[j]) * ih0, fz = TV_NAME(phi_d)(dz, m, eps2, half);        \
        const TV_T qz = TV_NAME(psi_of_phi)(dz, fz, m, eps2, beta);                          \
        g[j] = c0 * (pzr[j] - qz) + c2 * (pcol[j - 1] - pcol[j]);                            \
        pzr[j] = qz;                                                                         \
        t[j] += vz * fz;                                                                     \
    }
#define TV_DIRECT_ROW(m)                                                                     \
    TV_DIRECT_COLUMNS(m)                                                                     \
    if (cols < W) {                                                                          \
        pcol[W - 1] = 0;                                                                     \
        t[W - 1] = wedge * TV_NAME(phi_d)(0, m, eps2, half);                                 \
    }                                                                                        \
    if (s->nd == 3) {                                                                        \
        TV_DIRECT_VOLUME(m)                                                                  \
    } else {                                                                                 \
        TV_DIRECT_IMAGE(m)                                                                   \
    }
            switch (mode) {
            case 0: TV_DIRECT_ROW(0) break;
            case 1: TV_DIRECT_ROW(1) break;
            case 2: TV_DIRECT_ROW(2) break;
            case 4: TV_DIRECT_ROW(4) break;
            case 5: TV_DIRECT_ROW(5) break;
            case 6: TV_DIRECT_ROW(6) break;
            default: TV_DIRECT_ROW(3) break;
            }
#undef TV_DIRECT_ROW
#undef TV_DIRECT_IMAGE
#undef TV_DIRECT_VOLUME
#undef TV_DIRECT_COLUMNS
            TV_NAME(lanes_add)(t, W, acc);
        }
    }
    return TV_NAME(lanes_total)(acc);
}

/* direct_run for beta 1 without smoothing (mode 0, psi = sign d) and beta 2 (mode 2,
 * psi = 2 d), whose psi costs less than keeping it: each row is one loop that recomputes every
 * difference from x, and spacing and the factor 2 are folded into the weights. The boundary's
 * terms are 0, or eps^2 (mode 2), added by count. `begin` and `end` bound x: the loop reads a
 * row's neighbours left of its first and right of its last value (their differences then
 * masked to 0), so a row at either end of x is read from a copy in pad (W + 2 values). */
TV_WHOLE_ROWS static double TV_NAME(direct_run_fast)(const TV_NAME(shape_t) *s, const TV_T *image,
                                       const TV_T *begin, const TV_T *end, TV_T *gimage,
                                       long first, long last, int mode, TV_T eps2,
                                       const double *dir_weight, TV_T weight, int skip_last,
                                       TV_T *restrict pad)
{
    const long W = s->width, R = s->rows, P = s->plane, A = s->slabs;
    const int w = (int)W;
    TV_T c[3];
    for (int k = 0; k < 3; ++k) {
        const TV_T wk = (TV_T)(weight * dir_weight[k]);
        c[k] = mode == 0 ? wk * s->ih[k] : 2 * wk * s->ih2[k];
    }
    const TV_T c0 = c[0], c1 = c[1], c2 = c[2];
    double sums[3] = {0.0, 0.0, 0.0};
    for (long a = first; a < last; ++a) {
        const TV_T *slab = image + a * P;
        const TV_T *pslab = a > 0 ? slab - P : slab, *nslab = a < A - 1 ? slab + P : slab;
        for (long r = 0; r < R; ++r) {
            const long o = r * W;
            const TV_T *x = slab + o;
            const TV_T *restrict xp = pslab + o, *restrict xa = nslab + o;
            const TV_T *restrict yp = s->nd == 3 && r > 0 ? x - W : x;
            const TV_T *restrict ya = s->nd == 3 && r < R - 1 ? x + W : x;
            const TV_T *restrict xc = x;
            if (x == begin || x + W == end) {
                memcpy(pad + 1, x, sizeof(TV_T) * (size_t)W);
                pad[0] = pad[W + 1] = 0;
                xc = pad + 1;
            }
            TV_T *restrict g = gimage + a * P + o;
            TV_T sz = 0, sy = 0, sx = 0;
#define TV_SIGN(d) ((d) != 0 ? TV_COPYSIGN((TV_T)1, d) : (TV_T)0)
#define TV_SAME(d) (d)
#define TV_ABS(d) TV_FABS(d)
#define TV_SQUARE(d) ((d) * (d))
/* The differences at p: to the next value along slabs (dz), rows (dy) and columns (dr), and
 * from the previous one (dp, dq, dl); grad = c_k (psi(from) - psi(to)) summed over k. */
#define TV_FAST_COMMON                                                                       \
    const TV_T v = xc[j], dz = xa[j] - v, dp = v - xp[j];                                    \
    const TV_T right = xc[j + 1] - v, left = v - xc[j - 1];                                  \
    const TV_T dr = j < w - 1 ? right : 0, dl = j > 0 ? left : 0;
#define TV_FAST_IMAGE(PSI, PHI)                                                              \
    _Pragma("omp simd reduction(+:sz, sx)") for (int j = j0; j < j1; ++j)                    \
    {                                                                                        \
        TV_FAST_COMMON                                                                       \
        g[j] = c0 * (PSI(dp) - PSI(dz)) + c2 * (PSI(dl) - PSI(dr));                          \
        sz += PHI(dz);                                                                       \
        sx += PHI(dr);                                                                       \
    }
#define TV_FAST_VOLUME(PSI, PHI)                                                             \
    _Pragma("omp simd reduction(+:sz, sy, sx)") for (int j = j0; j < j1; ++j)                \
    {                                                                                        \
        TV_FAST_COMMON                                                                       \
        const TV_T dy = ya[j] - v, dq = v - yp[j];                                           \
        g[j] = c0 * (PSI(dp) - PSI(dz)) + c1 * (PSI(dq) - PSI(dy)) +                         \
               c2 * (PSI(dl) - PSI(dr));                                                     \
        sz += PHI(dz);                                                                       \
        sy += PHI(dy);                                                                       \
        sx += PHI(dr);                                                                       \
    }
#define TV_FAST_BLOCK                                                                        \
    if (mode == 0 && s->nd == 3) {                                                           \
        TV_FAST_VOLUME(TV_SIGN, TV_ABS)                                                      \
    } else if (mode == 0) {                                                                  \
        TV_FAST_IMAGE(TV_SIGN, TV_ABS)                                                       \
    } else if (s->nd == 3) {                                                                 \
        TV_FAST_VOLUME(TV_SAME, TV_SQUARE)                                                   \
    } else {                                                                                 \
        TV_FAST_IMAGE(TV_SAME, TV_SQUARE)                                                    \
    }
            /* A row of one block keeps constant bounds: a loop from a variable start cost
             * a third more on the 128-wide rows of volumes. */
            if (w <= TV_COLUMNS) {
                const int j0 = 0, j1 = w;
                TV_FAST_BLOCK
            } else {
                for (int j0 = 0; j0 < w; j0 += TV_COLUMNS) {
                    const int j1 = j0 + TV_COLUMNS < w ? j0 + TV_COLUMNS : w;
                    TV_FAST_BLOCK
                }
            }
#undef TV_FAST_BLOCK
#undef TV_FAST_VOLUME
#undef TV_FAST_IMAGE
#undef TV_FAST_COMMON
#undef TV_SQUARE
#undef TV_ABS
#undef TV_SAME
#undef TV_SIGN
            sums[0] += (double)sz;
            sums[1] += (double)sy;
            sums[2] += (double)sx;
        }
    }
    double total = 0.0;
    for (int k = 0; k < 3; ++k) {
        if (k == 1 && s->nd != 3) continue;
        const double ih = s->ih[k], n_k = k == 0 ? (double)A : k == 1 ? (double)R : (double)W;
        total += dir_weight[k] * (mode == 0 ? ih : ih * ih) * sums[k];
        if (mode == 2 && eps2 > 0) {
            /* eps^2 for each term of the run: one per value, the boundary's left out with
             * skip_last (the slab axis: only where the run holds the last slab). */
            double terms = (double)(last - first) * (double)P;
            if (skip_last && k == 0 && last == A) terms -= (double)P;
            if (skip_last && k != 0) terms -= terms / n_k;
            total += dir_weight[k] * (double)eps2 * terms;
        }
    }
    return total;
}

/* The isotropic kind's fluxes of columns [j0, j1) of row r of slab a (C channels, 1 or 3), and
 * the sum of their terms, in one loop: with D_k the differences (times ih_k) and a the
 * coefficient of the terms, beta (s + eps^2)^(beta/2 - 1) times weight, F_k = a D_k for each
 * channel, into fz, fy and fx (channel c at c * zstride in fz, c * stride in the others; fy
 * only for volumes). The gradient is then sum_k ih_k (F_k(p - e_k) - F_k(p)). Rows at either
 * end of x are read from copies in pad (C rows of W + 2), made when j0 is 0, so a row's
 * blocks are taken in order. */
TV_WHOLE_ROWS TV_INLINE double TV_NAME(isotropic_fluxes)(const TV_NAME(shape_t) *s,
                                                      const TV_T *image, const TV_T *begin,
                                                      const TV_T *end, long a, long r,
                                                      double beta, TV_T eps2, TV_T weight,
                                                      TV_T *restrict fz, TV_T *restrict fy,
                                                      TV_T *restrict fx, long zstride,
                                                      long stride, TV_T *restrict pad, int j0,
                                                      int j1)
{
    const long W = s->width, V = s->volume, C = s->channels;
    const int w = (int)W;
    const TV_T ih0 = s->ih[0], ih1 = s->ih[1], ih2 = s->ih[2], half = (TV_T)(beta / 2);
    const TV_T bw = (TV_T)beta * weight;
    const long o = a * s->plane + r * W;
    const long next_slab = a < s->slabs - 1 ? s->plane : 0;
    const long next_row = s->nd == 3 && r < s->rows - 1 ? W : 0;
    const TV_T *xs[3] = {NULL, NULL, NULL}, *zs[3] = {NULL, NULL, NULL};
    const TV_T *ys[3] = {NULL, NULL, NULL};
    for (long c = 0; c < C; ++c) {
        const TV_T *x = image + c * V + o;
        zs[c] = x + next_slab;
        ys[c] = x + next_row;
        xs[c] = x;
        if (x == begin || x + W == end) {
            TV_T *copy = pad + c * (W + 2) + 1;
            if (j0 == 0) {
                memcpy(copy, x, sizeof(TV_T) * (size_t)W);
                copy[-1] = copy[W] = 0;
            }
            xs[c] = copy;
        }
    }
    const TV_T *restrict x0 = xs[0], *restrict x1 = xs[1], *restrict x2 = xs[2];
    const TV_T *restrict z0 = zs[0], *restrict z1 = zs[1], *restrict z2 = zs[2];
    const TV_T *restrict y0 = ys[0], *restrict y1 = ys[1], *restrict y2 = ys[2];
    TV_T total = 0;
    const int pmode = TV_NAME(power_mode)(beta);
/* Channel X's differences (dz, dy, dr), added to the squared magnitude sq. */
#define TV_ISO_DIFFS(X, Z, Y, n, ROWS)                                                       \
    const TV_T v##n = X[j], dz##n = (Z[j] - v##n) * ih0, right##n = X[j + 1] - v##n;         \
    const TV_T dr##n = j < w - 1 ? right##n * ih2 : 0;                                       \
    const TV_T dy##n = ROWS ? (Y[j] - v##n) * ih1 : 0;                                       \
    sq += dz##n * dz##n + dr##n * dr##n + (ROWS ? dy##n * dy##n : 0);
#define TV_ISO_FLUX(n, ROWS)                                                                 \
    fz[n * zstride + j] = k * dz##n;                                                         \
    fx[n * stride + j] = k * dr##n;                                                          \
    if (ROWS) fy[n * stride + j] = k * dy##n;
#define TV_ISO_CHANNELS_1(STEP, ROWS) STEP(x0, z0, y0, 0, ROWS)
#define TV_ISO_CHANNELS_3(STEP, ROWS)                                                        \
    STEP(x0, z0, y0, 0, ROWS) STEP(x1, z1, y1, 1, ROWS) STEP(x2, z2, y2, 2, ROWS)
#define TV_ISO_FLUX_OF(X, Z, Y, n, ROWS) TV_ISO_FLUX(n, ROWS)
#define TV_ISO_LOOP(CHANNELS, ROWS, PHI_COEF)                                                \
    _Pragma("omp simd reduction(+:total)") for (int j = j0; j < j1; ++j)                     \
    {                                                                                        \
        TV_T sq = 0;                                                                         \
        CHANNELS(TV_ISO_DIFFS, ROWS)                                                         \
        const TV_T q = sq + eps2;                                                            \
        PHI_COEF                                                                             \
        CHANNELS(TV_ISO_FLUX_OF, ROWS)                                                       \
    }
/* phi(q) into total and the coefficient k, by beta: 1 (a root), 2, or any (a power, by
 * power_mode's way). */
#define TV_ISO_BETA1                                                                         \
    const TV_T root = TV_SQRT(q);                                                            \
    total += root;                                                                           \
    const TV_T k = q > 0 ? weight / (q > 0 ? root : 1) : 0;
#define TV_ISO_BETA2                                                                         \
    total += q;                                                                              \
    const TV_T k = bw;
#define TV_ISO_POWER(m)                                                                      \
    const TV_T safe = q > 0 ? q : 1, p = TV_NAME(power)(safe, m, half);                      \
    total += q > 0 ? p : 0;                                                                  \
    const TV_T k = q > 0 ? bw * p / safe : 0;
#define TV_ISO_BY_BETA(CHANNELS, ROWS)                                                       \
    if (beta == 1.0) {                                                                       \
        TV_ISO_LOOP(CHANNELS, ROWS, TV_ISO_BETA1)                                            \
    } else if (beta == 2.0) {                                                                \
        TV_ISO_LOOP(CHANNELS, ROWS, TV_ISO_BETA2)                                            \
    } else if (pmode == 4) {                                                                 \
        TV_ISO_LOOP(CHANNELS, ROWS, TV_ISO_POWER(4))                                         \
    } else if (pmode == 5) {                                                                 \
        TV_ISO_LOOP(CHANNELS, ROWS, TV_ISO_POWER(5))                                         \
    } else if (pmode == 6) {                                                                 \
        TV_ISO_LOOP(CHANNELS, ROWS, TV_ISO_POWER(6))                                         \
    } else {                                                                                 \
        TV_ISO_LOOP(CHANNELS, ROWS, TV_ISO_POWER(3))                                         \
    }
    if (C == 1 && s->nd == 2) {
        TV_ISO_BY_BETA(TV_ISO_CHANNELS_1, 0)
    } else if (C == 1) {
        TV_ISO_BY_BETA(TV_ISO_CHANNELS_1, 1)
    } else if (s->nd == 2) {
        TV_ISO_BY_BETA(TV_ISO_CHANNELS_3, 0)
    } else {
        TV_ISO_BY_BETA(TV_ISO_CHANNELS_3, 1)
    }
#undef TV_ISO_BY_BETA
#undef TV_ISO_POWER
#undef TV_ISO_BETA2
#undef TV_ISO_BETA1
#undef TV_ISO_LOOP
#undef TV_ISO_FLUX_OF
#undef TV_ISO_CHANNELS_3
#undef TV_ISO_CHANNELS_1
#undef TV_ISO_FLUX
#undef TV_ISO_DIFFS
    return (double)total;
}

/* Columns [j0, j1) of row r of slab a for isotropic_run: the fluxes (fz into zc, channel c at
 * c * zstride), then the gradient from them and those kept of the slab and row before (pz,
 * yp); for volumes the slab's fluxes are copied into pz as they are used. */
TV_WHOLE_ROWS TV_INLINE double TV_NAME(isotropic_block)(
    const TV_NAME(shape_t) *s, const TV_T *image, const TV_T *begin, const TV_T *end,
    TV_T *gimage, long a, long r, double beta, TV_T eps2, TV_T weight, TV_T *restrict pz,
    TV_T *restrict zc, long zstride, const TV_T *restrict yp, TV_T *restrict yc,
    TV_T *restrict xr, TV_T *restrict pad, int j0, int j1)
{
    const long W = s->width, P = s->plane, V = s->volume, C = s->channels;
    const long Wa = TV_NAME(padded)(W), Pa = TV_NAME(padded)(P);
    const TV_T ih0 = s->ih[0], ih1 = s->ih[1], ih2 = s->ih[2];
    const double total = TV_NAME(isotropic_fluxes)(s, image, begin, end, a, r, beta, eps2,
                                                   weight, zc, yc, xr, zstride, Wa, pad, j0, j1);
    for (long c = 0; c < C; ++c) {
        TV_T *restrict g = gimage + c * V + a * P + r * W, *restrict bz = pz + c * Pa + r * W;
        const TV_T *restrict fz = zc + c * zstride, *restrict fx = xr + c * Wa;
        const TV_T *restrict by = yp + c * Wa, *restrict fy = yc + c * Wa;
/* grad = sum_k ih_k (F_k(p - e_k) - F_k(p)). */
#define TV_ISO_GRADIENT(ROWS)                                                                \
    _Pragma("omp simd") for (int j = j0; j < j1; ++j)                                        \
    {                                                                                        \
        TV_T out = ih0 * (bz[j] - fz[j]) + ih2 * (fx[j - 1] - fx[j]);                        \
        if (ROWS) {                                                                          \
            out += ih1 * (by[j] - fy[j]);                                                    \
            bz[j] = fz[j];                                                                   \
        }                                                                                    \
        g[j] = out;                                                                          \
    }
        if (s->nd == 3) {
            TV_ISO_GRADIENT(1)
        } else {
            TV_ISO_GRADIENT(0)
        }
#undef TV_ISO_GRADIENT
    }
    return total;
}

/* The isotropic kind, one run of slabs [first, last) of one image of 1 or 3 channels, in one
 * sweep: the gradient into gimage and the sum of the terms (returned). Per channel, pz (a
 * plane) holds the fluxes along the slab axis of the previous slab; zc those of the current
 * row, for volumes (copied into pz as they are used), or of the current slab, for images
 * (whose slabs are rows: pz and zc then trade places, no copy); yp and yc (rows) the fluxes
 * along rows, of the previous and the current row; xr (a row, with a 0 before it) along the
 * row's columns; each plane and row starts on a vector. buffer holds
 * C * (2 padded(P) + 4 padded(W)) + 16 values. */
TV_WHOLE_ROWS static double TV_NAME(isotropic_run)(const TV_NAME(shape_t) *s, const TV_T *image,
                                                   const TV_T *begin, const TV_T *end,
                                                   TV_T *gimage, long first, long last,
                                                   double beta, TV_T eps2, TV_T weight,
                                                   TV_T *buffer)
{
    const long W = s->width, R = s->rows, P = s->plane, C = s->channels;
    const long Wa = TV_NAME(padded)(W), Pa = TV_NAME(padded)(P);
    const int w = (int)W, nd3 = s->nd == 3;
    const long zstride = nd3 ? Wa : Pa;
    TV_T *pz = buffer, *zc = pz + C * Pa, *yp = zc + C * Pa, *yc = yp + C * Wa;
    TV_T *xr = yc + C * Wa + 16, *pad = xr + C * Wa;
    for (long c = 0; c < C; ++c) xr[c * Wa - 1] = 0;
    if (first > 0) {
        for (long r = 0; r < R; ++r)
            TV_NAME(isotropic_fluxes)(s, image, begin, end, first - 1, r, beta, eps2, weight,
                                      pz + r * W, yc, xr, Pa, Wa, pad, 0, w);
    } else {
        memset(pz, 0, sizeof(TV_T) * (size_t)(C * Pa));
    }
    double total = 0.0;
    for (long a = first; a < last; ++a) {
        if (nd3) memset(yp, 0, sizeof(TV_T) * (size_t)(C * Wa)); /* no row before the first */
        for (long r = 0; r < R; ++r) {
            /* As in direct_run_fast, a row of one block keeps constant bounds. */
            if (w <= TV_COLUMNS) {
                total += TV_NAME(isotropic_block)(s, image, begin, end, gimage, a, r, beta, eps2,
                                                  weight, pz, zc, zstride, yp, yc, xr, pad, 0, w);
            } else {
                for (int j0 = 0; j0 < w; j0 += TV_COLUMNS) {
                    const int j1 = j0 + TV_COLUMNS < w ? j0 + TV_COLUMNS : w;
                    total += TV_NAME(isotropic_block)(s, image, begin, end, gimage, a, r, beta,
                                                      eps2, weight, pz, zc, zstride, yp, yc, xr,
                                                      pad, j0, j1);
                }
            }
            TV_T *t = yp;
            yp = yc;
            yc = t;
        }
        if (!nd3) {
            TV_T *t = pz;
            pz = zc;
            zc = t;
        }
    }
    return total;
}
