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
#ifdef _OPENMP
#include <omp.h>
#define WAVEFRONT_TEAM(id, size) ((id) = omp_get_thread_num(), (size) = omp_get_num_threads())
#else
#define WAVEFRONT_TEAM(id, size) ((void)0)
#endif

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
    /* The wavefront: the same iterations, `depth` of them per sweep over the rows, so that   \
     * each sweep reads and writes the image once and the rows in flight (about 2 depth + 3)   \
     * stay in cache. Step r runs, for k = 0 .. depth - 1, the dual step of iteration k on row \
     * r - 2k and then the primal step of iteration k on row r - 2k - 1: each reads only rows  \
     * that iteration k - 1 has finished and that iteration k + 1 has not yet changed (the     \
     * stencils reach one row up and down). Threads split the columns; a row's values at one   \
     * iteration are written in one step and read by the neighbouring columns in later steps   \
     * only, so one barrier per step orders them. Every value gets the same operations as in   \
     * the two sweeps above. */                                                               \
    static void dual_row_##SUFFIX(const T *ubar, T *p, long n, long i, long a, long b,         \
                                  long channels, long h, long w, int kind, T weight, T sigma,  \
                                  T *norm_y, T *norm_x)                                        \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        const long bx = b < w - 1 ? b : w - 1, a1 = a > 1 ? a : 1;                             \
        for (long j = a; j < b; ++j) norm_y[j] = norm_x[j] = 0;                                \
        for (long c = 0; c < channels; ++c) {                                                  \
            const T *restrict ub = ubar + (n * channels + c) * plane + i * w;                  \
            T *restrict py = p + ((n * channels + c) * 2 * pairs) * plane + i * w;             \
            T *restrict px = py + plane;                                                       \
            if (i < h - 1) {                                                                   \
                const T *below = ub + w;                                                       \
                for (long j = a; j < b; ++j) py[j] += sigma * (below[j] - ub[j]);              \
            }                                                                                  \
            for (long j = a; j < bx; ++j) px[j] += sigma * (ub[j + 1] - ub[j]);                \
            if (kind == 2) {                                                                   \
                T *restrict qy = px + plane;                                                   \
                T *restrict qx = qy + plane;                                                   \
                if (i > 0) {                                                                   \
                    const T *above = ub - w;                                                   \
                    for (long j = a; j < b; ++j) qy[j] += sigma * (ub[j] - above[j]);          \
                }                                                                              \
                for (long j = a1; j < b; ++j) qx[j] += sigma * (ub[j] - ub[j - 1]);            \
                for (long j = a; j < b; ++j) {                                                 \
                    norm_y[j] += py[j] * py[j] + px[j] * px[j];                                \
                    norm_x[j] += qy[j] * qy[j] + qx[j] * qx[j];                                \
                }                                                                              \
            } else {                                                                           \
                for (long j = a; j < b; ++j) {                                                 \
                    norm_y[j] += py[j] * py[j];                                                \
                    norm_x[j] += px[j] * px[j];                                                \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        if (kind == 0) {                                                                       \
            for (long j = a; j < b; ++j) {                                                     \
                const T m = SQRT(norm_y[j] + norm_x[j]);                                       \
                norm_y[j] = norm_x[j] = weight / (m > weight ? m : weight);                    \
            }                                                                                  \
        } else {                                                                               \
            for (long j = a; j < b; ++j) {                                                     \
                const T my = SQRT(norm_y[j]), mx = SQRT(norm_x[j]);                            \
                norm_y[j] = weight / (my > weight ? my : weight);                              \
                norm_x[j] = weight / (mx > weight ? mx : weight);                              \
            }                                                                                  \
        }                                                                                      \
        for (long c = 0; c < channels; ++c) {                                                  \
            T *py = p + ((n * channels + c) * 2 * pairs) * plane + i * w;                      \
            T *px = py + plane;                                                                \
            if (kind == 2) {                                                                   \
                T *qy = px + plane, *qx = qy + plane;                                          \
                for (long j = a; j < b; ++j) {                                                 \
                    py[j] *= norm_y[j];                                                        \
                    px[j] *= norm_y[j];                                                        \
                    qy[j] *= norm_x[j];                                                        \
                    qx[j] *= norm_x[j];                                                        \
                }                                                                              \
            } else {                                                                           \
                for (long j = a; j < b; ++j) {                                                 \
                    py[j] *= norm_y[j];                                                        \
                    px[j] *= norm_x[j];                                                        \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void primal_row_##SUFFIX(T *u, T *ubar, const T *p, const T *f, long image, long i, \
                                    long a, long b, long h, long w, int kind, T tau, T theta,  \
                                    const T *zeros)                                            \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        const T scale = (T)1 / ((T)1 + tau);                                                   \
        const T *restrict py = p + image * 2 * pairs * plane + i * w;                          \
        const T *restrict px = py + plane;                                                     \
        const T *restrict above = i > 0 ? py - w : zeros;                                      \
        const T *restrict qy = kind == 2 ? px + plane : zeros;                                 \
        const T *restrict qx = kind == 2 ? px + 2 * plane : zeros;                             \
        const T *restrict qy_below = kind == 2 && i < h - 1 ? qy + w : zeros;                  \
        const long qx_step = kind == 2 ? 1 : 0;                                                \
        T *restrict uu = u + image * plane + i * w;                                            \
        T *restrict ub = ubar + image * plane + i * w;                                         \
        const T *restrict ff = f + image * plane + i * w;                                      \
        for (long j = 0; j < w; j += w > 1 ? w - 1 : 1) {                                      \
            if (j < a || j >= b) continue;                                                     \
            T d = py[j] - above[j] + px[j] + qy_below[j] - qy[j] - qx[j * qx_step];            \
            if (j > 0) d -= px[j - 1];                                                         \
            if (j < w - 1) d += qx[(j + 1) * qx_step];                                         \
            const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;                    \
            uu[j] = new_u;                                                                     \
            ub[j] = new_u + theta * (new_u - old);                                             \
        }                                                                                      \
        const long first = a > 1 ? a : 1, last = b < w - 1 ? b : w - 1;                        \
        if (kind == 2) {                                                                       \
            for (long j = first; j < last; ++j) {                                              \
                const T d = py[j] - above[j] + px[j] - px[j - 1] + qy_below[j] - qy[j]         \
                            + qx[j + 1] - qx[j];                                               \
                const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;                \
                uu[j] = new_u;                                                                 \
                ub[j] = new_u + theta * (new_u - old);                                         \
            }                                                                                  \
        } else {                                                                               \
            for (long j = first; j < last; ++j) {                                              \
                const T d = py[j] - above[j] + px[j] - px[j - 1];                              \
                const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;                \
                uu[j] = new_u;                                                                 \
                ub[j] = new_u + theta * (new_u - old);                                         \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void wavefront_##SUFFIX(T *u, T *ubar, T *p, const T *f, long images,               \
                                   long channels, long h, long w, int kind, T weight,          \
                                   const T *tau, const T *sigma, const T *theta, long depth,   \
                                   int threads)                                                \
    {                                                                                          \
        T *zeros = (T *)calloc((size_t)w + 1, sizeof(T));                                      \
        /* Columns per thread, in multiples of 16 values; narrow images take one thread. */    \
        const int team = w >= 64 * threads ? threads : 1;                                      \
        _Pragma("omp parallel num_threads(team)")                                              \
        {                                                                                      \
            int id = 0, size = 1;                                                              \
            WAVEFRONT_TEAM(id, size);                                                          \
            const long chunk = ((w + size - 1) / size + 15) / 16 * 16;                         \
            const long a = id * chunk < w ? id * chunk : w;                                    \
            const long b = a + chunk < w ? a + chunk : w;                                      \
            T *buffer = (T *)malloc(sizeof(T) * (size_t)(2 * (b - a) + 2));                    \
            T *norm_y = buffer - a, *norm_x = buffer + (b - a) + 1 - a;                        \
            for (long n = 0; n < images; ++n) {                                                \
                for (long r = 0; r < h + 2 * depth - 1; ++r) {                                 \
                    for (long k = 0; k < depth; ++k) {                                         \
                        const long s = r - 2 * k;                                              \
                        if (s >= 0 && s < h)                                                   \
                            dual_row_##SUFFIX(ubar, p, n, s, a, b, channels, h, w, kind,       \
                                              weight, sigma[k], norm_y, norm_x);               \
                        if (s - 1 >= 0 && s - 1 < h)                                           \
                            for (long c = 0; c < channels; ++c)                                \
                                primal_row_##SUFFIX(u, ubar, p, f, n * channels + c, s - 1, a, \
                                                    b, h, w, kind, tau[k], theta[k], zeros);   \
                    }                                                                          \
                    _Pragma("omp barrier")                                                     \
                }                                                                              \
            }                                                                                  \
            free(buffer);                                                                      \
        }                                                                                      \
        free(zeros);                                                                           \
    }                                                                                          \
                                                                                               \
    /* As rof_cp_iterations, in sweeps of up to `depth` iterations (the wavefront above). */   \
    void rof_cp_wavefront_##SUFFIX(T *u, T *ubar, T *p, const T *f, long images,               \
                                   long channels, long h, long w, int kind, double weight,     \
                                   double *step, double gamma, long iterations, int threads,   \
                                   long depth)                                                 \
    {                                                                                          \
        double tau = step[0], sigma = step[1];                                                 \
        depth = depth < 1 ? 1 : depth > 64 ? 64 : depth;                                       \
        T taus[64], sigmas[64], thetas[64];                                                    \
        for (long done = 0; done < iterations;) {                                              \
            const long levels = iterations - done < depth ? iterations - done : depth;         \
            for (long k = 0; k < levels; ++k) {                                                \
                const double theta = 1.0 / sqrt(1.0 + 2.0 * gamma * tau);                      \
                taus[k] = (T)tau;                                                              \
                sigmas[k] = (T)sigma;                                                          \
                thetas[k] = (T)theta;                                                          \
                tau *= theta;                                                                  \
                sigma /= theta;                                                                \
            }                                                                                  \
            wavefront_##SUFFIX(u, ubar, p, f, images, channels, h, w, kind, (T)weight, taus,   \
                               sigmas, thetas, levels, threads);                               \
            done += levels;                                                                    \
        }                                                                                      \
        step[0] = tau;                                                                         \
        step[1] = sigma;                                                                       \
    }                                                                                          \
                                                                                               \
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
     * ||ubar - u||^2 and ||u||^2 (ubar - u = theta (u - u_previous) after an iteration).      \
     * Row by row: per-pixel sums of squares over the channels go to row buffers, and each    \
     * sum over a row is an `omp simd` reduction, so the loops vectorise in double. */         \
    void rof_measure_##SUFFIX(const T *u, const T *ubar, const T *p, const T *f, long images,   \
                              long channels, long h, long w, int kind, double weight,          \
                              double *out, int threads)                                        \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        T *zeros = (T *)calloc((size_t)w + 1, sizeof(T));                                      \
        for (long n = 0; n < images; ++n) {                                                    \
            double fidelity = 0, tv = 0, dual_value = 0, change = 0, norm = 0;                 \
            _Pragma("omp parallel num_threads(threads) reduction(+ : fidelity, tv, dual_value, change, norm)") \
            {                                                                                  \
            double *sum_y = (double *)malloc(sizeof(double) * (size_t)(3 * w));               \
            double *sum_x = sum_y + w, *sum_back = sum_x + w;                                  \
            _Pragma("omp for schedule(static)")                                                \
            for (long i = 0; i < h; ++i) {                                                     \
                for (long j = 0; j < w; ++j) sum_y[j] = sum_x[j] = sum_back[j] = 0;            \
                for (long c = 0; c < channels; ++c) {                                          \
                    const long at = (n * channels + c) * plane + i * w;                        \
                    const T *uu = u + at, *ff = f + at, *ub = ubar + at;                       \
                    const T *py = p + ((n * channels + c) * 2 * pairs) * plane + i * w;        \
                    const T *px = py + plane;                                                  \
                    const T *above = i > 0 ? py - w : zeros;                                   \
                    const T *qy = kind == 2 && i > 0 ? px + plane : zeros;                     \
                    const T *qy_below = kind == 2 && i < h - 1 ? px + plane + w : zeros;       \
                    const T *qx = kind == 2 ? px + 2 * plane : zeros;                          \
                    const long qx_step = kind == 2 ? 1 : 0;                                    \
                    const T *below = i < h - 1 ? uu + w : uu;    /* gy = 0 on the last row */  \
                    const T *upper = i > 0 ? uu - w : uu;        /* by = 0 on the first row */ \
                    double fid = 0, chg = 0, nrm = 0, dv = 0;                                  \
                    _Pragma("omp simd reduction(+ : fid, chg, nrm)")                           \
                    for (long j = 0; j < w; ++j) {                                             \
                        const double uv = uu[j], r = uv - (double)ff[j];                       \
                        const double step = (double)ub[j] - uv;                                \
                        const double gy = (double)below[j] - uv;                               \
                        fid += 0.5 * r * r;                                                    \
                        chg += step * step;                                                    \
                        nrm += uv * uv;                                                        \
                        sum_y[j] += gy * gy;                                                   \
                    }                                                                          \
                    for (long j = 0; j + 1 < w; ++j) {                                         \
                        const double gx = (double)uu[j + 1] - (double)uu[j];                   \
                        sum_x[j] += gx * gx;                                                   \
                    }                                                                          \
                    if (kind == 2) {                                                           \
                        for (long j = 0; j < w; ++j) {                                         \
                            const double by = (double)uu[j] - (double)upper[j];                \
                            const double bx = j > 0 ? (double)uu[j] - (double)uu[j - 1] : 0.0; \
                            sum_back[j] += by * by + bx * bx;                                  \
                        }                                                                      \
                    }                                                                          \
                    /* The divergence at the edge columns, then the interior branch-free. */   \
                    for (long j = 0; j < w; j += w > 1 ? w - 1 : 1) {                          \
                        double d = (double)py[j] - (double)above[j] + (double)px[j]            \
                                   + (double)qy_below[j] - (double)qy[j];                      \
                        if (j > 0) d -= (double)px[j - 1] + (double)qx[j * qx_step];           \
                        if (j < w - 1) d += (double)qx[(j + 1) * qx_step];                     \
                        dv -= 0.5 * d * d + (double)ff[j] * d;                                 \
                    }                                                                          \
                    _Pragma("omp simd reduction(+ : dv)")                                      \
                    for (long j = 1; j < w - 1; ++j) {                                         \
                        const double d = (double)py[j] - (double)above[j] + (double)px[j]      \
                                         - (double)px[j - 1] + (double)qy_below[j]             \
                                         - (double)qy[j] + (double)qx[(j + 1) * qx_step]       \
                                         - (double)qx[j * qx_step];                            \
                        dv -= 0.5 * d * d + (double)ff[j] * d;                                 \
                    }                                                                          \
                    fidelity += fid;                                                           \
                    change += chg;                                                             \
                    norm += nrm;                                                               \
                    dual_value += dv;                                                          \
                }                                                                              \
                double row = 0;                                                                \
                if (kind == 0) {                                                               \
                    _Pragma("omp simd reduction(+ : row)")                                     \
                    for (long j = 0; j < w; ++j) row += sqrt(sum_y[j] + sum_x[j]);             \
                } else if (kind == 1) {                                                        \
                    _Pragma("omp simd reduction(+ : row)")                                     \
                    for (long j = 0; j < w; ++j) row += sqrt(sum_y[j]) + sqrt(sum_x[j]);       \
                } else {                                                                       \
                    _Pragma("omp simd reduction(+ : row)")                                     \
                    for (long j = 0; j < w; ++j)                                               \
                        row += 0.5 * (sqrt(sum_y[j] + sum_x[j]) + sqrt(sum_back[j]));          \
                }                                                                              \
                tv += row;                                                                     \
            }                                                                                  \
            free(sum_y);                                                                       \
            }                                                                                  \
            out[4 * n] = fidelity + weight * tv;                                               \
            out[4 * n + 1] = dual_value;                                                       \
            out[4 * n + 2] = change;                                                           \
            out[4 * n + 3] = norm;                                                             \
        }                                                                                      \
        free(zeros);                                                                           \
    }

DEFINE_KERNELS(float, f32, sqrtf)
DEFINE_KERNELS(double, f64, sqrt)
