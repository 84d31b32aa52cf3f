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
                                    long w, int anisotropic, T weight, T sigma, int threads)   \
    {                                                                                          \
        const long plane = h * w;                                                              \
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
                    T *restrict py = p + ((n * channels + c) * 2) * plane + i * w;             \
                    T *restrict px = py + plane;                                               \
                    if (i < h - 1) {                                                           \
                        const T *below = ub + w;                                               \
                        for (long j = 0; j < w; ++j) py[j] += sigma * (below[j] - ub[j]);      \
                    }                                                                          \
                    for (long j = 0; j < w - 1; ++j) px[j] += sigma * (ub[j + 1] - ub[j]);     \
                    for (long j = 0; j < w; ++j) {                                             \
                        norm_y[j] += py[j] * py[j];                                            \
                        norm_x[j] += px[j] * px[j];                                            \
                    }                                                                          \
                }                                                                              \
                /* Scale factors weight / max(|p|, weight): 1 inside the ball, branch-free so \
                 * the loops vectorise (sqrt and division in the working precision). */        \
                if (!anisotropic) {                                                            \
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
                    T *py = p + ((n * channels + c) * 2) * plane + i * w;                      \
                    T *px = py + plane;                                                        \
                    for (long j = 0; j < w; ++j) {                                             \
                        py[j] *= norm_y[j];                                                    \
                        px[j] *= norm_x[j];                                                    \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            free(norm_y);                                                                      \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void primal_sweep_##SUFFIX(T *u, T *ubar, const T *p, const T *f, long images,      \
                                      long channels, long h, long w, T tau, T theta,           \
                                      int threads)                                             \
    {                                                                                          \
        const long plane = h * w;                                                              \
        const T scale = (T)1 / ((T)1 + tau);                                                   \
        T *zeros = (T *)calloc((size_t)w, sizeof(T));                                          \
        _Pragma("omp parallel num_threads(threads)")                                           \
        {                                                                                      \
        _Pragma("omp for schedule(static)")                                                    \
        for (long row = 0; row < images * channels * h; ++row) {                               \
            const long image = row / h, i = row % h;                                           \
            const T *restrict py = p + image * 2 * plane + i * w;                              \
            const T *restrict px = py + plane;                                                          \
            /* Row -1 of p_y and column -1 of p_x count as 0: branch-free inner loop. */       \
            const T *restrict above = i > 0 ? py - w : zeros;                                  \
            T *restrict uu = u + image * plane + i * w;                                        \
            T *restrict ub = ubar + image * plane + i * w;                                     \
            const T *restrict ff = f + image * plane + i * w;                                  \
            {                                                                                  \
                const T d = py[0] - above[0] + px[0];                                          \
                const T old = uu[0], new_u = (old + tau * (d + ff[0])) * scale;                \
                uu[0] = new_u;                                                                 \
                ub[0] = new_u + theta * (new_u - old);                                         \
            }                                                                                  \
            for (long j = 1; j < w; ++j) {                                                     \
                const T d = py[j] - above[j] + px[j] - px[j - 1];                              \
                const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;                \
                uu[j] = new_u;                                                                 \
                ub[j] = new_u + theta * (new_u - old);                                         \
            }                                                                                  \
        }                                                                                      \
        }                                                                                      \
        free(zeros);                                                                           \
    }                                                                                          \
                                                                                               \
    /* Run `iterations` iterations; step[0] = tau and step[1] = sigma are updated in place. */ \
    void rof_cp_iterations_##SUFFIX(T *u, T *ubar, T *p, const T *f, long images,              \
                                    long channels, long h, long w, int anisotropic,            \
                                    double weight, double *step, double gamma,                 \
                                    long iterations, int threads)                              \
    {                                                                                          \
        double tau = step[0], sigma = step[1];                                                 \
        for (long k = 0; k < iterations; ++k) {                                                \
            const double theta = 1.0 / sqrt(1.0 + 2.0 * gamma * tau);                          \
            dual_sweep_##SUFFIX(ubar, p, images, channels, h, w, anisotropic, (T)weight,       \
                                (T)sigma, threads);                                            \
            primal_sweep_##SUFFIX(u, ubar, p, f, images, channels, h, w, (T)tau, (T)theta,     \
                                  threads);                                                    \
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
                              long channels, long h, long w, int anisotropic, double weight,   \
                              double *out, int threads)                                        \
    {                                                                                          \
        const long plane = h * w;                                                              \
        for (long n = 0; n < images; ++n) {                                                    \
            double fidelity = 0, tv = 0, dual_value = 0, change = 0, norm = 0;                 \
            _Pragma("omp parallel for schedule(static) num_threads(threads) reduction(+ : fidelity, tv, dual_value, change, norm)") \
            for (long i = 0; i < h; ++i) {                                                     \
                for (long j = 0; j < w; ++j) {                                                 \
                    double sum_y = 0, sum_x = 0;                                               \
                    for (long c = 0; c < channels; ++c) {                                      \
                        const long at = (n * channels + c) * plane + i * w + j;                \
                        const T *py = p + ((n * channels + c) * 2) * plane + i * w + j;        \
                        const T *px = py + plane;                                              \
                        const double uv = u[at], r = uv - (double)f[at];                       \
                        const double gy = i < h - 1 ? (double)u[at + w] - uv : 0.0;            \
                        const double gx = j < w - 1 ? (double)u[at + 1] - uv : 0.0;           \
                        double d = (double)*py + (double)*px;                                  \
                        if (i > 0) d -= (double)*(py - w);                                     \
                        if (j > 0) d -= (double)*(px - 1);                                     \
                        const double step = (double)ubar[at] - uv;                             \
                        fidelity += 0.5 * r * r;                                               \
                        change += step * step;                                                 \
                        norm += uv * uv;                                                       \
                        dual_value -= 0.5 * d * d + (double)f[at] * d;                         \
                        sum_y += gy * gy;                                                      \
                        sum_x += gx * gx;                                                      \
                    }                                                                          \
                    tv += anisotropic ? sqrt(sum_y) + sqrt(sum_x) : sqrt(sum_y + sum_x);       \
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
