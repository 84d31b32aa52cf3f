/* Fused Chambolle-Pock iterations for the L2 ROF problem (beta = 1) on volumes.
 *
 * The volume counterpart of _rof_kernel.c, compiled at run time by
 * tvdenoise/native.py and called through ctypes on contiguous CPU tensors by
 * tvdenoise/solvers/rof_volume.py: the iterations, and the energy, dual value and change
 * of the gap check (rof_volume_measure, in double precision).
 *
 * Layout: u, ubar, f are (images, channels, d, h, w); p is (images, channels, K, d, h, w)
 * with K = 3 (components 0, 1, 2: forward differences along z, y, x, divided by the grid
 * spacing) or K = 6 for symmetric TV (3, 4, 5: the backward differences u[i] - u[i - 1]).
 * The last entry of a forward component along its axis and the first of a backward one are
 * 0 and stay 0 (the difference is 0 there), so the divergence needs no boundary tests along
 * them.  Channels are coupled in the dual norm (vectorial colour); channelwise colour is
 * passed as images * channels images of one channel.
 *
 * kind 0 isotropic (one ball per voxel), 1 anisotropic (one interval per direction), 2
 * symmetric (one ball per stencil, of radius weight / 2: the caller passes the radius).
 *
 * One iteration (Chambolle & Pock 2011, Algorithm 2, G(u) = 1/2 ||u - f||^2):
 *   p    <- project_{|p| <= radius}(p + sigma D ubar)
 *   u'   <- (u + tau div p + tau f) / (1 + tau)
 *   ubar <- u' + theta (u' - u),  theta = 1 / sqrt(1 + 2 gamma tau); tau *= theta; sigma /= theta
 * as two sweeps (dual, then primal), each parallel over the rows (image, z, y).
 */
#include <math.h>
#include <stdlib.h>

