/* Fused Chambolle-Pock iterations and primal-dual gap for the L2 ROF problem (beta = 1).
 *
 * Compiled at run time by tvdenoise/solvers/native.py (plain C99, OpenMP when available) and
 * called through ctypes on contiguous CPU tensors; tvdenoise/solvers/rof.py holds the same
 * algorithm in PyTorch operations, used where this cannot be compiled and on other devices.
 *
 * Layout: u, ubar, f are (images, channels, h, w); p is (images, channels, 2, h, w) with
 * component 0 the differences along rows (y) and 1 along columns (x).  Channels are coupled in
 * the dual norm (vectorial colour); channelwise colour is passed as images * channels images of
 * one channel.  The last row of p_y and the last column of p_x are 0 and stay 0 (the forward
 * difference is 0 there), so the divergence is plain backward differences.
 *
 * kind 0 is isotropic TV, 1 anisotropic, 2 symmetric: p then has 4 components per channel,
 * the forward pair (0, 1) and the backward pair (2, 3), u[i] - u[i - 1] along y and x, whose
 * first row (y) and first column (x) are 0; each pair is projected onto its own ball, of radius
 * weight / 2 (the caller passes that radius as `weight` to the iterations, and the TV weight
 * itself to the measure), and the divergence adds the backward pair's q[i + 1] - q[i].
 *
 * One iteration (Chambolle & Pock 2011, Algorithm 2, G(u) = 1/2 ||u - f||^2):
 *   p    <- project_{|p| <= weight}(p + sigma D ubar)
 *   u'   <- (u + tau div p + tau f) / (1 + tau)
 *   ubar <- u' + theta (u' - u),  theta = 1 / sqrt(1 + 2 gamma tau); tau *= theta; sigma /= theta
 * It runs as two sweeps (dual, then primal), each parallel over rows.
 */
#include <math.h>
#include <stdlib.h>

