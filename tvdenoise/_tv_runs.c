/* The value-and-gradient sweep of the case TVLoss meets most, two loops per row: the
 * anisotropic kind on one channel (channelwise colour, or grey). Part of _tv_kernel.c, which
 * includes it once per type (TV_T, TV_NAME, ...) after the helpers it uses (shape_t, phi_d,
 * psi_d, psi_of_steps, lanes_add); tv_gradient dispatches to it, the other cases to its
 * coefficient planes. The differences, boundaries and terms are those of _tv_kernel.c's
 * header. */

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
static double TV_NAME(direct_run)(const TV_NAME(shape_t) *s, const TV_T *image,
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