#define DEFINE_VOLUME_KERNELS(T, SUFFIX, SQRT)                                                    \
    static void volume_dual_##SUFFIX(const T *ubar, T *p, long images, long channels, long d,   \
                                     long h, long w, int kind, T radius, const T *scale,       \
                                     int threads)                                              \
    {                                                                                          \
        const long plane = h * w, volume = d * plane, comps = kind == 2 ? 6 : 3;               \
        const long rows = images * d * h;                                                      \
        const T s0 = scale[0], s1 = scale[1], s2 = scale[2];                                   \
        _Pragma("omp parallel num_threads(threads)")                                           \
        {                                                                                      \
            T *norm = (T *)malloc(sizeof(T) * (size_t)(3 * w));                               \
            _Pragma("omp for schedule(static)")                                                \
            for (long row = 0; row < rows; ++row) {                                            \
                const long n = row / (d * h), z = (row / h) % d, y = row % h;                  \
                const long at = z * plane + y * w;                                             \
                for (long j = 0; j < 3 * w; ++j) norm[j] = 0;                                  \
                for (long c = 0; c < channels; ++c) {                                          \
                    const T *restrict ub = ubar + (n * channels + c) * volume + at;            \
                    T *restrict q0 = p + ((n * channels + c) * comps) * volume + at;           \
                    T *restrict q1 = q0 + volume, *restrict q2 = q1 + volume;                  \
                    if (z < d - 1) {                                                           \
                        const T *restrict next = ub + plane;                                   \
                        for (long j = 0; j < w; ++j) q0[j] += s0 * (next[j] - ub[j]);    \
                    }                                                                          \
                    if (y < h - 1) {                                                           \
                        const T *restrict next = ub + w;                                       \
                        for (long j = 0; j < w; ++j) q1[j] += s1 * (next[j] - ub[j]);    \
                    }                                                                          \
                    for (long j = 0; j + 1 < w; ++j) q2[j] += s2 * (ub[j + 1] - ub[j]);  \
                    T *restrict norm0 = norm, *restrict norm1 = norm + w;                      \
                    T *restrict norm2 = norm + 2 * w;                                          \
                    if (kind == 2) {                                                           \
                        T *restrict q3 = q2 + volume, *restrict q4 = q3 + volume;              \
                        T *restrict q5 = q4 + volume;                                          \
                        if (z > 0) {                                                           \
                            const T *restrict prev = ub - plane;                               \
                            for (long j = 0; j < w; ++j) q3[j] += s0 * (ub[j] - prev[j]); \
                        }                                                                      \
                        if (y > 0) {                                                           \
                            const T *restrict prev = ub - w;                                   \
                            for (long j = 0; j < w; ++j) q4[j] += s1 * (ub[j] - prev[j]); \
                        }                                                                      \
                        for (long j = 1; j < w; ++j) q5[j] += s2 * (ub[j] - ub[j - 1]);  \
                        for (long j = 0; j < w; ++j) {                                         \
                            norm0[j] += q0[j] * q0[j] + q1[j] * q1[j] + q2[j] * q2[j];         \
                            norm1[j] += q3[j] * q3[j] + q4[j] * q4[j] + q5[j] * q5[j];         \
                        }                                                                      \
                    } else if (kind == 0) {                                                    \
                        for (long j = 0; j < w; ++j)                                           \
                            norm0[j] += q0[j] * q0[j] + q1[j] * q1[j] + q2[j] * q2[j];         \
                    } else {                                                                   \
                        for (long j = 0; j < w; ++j) {                                         \
                            norm0[j] += q0[j] * q0[j];                                         \
                            norm1[j] += q1[j] * q1[j];                                         \
                            norm2[j] += q2[j] * q2[j];                                         \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
                /* Scale factors radius / max(|p|, radius): 1 inside the ball. */              \
                const long balls = kind == 0 ? 1 : kind == 2 ? 2 : 3;                          \
                for (long j = 0; j < balls * w; ++j) {                                         \
                    const T m = SQRT(norm[j]);                                                 \
                    norm[j] = radius / (m > radius ? m : radius);                              \
                }                                                                              \
                for (long c = 0; c < channels; ++c) {                                          \
                    for (long k = 0; k < comps; ++k) {                                         \
                        T *restrict q = p + ((n * channels + c) * comps + k) * volume + at;    \
                        const T *restrict factor =                                             \
                            norm + (kind == 0 ? 0 : kind == 2 ? (k / 3) * w : k * w);          \
                        for (long j = 0; j < w; ++j) q[j] *= factor[j];                        \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            free(norm);                                                                        \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void volume_primal_##SUFFIX(T *u, T *ubar, const T *p, const T *f, long images,     \
                                       long channels, long d, long h, long w, int kind,        \
                                       const T *inverse, T tau, T theta, int threads)          \
    {                                                                                          \
        const long plane = h * w, volume = d * plane, comps = kind == 2 ? 6 : 3;               \
        const long rows = images * channels * d * h;                                           \
        const T shrink = (T)1 / ((T)1 + tau);                                                  \
        const T i0 = inverse[0], i1 = inverse[1], i2 = inverse[2];                             \
        _Pragma("omp parallel num_threads(threads)")                                           \
        {                                                                                      \
            T *acc = (T *)malloc(sizeof(T) * (size_t)w);                                      \
            _Pragma("omp for schedule(static)")                                                \
            for (long row = 0; row < rows; ++row) {                                            \
                const long image = row / (d * h), z = (row / h) % d, y = row % h;             \
                const long at = z * plane + y * w;                                             \
                const T *restrict q0 = p + (image * comps) * volume + at;                  \
                const T *restrict q1 = q0 + volume, *restrict q2 = q1 + volume;                \
                T *restrict a = acc;                                                           \
                /* Forward components: div = (q[i] - q[i - e]) / h, q[-1] counting as 0. */    \
                for (long j = 0; j < w; ++j)                                                   \
                    a[j] = q0[j] * i0 + q1[j] * i1 + q2[j] * i2;       \
                if (z > 0) {                                                                   \
                    const T *restrict prev = q0 - plane;                                       \
                    for (long j = 0; j < w; ++j) a[j] -= prev[j] * i0;                 \
                }                                                                              \
                if (y > 0) {                                                                   \
                    const T *restrict prev = q1 - w;                                           \
                    for (long j = 0; j < w; ++j) a[j] -= prev[j] * i1;                 \
                }                                                                              \
                for (long j = 1; j < w; ++j) a[j] -= q2[j - 1] * i2;                   \
                if (kind == 2) {                                                               \
                    /* Backward components: div = (q[i + e] - q[i]) / h, q[n] counting as 0. */ \
                    const T *restrict q3 = q2 + volume, *restrict q4 = q3 + volume;            \
                    const T *restrict q5 = q4 + volume;                                        \
                    for (long j = 0; j < w; ++j)                                               \
                        a[j] -= q3[j] * i0 + q4[j] * i1 + q5[j] * i2;  \
                    if (z < d - 1) {                                                           \
                        const T *restrict next = q3 + plane;                                   \
                        for (long j = 0; j < w; ++j) a[j] += next[j] * i0;             \
                    }                                                                          \
                    if (y < h - 1) {                                                           \
                        const T *restrict next = q4 + w;                                       \
                        for (long j = 0; j < w; ++j) a[j] += next[j] * i1;             \
                    }                                                                          \
                    for (long j = 0; j + 1 < w; ++j) a[j] += q5[j + 1] * i2;           \
                }                                                                              \
                T *restrict uu = u + image * volume + at;                                      \
                T *restrict ub = ubar + image * volume + at;                                   \
                const T *restrict ff = f + image * volume + at;                                \
                for (long j = 0; j < w; ++j) {                                                 \
                    const T next = (uu[j] + tau * (a[j] + ff[j])) * shrink;                    \
                    ub[j] = next + theta * (next - uu[j]);                                     \
                    uu[j] = next;                                                              \
                }                                                                              \
            }                                                                                  \
            free(acc);                                                                         \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void rof_volume_iterations_##SUFFIX(T *u, T *ubar, T *p, const T *f, long images,           \
                                        long channels, long d, long h, long w, int kind,       \
                                        double radius, const double *spacing, double *steps,   \
                                        double gamma, long iterations, int threads)            \
    {                                                                                          \
        T inverse[3], scale[3];                                                                \
        for (int k = 0; k < 3; ++k) inverse[k] = (T)(1.0 / spacing[k]);                        \
        double tau = steps[0], sigma = steps[1];                                               \
        for (long it = 0; it < iterations; ++it) {                                             \
            for (int k = 0; k < 3; ++k) scale[k] = (T)(sigma / spacing[k]);                    \
            volume_dual_##SUFFIX(ubar, p, images, channels, d, h, w, kind, (T)radius, scale,   \
                                 threads);                                                     \
            const double theta = 1.0 / sqrt(1.0 + 2.0 * gamma * tau);                          \
            volume_primal_##SUFFIX(u, ubar, p, f, images, channels, d, h, w, kind, inverse,    \
                                   (T)tau, (T)theta, threads);                                 \
            tau *= theta;                                                                      \
            sigma /= theta;                                                                    \
        }                                                                                      \
        steps[0] = tau;                                                                        \
        steps[1] = sigma;                                                                      \
    }                                                                                          \
    /* Per image n: out[4 n] the energy 1/2 ||u - f||^2 + weight TV(u), out[4 n + 1] the dual  \
     * value -sum (1/2 (div p)^2 + f div p), out[4 n + 2] ||ubar - u||^2, out[4 n + 3]         \
     * ||u||^2, summed in double. */                                                           \
    void rof_volume_measure_##SUFFIX(const T *u, const T *ubar, const T *p, const T *f,        \
                                     long images, long channels, long d, long h, long w,       \
                                     int kind, double weight, const double *spacing,           \
                                     double *out, int threads)                                 \
    {                                                                                          \
        const long plane = h * w, volume = d * plane, comps = kind == 2 ? 6 : 3;               \
        const double i0 = 1.0 / spacing[0], i1 = 1.0 / spacing[1], i2 = 1.0 / spacing[2];      \
        for (long n = 0; n < images; ++n) {                                                    \
            double fidelity = 0, tv = 0, dual_value = 0, change = 0, norm = 0;                 \
            _Pragma("omp parallel num_threads(threads) reduction(+ : fidelity, tv, dual_value, change, norm)") \
            {                                                                                  \
                double *sums = (double *)malloc(sizeof(double) * (size_t)(3 * w));             \
                _Pragma("omp for schedule(static)")                                            \
                for (long row = 0; row < d * h; ++row) {                                       \
                    const long z = row / h, y = row % h, at = z * plane + y * w;               \
                    for (long j = 0; j < 3 * w; ++j) sums[j] = 0;                              \
                    for (long c = 0; c < channels; ++c) {                                      \
                        const long base = (n * channels + c) * volume + at;                    \
                        const T *uu = u + base, *ff = f + base, *ub = ubar + base;             \
                        const T *q = p + (n * channels + c) * comps * volume + at;             \
                        for (long j = 0; j < w; ++j) {                                         \
                            const double v = uu[j], r = v - (double)ff[j];                     \
                            const double step = (double)ub[j] - v;                             \
                            const double gz = z < d - 1 ? ((double)uu[j + plane] - v) * i0 : 0; \
                            const double gy = y < h - 1 ? ((double)uu[j + w] - v) * i1 : 0;    \
                            const double gx = j < w - 1 ? ((double)uu[j + 1] - v) * i2 : 0;    \
                            fidelity += 0.5 * r * r;                                           \
                            change += step * step;                                             \
                            norm += v * v;                                                     \
                            if (kind == 1) {                                                   \
                                sums[j] += gz * gz;                                            \
                                sums[w + j] += gy * gy;                                        \
                                sums[2 * w + j] += gx * gx;                                    \
                            } else {                                                           \
                                sums[j] += gz * gz + gy * gy + gx * gx;                        \
                            }                                                                  \
                            if (kind == 2) {                                                   \
                                const double bz = z > 0 ? (v - (double)uu[j - plane]) * i0 : 0; \
                                const double by = y > 0 ? (v - (double)uu[j - w]) * i1 : 0;    \
                                const double bx = j > 0 ? (v - (double)uu[j - 1]) * i2 : 0;    \
                                sums[w + j] += bz * bz + by * by + bx * bx;                    \
                            }                                                                  \
                            /* div p at the voxel, as in the primal sweep. */                  \
                            const T *q0 = q, *q1 = q + volume, *q2 = q + 2 * volume;           \
                            double div = ((double)q0[j] - (z > 0 ? (double)q0[j - plane] : 0)) * i0 \
                                       + ((double)q1[j] - (y > 0 ? (double)q1[j - w] : 0)) * i1 \
                                       + ((double)q2[j] - (j > 0 ? (double)q2[j - 1] : 0)) * i2; \
                            if (kind == 2) {                                                   \
                                const T *q3 = q + 3 * volume, *q4 = q + 4 * volume;            \
                                const T *q5 = q + 5 * volume;                                  \
                                div += ((z < d - 1 ? (double)q3[j + plane] : 0) - (double)q3[j]) * i0 \
                                     + ((y < h - 1 ? (double)q4[j + w] : 0) - (double)q4[j]) * i1 \
                                     + ((j < w - 1 ? (double)q5[j + 1] : 0) - (double)q5[j]) * i2; \
                            }                                                                  \
                            dual_value -= 0.5 * div * div + (double)ff[j] * div;               \
                        }                                                                      \
                    }                                                                          \
                    double row_tv = 0;                                                         \
                    for (long j = 0; j < w; ++j) {                                             \
                        if (kind == 0) row_tv += sqrt(sums[j]);                                \
                        else if (kind == 1)                                                    \
                            row_tv += sqrt(sums[j]) + sqrt(sums[w + j]) + sqrt(sums[2 * w + j]); \
                        else row_tv += 0.5 * (sqrt(sums[j]) + sqrt(sums[w + j]));              \
                    }                                                                          \
                    tv += row_tv;                                                              \
                }                                                                              \
                free(sums);                                                                    \
            }                                                                                  \
            out[4 * n] = fidelity + weight * tv;                                               \
            out[4 * n + 1] = dual_value;                                                       \
            out[4 * n + 2] = change;                                                           \
            out[4 * n + 3] = norm;                                                             \
        }                                                                                      \
    }

DEFINE_VOLUME_KERNELS(float, f32, sqrtf)
DEFINE_VOLUME_KERNELS(double, f64, sqrt)