#define DEFINE_KERNELS(T, SUFFIX, SQRT)                                                              \
    static void dual_sweep_##SUFFIX(const T *ubar, T *p, long images, long channels, long h,   \
                                    long w, int kind, T weight, T sigma, int threads)          \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        _Pragma("omp parallel num_threads(threads)")                                           \
        {                                                                                      \
            T *norm_y = (T *)malloc(sizeof(T) * (size_t)(2 * w));                             \
            T *norm_x = norm_y + w;                                                            \
            _Pragma("omp for schedule(static)")                                                \
            for (long row = 0; row < images * h; ++row) {                                      \
                const long n = row / h, i = row % h;                                           \
                for (long j = 0; j < w; ++j) norm_y[j] = norm_x[j] = 0;                        \
                for (long c = 0; c < channels; ++c) {                                          \
                    const T *restrict ub = ubar + (n * channels + c) * plane + i * w;          \
                    T *restrict py = p + ((n * channels + c) * 2 * pairs) * plane + i * w;     \
                    T *restrict px = py + plane;                                               \
                    if (i < h - 1) {                                                           \
                        const T *below = ub + w;                                               \
                        for (long j = 0; j < w; ++j) py[j] += sigma * (below[j] - ub[j]);      \
                    }                                                                          \
                    for (long j = 0; j < w - 1; ++j) px[j] += sigma * (ub[j + 1] - ub[j]);     \
                    if (kind == 2) {                                                           \
                        /* norm_y: the forward pair's squares, norm_x: the backward pair's. */ \
                        T *restrict qy = px + plane;                                           \
                        T *restrict qx = qy + plane;                                           \
                        if (i > 0) {                                                           \
                            const T *above = ub - w;                                           \
                            for (long j = 0; j < w; ++j) qy[j] += sigma * (ub[j] - above[j]);  \
                        }                                                                      \
                        for (long j = 1; j < w; ++j) qx[j] += sigma * (ub[j] - ub[j - 1]);     \
                        for (long j = 0; j < w; ++j) {                                         \
                            norm_y[j] += py[j] * py[j] + px[j] * px[j];                        \
                            norm_x[j] += qy[j] * qy[j] + qx[j] * qx[j];                        \
                        }                                                                      \
                    } else {                                                                   \
                        for (long j = 0; j < w; ++j) {                                         \
                            norm_y[j] += py[j] * py[j];                                        \
                            norm_x[j] += px[j] * px[j];                                        \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
                /* Scale factors weight / max(|p|, weight): 1 inside the ball, branch-free so \
                 * the loops vectorise (sqrt and division in the working precision); one       \
                 * per pixel (isotropic), direction (anisotropic) or stencil (symmetric). */   \
                if (kind == 0) {                                                               \
                    for (long j = 0; j < w; ++j) {                                             \
                        const T m = SQRT(norm_y[j] + norm_x[j]);                               \
                        norm_y[j] = norm_x[j] = weight / (m > weight ? m : weight);            \
                    }                                                                          \
                } else {                                                                       \
                    for (long j = 0; j < w; ++j) {                                             \
                        const T my = SQRT(norm_y[j]), mx = SQRT(norm_x[j]);                    \
                        norm_y[j] = weight / (my > weight ? my : weight);                      \
                        norm_x[j] = weight / (mx > weight ? mx : weight);                      \
                    }                                                                          \
                }                                                                              \
                for (long c = 0; c < channels; ++c) {                                          \
                    T *py = p + ((n * channels + c) * 2 * pairs) * plane + i * w;              \
                    T *px = py + plane;                                                        \
                    if (kind == 2) {                                                           \
                        T *qy = px + plane, *qx = qy + plane;                                  \
                        for (long j = 0; j < w; ++j) {                                         \
                            py[j] *= norm_y[j];                                                \
                            px[j] *= norm_y[j];                                                \
                            qy[j] *= norm_x[j];                                                \
                            qx[j] *= norm_x[j];                                                \
                        }                                                                      \
                    } else {                                                                   \
                        for (long j = 0; j < w; ++j) {                                         \
                            py[j] *= norm_y[j];                                                \
                            px[j] *= norm_x[j];                                                \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            free(norm_y);                                                                      \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void primal_sweep_##SUFFIX(T *u, T *ubar, const T *p, const T *f, long images,      \
                                      long channels, long h, long w, int kind, T tau,          \
                                      T theta, int threads)                                    \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        const T scale = (T)1 / ((T)1 + tau);                                                   \
        T *zeros = (T *)calloc((size_t)w, sizeof(T));                                          \
        _Pragma("omp parallel num_threads(threads)")                                           \
        {                                                                                      \
        _Pragma("omp for schedule(static)")                                                    \
        for (long row = 0; row < images * channels * h; ++row) {                               \
            const long image = row / h, i = row % h;                                           \
            const T *restrict py = p + image * 2 * pairs * plane + i * w;                      \
            const T *restrict px = py + plane;                                                 \
            /* Row -1 of p_y and column -1 of p_x count as 0: branch-free inner loop. */       \
            const T *restrict above = i > 0 ? py - w : zeros;                                  \
            /* The backward pair: row h of q_y counts as 0, and its row 0 and q_x's column 0   \
             * hold 0; column w of q_x is handled at j = w - 1. */                             \
            const T *restrict qy = kind == 2 ? px + plane : zeros;                             \
            const T *restrict qx = kind == 2 ? px + 2 * plane : zeros;                         \
            const T *restrict qy_below = kind == 2 && i < h - 1 ? qy + w : zeros;              \
            const long qx_step = kind == 2 ? 1 : 0;                                            \
            T *restrict uu = u + image * plane + i * w;                                        \
            T *restrict ub = ubar + image * plane + i * w;                                     \
            const T *restrict ff = f + image * plane + i * w;                                  \
            for (long j = 0; j < w; j += w > 1 ? w - 1 : 1) {                                  \
                T d = py[j] - above[j] + px[j] + qy_below[j] - qy[j] - qx[j * qx_step];        \
                if (j > 0) d -= px[j - 1];                                                     \
                if (j < w - 1) d += qx[(j + 1) * qx_step];                                     \
                const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;                \
                uu[j] = new_u;                                                                 \
                ub[j] = new_u + theta * (new_u - old);                                         \
            }                                                                                  \
            if (kind == 2) {                                                                   \
                for (long j = 1; j < w - 1; ++j) {                                             \
                    const T d = py[j] - above[j] + px[j] - px[j - 1] + qy_below[j] - qy[j]     \
                                + qx[j + 1] - qx[j];                                           \
                    const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;            \
                    uu[j] = new_u;                                                             \
                    ub[j] = new_u + theta * (new_u - old);                                     \
                }                                                                              \
            } else {                                                                           \
                for (long j = 1; j < w - 1; ++j) {                                             \
                    const T d = py[j] - above[j] + px[j] - px[j - 1];                          \
                    const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;            \
                    uu[j] = new_u;                                                             \
                    ub[j] = new_u + theta * (new_u - old);                                     \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        }                                                                                      \
        free(zeros);                                                                           \
    }                                                                                          \
    /* Run `iterations` iterations; step[0] = tau and step[1] = sigma are updated in place. */ \
    void rof_cp_iterations_##SUFFIX(T *u, T *ubar, T *p, const T *f, long images,              \
                                    long channels, long h, long w, int kind,                   \
                                    double weight, double *step, double gamma,                 \
                                    long iterations, int threads)                              \
    {                                                                                          \
        double tau = step[0], sigma = step[1];                                                 \
        for (long k = 0; k < iterations; ++k) {                                                \
            const double theta = 1.0 / sqrt(1.0 + 2.0 * gamma * tau);                          \
            dual_sweep_##SUFFIX(ubar, p, images, channels, h, w, kind, (T)weight, (T)sigma,    \
                                threads);                                                      \
            primal_sweep_##SUFFIX(u, ubar, p, f, images, channels, h, w, kind, (T)tau,         \
                                  (T)theta, threads);                                          \
            tau *= theta;                                                                      \
            sigma /= theta;                                                                    \
        }                                                                                      \
        step[0] = tau;                                                                         \
        step[1] = sigma;                                                                       \
    }                                                                                          \
                                                                                               \
    /* Per image n, in double, into out[4 n .. 4 n + 3]: the energy                           \
     * 1/2 ||u - f||^2 + weight TV(u), the dual value -1/2 ||div p||^2 - <f, div p>,           \
     * ||ubar - u||^2 and ||u||^2 (ubar - u = theta (u - u_previous) after an iteration). */   \
    void rof_measure_##SUFFIX(const T *u, const T *ubar, const T *p, const T *f, long images,   \
                              long channels, long h, long w, int kind, double weight,          \
                              double *out, int threads)                                        \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        for (long n = 0; n < images; ++n) {                                                    \
            double fidelity = 0, tv = 0, dual_value = 0, change = 0, norm = 0;                 \
            _Pragma("omp parallel for schedule(static) num_threads(threads) reduction(+ : fidelity, tv, dual_value, change, norm)") \
            for (long i = 0; i < h; ++i) {                                                     \
                for (long j = 0; j < w; ++j) {                                                 \
                    double sum_y = 0, sum_x = 0, sum_back = 0;                                 \
                    for (long c = 0; c < channels; ++c) {                                      \
                        const long at = (n * channels + c) * plane + i * w + j;                \
                        const T *py = p + ((n * channels + c) * 2 * pairs) * plane + i * w + j;\
                        const T *px = py + plane;                                              \
                        const double uv = u[at], r = uv - (double)f[at];                       \
                        const double gy = i < h - 1 ? (double)u[at + w] - uv : 0.0;            \
                        const double gx = j < w - 1 ? (double)u[at + 1] - uv : 0.0;            \
                        double d = (double)*py + (double)*px;                                  \
                        if (i > 0) d -= (double)*(py - w);                                     \
                        if (j > 0) d -= (double)*(px - 1);                                     \
                        if (kind == 2) {                                                       \
                            const T *qy = px + plane, *qx = qy + plane;                        \
                            const double by = i > 0 ? uv - (double)u[at - w] : 0.0;            \
                            const double bx = j > 0 ? uv - (double)u[at - 1] : 0.0;            \
                            if (i < h - 1) d += (double)*(qy + w);                             \
                            if (i > 0) d -= (double)*qy;                                       \
                            if (j < w - 1) d += (double)*(qx + 1);                             \
                            if (j > 0) d -= (double)*qx;                                       \
                            sum_back += by * by + bx * bx;                                     \
                        }                                                                      \
                        const double step = (double)ubar[at] - uv;                             \
                        fidelity += 0.5 * r * r;                                               \
                        change += step * step;                                                 \
                        norm += uv * uv;                                                       \
                        dual_value -= 0.5 * d * d + (double)f[at] * d;                         \
                        sum_y += gy * gy;                                                      \
                        sum_x += gx * gx;                                                      \
                    }                                                                          \
                    tv += kind == 0   ? sqrt(sum_y + sum_x)                                    \
                          : kind == 1 ? sqrt(sum_y) + sqrt(sum_x)                              \
                                      : 0.5 * (sqrt(sum_y + sum_x) + sqrt(sum_back));          \
                }                                                                              \
            }                                                                                  \
            out[4 * n] = fidelity + weight * tv;                                               \
            out[4 * n + 1] = dual_value;                                                       \
            out[4 * n + 2] = change;                                                           \
            out[4 * n + 3] = norm;                                                             \
        }                                                                                      \
    }

DEFINE_KERNELS(float, f32, sqrtf)
DEFINE_KERNELS(double, f64, sqrt)
