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
    /* Helpers of one row: restrict-qualified parameters and `omp simd`, so that the loops     \
     * vectorise without run-time alias checks (too many planes for the compiler's limit).     \
     * Forward TV (kinds 0, 1) on columns [a, b): the dual update of one channel and its       \
     * squares; `below` is the row itself on the last row (no y difference there). */          \
    static void forward_dual_##SUFFIX(const T *restrict ub, const T *restrict below,           \
                                      T *restrict py, T *restrict px, T *restrict norm_y,      \
                                      T *restrict norm_x, long a, long b, long w, T sigma)     \
    {                                                                                          \
        const long last = b < w - 1 ? b : w - 1;                                               \
        _Pragma("omp simd")                                                                    \
        for (long j = a; j < last; ++j) {                                                      \
            py[j] += sigma * (below[j] - ub[j]);                                               \
            px[j] += sigma * (ub[j + 1] - ub[j]);                                              \
            norm_y[j] += py[j] * py[j];                                                        \
            norm_x[j] += px[j] * px[j];                                                        \
        }                                                                                      \
        if (a <= w - 1 && b == w) { /* the last column: no x difference, p_x stays 0 */        \
            py[w - 1] += sigma * (below[w - 1] - ub[w - 1]);                                   \
            norm_y[w - 1] += py[w - 1] * py[w - 1];                                            \
            norm_x[w - 1] += px[w - 1] * px[w - 1];                                            \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* Symmetric TV on columns [a, b): both pairs of one channel and their squares in one      \
     * pass over the row (one load of ubar's three rows for the four differences); `above`     \
     * and `below` are the row itself on the first and last rows (no y difference there). */   \
    static inline void symmetric_dual_at_##SUFFIX(long j, T dx, T bx, const T *ub,             \
                                                  const T *above, const T *below, T *py,       \
                                                  T *px, T *qy, T *qx, T *norm_f, T *norm_b,   \
                                                  T sigma)                                     \
    {                                                                                          \
        py[j] += sigma * (below[j] - ub[j]);                                                   \
        px[j] += sigma * dx;                                                                   \
        qy[j] += sigma * (ub[j] - above[j]);                                                   \
        qx[j] += sigma * bx;                                                                   \
        norm_f[j] += py[j] * py[j] + px[j] * px[j];                                            \
        norm_b[j] += qy[j] * qy[j] + qx[j] * qx[j];                                            \
    }                                                                                          \
                                                                                               \
    static void symmetric_dual_##SUFFIX(const T *restrict ub, const T *restrict above,         \
                                        const T *restrict below, T *restrict py,               \
                                        T *restrict px, T *restrict qy, T *restrict qx,        \
                                        T *restrict norm_f, T *restrict norm_b, long a,        \
                                        long b, long w, T sigma)                               \
    {                                                                                          \
        const long first = a > 1 ? a : 1, last = b < w - 1 ? b : w - 1;                        \
        if (a == 0 && b > 0) /* column 0: no backward x difference */                          \
            symmetric_dual_at_##SUFFIX(0, w > 1 ? ub[1] - ub[0] : (T)0, (T)0, ub, above,       \
                                       below, py, px, qy, qx, norm_f, norm_b, sigma);          \
        _Pragma("omp simd")                                                                    \
        for (long j = first; j < last; ++j) {                                                  \
            py[j] += sigma * (below[j] - ub[j]);                                               \
            px[j] += sigma * (ub[j + 1] - ub[j]);                                              \
            qy[j] += sigma * (ub[j] - above[j]);                                               \
            qx[j] += sigma * (ub[j] - ub[j - 1]);                                              \
            norm_f[j] += py[j] * py[j] + px[j] * px[j];                                        \
            norm_b[j] += qy[j] * qy[j] + qx[j] * qx[j];                                        \
        }                                                                                      \
        if (w > 1 && a <= w - 1 && b == w) /* column w - 1: no forward x difference */         \
            symmetric_dual_at_##SUFFIX(w - 1, (T)0, ub[w - 1] - ub[w - 2], ub, above, below,   \
                                       py, px, qy, qx, norm_f, norm_b, sigma);                 \
    }                                                                                          \
                                                                                               \
    static void scale_pair_##SUFFIX(T *restrict y, T *restrict x, const T *restrict scale_y,   \
                                    const T *restrict scale_x, long a, long b)                 \
    {                                                                                          \
        _Pragma("omp simd")                                                                    \
        for (long j = a; j < b; ++j) {                                                         \
            y[j] *= scale_y[j];                                                                \
            x[j] *= scale_x[j];                                                                \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* The dual step of row i of image n on columns [a, b): p + sigma D ubar, then the         \
     * projection; norm_y and norm_x are row buffers (indexed by column). */                   \
    static void dual_row_##SUFFIX(const T *ubar, T *p, long n, long i, long a, long b,         \
                                  long channels, long h, long w, int kind, T weight, T sigma,  \
                                  T *norm_y, T *norm_x)                                        \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        for (long j = a; j < b; ++j) norm_y[j] = norm_x[j] = 0;                                \
        for (long c = 0; c < channels; ++c) {                                                  \
            const T *ub = ubar + (n * channels + c) * plane + i * w;                           \
            const T *above = i > 0 ? ub - w : ub, *below = i < h - 1 ? ub + w : ub;            \
            T *py = p + ((n * channels + c) * 2 * pairs) * plane + i * w;                      \
            T *px = py + plane;                                                                \
            /* norm_y: the forward pair's squares, norm_x: the backward pair's. */             \
            if (kind == 2)                                                                     \
                symmetric_dual_##SUFFIX(ub, above, below, py, px, px + plane, px + 2 * plane,  \
                                        norm_y, norm_x, a, b, w, sigma);                       \
            else                                                                               \
                forward_dual_##SUFFIX(ub, below, py, px, norm_y, norm_x, a, b, w, sigma);      \
        }                                                                                      \
        /* Scale factors weight / max(|p|, weight): 1 inside the ball, branch-free so the      \
         * loops vectorise (sqrt and division in the working precision); one per pixel         \
         * (isotropic), direction (anisotropic) or stencil (symmetric). */                     \
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
                scale_pair_##SUFFIX(py, px, norm_y, norm_y, a, b);                             \
                scale_pair_##SUFFIX(px + plane, px + 2 * plane, norm_x, norm_x, a, b);         \
            } else {                                                                           \
                scale_pair_##SUFFIX(py, px, norm_y, norm_x, a, b);                             \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* The primal step's interior columns [first, last) of one row of one channel. */          \
    static void primal_interior_##SUFFIX(T *restrict uu, T *restrict ub, const T *restrict ff, \
                                         const T *restrict py, const T *restrict above,        \
                                         const T *restrict px, const T *restrict qy,           \
                                         const T *restrict qy_below, const T *restrict qx,     \
                                         long first, long last, int kind, T tau, T theta,      \
                                         T scale)                                              \
    {                                                                                          \
        if (kind == 2) {                                                                       \
            _Pragma("omp simd")                                                                \
            for (long j = first; j < last; ++j) {                                              \
                const T d = py[j] - above[j] + px[j] - px[j - 1] + qy_below[j] - qy[j]         \
                            + qx[j + 1] - qx[j];                                               \
                const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;                \
                uu[j] = new_u;                                                                 \
                ub[j] = new_u + theta * (new_u - old);                                         \
            }                                                                                  \
        } else {                                                                               \
            _Pragma("omp simd")                                                                \
            for (long j = first; j < last; ++j) {                                              \
                const T d = py[j] - above[j] + px[j] - px[j - 1];                              \
                const T old = uu[j], new_u = (old + tau * (d + ff[j])) * scale;                \
                uu[j] = new_u;                                                                 \
                ub[j] = new_u + theta * (new_u - old);                                         \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* The primal step of row i of one channel (image * channels + c) on columns [a, b). */    \
    static void primal_row_##SUFFIX(T *u, T *ubar, const T *p, const T *f, long image, long i, \
                                    long a, long b, long h, long w, int kind, T tau, T theta,  \
                                    const T *zeros)                                            \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        const T scale = (T)1 / ((T)1 + tau);                                                   \
        const T *py = p + image * 2 * pairs * plane + i * w;                                   \
        const T *px = py + plane;                                                              \
        /* Row -1 of p_y and column -1 of p_x count as 0: branch-free inner loop. */           \
        const T *above = i > 0 ? py - w : zeros;                                               \
        /* The backward pair: row h of q_y counts as 0, and its row 0 and q_x's column 0       \
         * hold 0; column w of q_x is handled at j = w - 1. */                                 \
        const T *qy = kind == 2 ? px + plane : zeros;                                          \
        const T *qx = kind == 2 ? px + 2 * plane : zeros;                                      \
        const T *qy_below = kind == 2 && i < h - 1 ? qy + w : zeros;                           \
        const long qx_step = kind == 2 ? 1 : 0;                                                \
        T *uu = u + image * plane + i * w;                                                     \
        T *ub = ubar + image * plane + i * w;                                                  \
        const T *ff = f + image * plane + i * w;                                               \
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
        primal_interior_##SUFFIX(uu, ub, ff, py, above, px, qy, qy_below, qx, first, last,     \
                                 kind, tau, theta, scale);                                     \
    }                                                                                          \
                                                                                               \
    /* The two sweeps of one iteration, each parallel over rows. */                            \
    static void dual_sweep_##SUFFIX(const T *ubar, T *p, long images, long channels, long h,   \
                                    long w, int kind, T weight, T sigma, int threads)          \
    {                                                                                          \
        _Pragma("omp parallel num_threads(threads)")                                           \
        {                                                                                      \
            T *norm_y = (T *)malloc(sizeof(T) * (size_t)(2 * w));                              \
            T *norm_x = norm_y + w;                                                            \
            _Pragma("omp for schedule(static)")                                                \
            for (long row = 0; row < images * h; ++row)                                        \
                dual_row_##SUFFIX(ubar, p, row / h, row % h, 0, w, channels, h, w, kind,       \
                                  weight, sigma, norm_y, norm_x);                              \
            free(norm_y);                                                                      \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void primal_sweep_##SUFFIX(T *u, T *ubar, const T *p, const T *f, long images,      \
                                      long channels, long h, long w, int kind, T tau,          \
                                      T theta, int threads)                                    \
    {                                                                                          \
        T *zeros = (T *)calloc((size_t)w + 1, sizeof(T));                                      \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                      \
        for (long row = 0; row < images * channels * h; ++row)                                 \
            primal_row_##SUFFIX(u, ubar, p, f, row / h, row % h, 0, w, h, w, kind, tau, theta, \
                                zeros);                                                        \
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
    /* The measure's helpers, one row of one channel, restrict-qualified and `omp simd` so     \
     * that they vectorise in double: the fidelity, step and norm sums (acc[0 .. 2]) and the   \
     * squares of the differences of u into the row buffers; `below` and `upper` are the row   \
     * itself on the last and first rows (no y difference there). */                           \
    static void measure_primal_##SUFFIX(const T *restrict uu, const T *restrict ff,            \
                                        const T *restrict ub, const T *restrict below,         \
                                        const T *restrict upper, double *restrict sum_y,       \
                                        double *restrict sum_x, double *restrict sum_back,     \
                                        long w, int kind, double *acc)                         \
    {                                                                                          \
        double fid = 0, chg = 0, nrm = 0;                                                      \
        _Pragma("omp simd reduction(+ : fid, chg, nrm)")                                       \
        for (long j = 0; j < w; ++j) {                                                         \
            const double uv = uu[j], r = uv - (double)ff[j];                                   \
            const double step = (double)ub[j] - uv;                                            \
            const double gy = (double)below[j] - uv;                                           \
            fid += 0.5 * r * r;                                                                \
            chg += step * step;                                                                \
            nrm += uv * uv;                                                                    \
            sum_y[j] += gy * gy;                                                               \
        }                                                                                      \
        _Pragma("omp simd")                                                                    \
        for (long j = 0; j < w - 1; ++j) {                                                     \
            const double gx = (double)uu[j + 1] - (double)uu[j];                               \
            sum_x[j] += gx * gx;                                                               \
        }                                                                                      \
        if (kind == 2) {                                                                       \
            const double by = (double)uu[0] - (double)upper[0];                                \
            sum_back[0] += by * by; /* column 0: no backward x difference */                   \
            _Pragma("omp simd")                                                                \
            for (long j = 1; j < w; ++j) {                                                     \
                const double by = (double)uu[j] - (double)upper[j];                            \
                const double bx = (double)uu[j] - (double)uu[j - 1];                           \
                sum_back[j] += by * by + bx * bx;                                              \
            }                                                                                  \
        }                                                                                      \
        acc[0] += fid;                                                                         \
        acc[1] += chg;                                                                         \
        acc[2] += nrm;                                                                         \
    }                                                                                          \
                                                                                               \
    /* The dual value's sum -1/2 (div p)^2 - f div p over one row of one channel: the edge     \
     * columns, then the interior branch-free; qy, qy_below and qx are zeros for forward TV    \
     * (and qy on the first row, qy_below on the last). */                                     \
    static double measure_dual_##SUFFIX(const T *restrict py, const T *restrict above,         \
                                        const T *restrict px, const T *restrict qy,            \
                                        const T *restrict qy_below, const T *restrict qx,      \
                                        const T *restrict ff, long w, int kind)                \
    {                                                                                          \
        const long qx_step = kind == 2 ? 1 : 0;                                                \
        double dv = 0;                                                                         \
        for (long j = 0; j < w; j += w > 1 ? w - 1 : 1) {                                      \
            double d = (double)py[j] - (double)above[j] + (double)px[j] + (double)qy_below[j]  \
                       - (double)qy[j];                                                        \
            if (j > 0) d -= (double)px[j - 1] + (double)qx[j * qx_step];                       \
            if (j < w - 1) d += (double)qx[(j + 1) * qx_step];                                 \
            dv -= 0.5 * d * d + (double)ff[j] * d;                                             \
        }                                                                                      \
        if (kind == 2) {                                                                       \
            _Pragma("omp simd reduction(+ : dv)")                                              \
            for (long j = 1; j < w - 1; ++j) {                                                 \
                const double d = (double)py[j] - (double)above[j] + (double)px[j]              \
                                 - (double)px[j - 1] + (double)qy_below[j] - (double)qy[j]     \
                                 + (double)qx[j + 1] - (double)qx[j];                          \
                dv -= 0.5 * d * d + (double)ff[j] * d;                                         \
            }                                                                                  \
        } else {                                                                               \
            _Pragma("omp simd reduction(+ : dv)")                                              \
            for (long j = 1; j < w - 1; ++j) {                                                 \
                const double d = (double)py[j] - (double)above[j] + (double)px[j]              \
                                 - (double)px[j - 1];                                          \
                dv -= 0.5 * d * d + (double)ff[j] * d;                                         \
            }                                                                                  \
        }                                                                                      \
        return dv;                                                                             \
    }                                                                                          \
                                                                                               \
    /* The TV of one row from the squares of its differences (summed over the channels). */    \
    static double measure_tv_##SUFFIX(const double *restrict sum_y,                            \
                                      const double *restrict sum_x,                            \
                                      const double *restrict sum_back, long w, int kind)       \
    {                                                                                          \
        double row = 0;                                                                        \
        if (kind == 0) {                                                                       \
            _Pragma("omp simd reduction(+ : row)")                                             \
            for (long j = 0; j < w; ++j) row += sqrt(sum_y[j] + sum_x[j]);                     \
        } else if (kind == 1) {                                                                \
            _Pragma("omp simd reduction(+ : row)")                                             \
            for (long j = 0; j < w; ++j) row += sqrt(sum_y[j]) + sqrt(sum_x[j]);               \
        } else {                                                                               \
            _Pragma("omp simd reduction(+ : row)")                                             \
            for (long j = 0; j < w; ++j)                                                       \
                row += 0.5 * (sqrt(sum_y[j] + sum_x[j]) + sqrt(sum_back[j]));                  \
        }                                                                                      \
        return row;                                                                            \
    }                                                                                          \
                                                                                               \
    /* Row i of image n: acc[0 .. 4] += the fidelity, step and norm sums, the dual value's     \
     * sum and the row's TV; sum_y holds 3 w doubles (the squares of the differences, summed   \
     * over the channels). A function of its own, so that its loop bounds are plain values     \
     * (inside the parallel region they are shared variables, and the loops stay scalar). */   \
    static void measure_row_##SUFFIX(const T *u, const T *ubar, const T *p, const T *f,        \
                                     long n, long i, long channels, long h, long w, int kind,  \
                                     const T *zeros, double *sum_y, double *acc)               \
    {                                                                                          \
        const long plane = h * w, pairs = kind == 2 ? 2 : 1;                                   \
        double *sum_x = sum_y + w, *sum_back = sum_x + w;                                      \
        for (long j = 0; j < w; ++j) sum_y[j] = sum_x[j] = sum_back[j] = 0;                    \
        for (long c = 0; c < channels; ++c) {                                                  \
            const long at = (n * channels + c) * plane + i * w;                                \
            const T *uu = u + at;                                                              \
            const T *py = p + ((n * channels + c) * 2 * pairs) * plane + i * w;                \
            const T *px = py + plane;                                                          \
            measure_primal_##SUFFIX(uu, f + at, ubar + at, i < h - 1 ? uu + w : uu,            \
                                    i > 0 ? uu - w : uu, sum_y, sum_x, sum_back, w, kind,      \
                                    acc);                                                      \
            acc[3] += measure_dual_##SUFFIX(py, i > 0 ? py - w : zeros, px,                    \
                                            kind == 2 && i > 0 ? px + plane : zeros,           \
                                            kind == 2 && i < h - 1 ? px + plane + w : zeros,   \
                                            kind == 2 ? px + 2 * plane : zeros, f + at, w,     \
                                            kind);                                             \
        }                                                                                      \
        acc[4] += measure_tv_##SUFFIX(sum_y, sum_x, sum_back, w, kind);                        \
    }                                                                                          \
                                                                                               \
    /* Per image n, in double, into out[4 n .. 4 n + 3]: the energy                            \
     * 1/2 ||u - f||^2 + weight TV(u), the dual value -1/2 ||div p||^2 - <f, div p>,           \
     * ||ubar - u||^2 and ||u||^2 (ubar - u = theta (u - u_previous) after an iteration).      \
     * Row by row: per-pixel sums of squares over the channels go to row buffers, and each     \
     * sum over a row is an `omp simd` reduction, so the loops vectorise in double. */         \
    void rof_measure_##SUFFIX(const T *u, const T *ubar, const T *p, const T *f, long images,  \
                              long channels, long h, long w, int kind, double weight,          \
                              double *out, int threads)                                        \
    {                                                                                          \
        T *zeros = (T *)calloc((size_t)w + 1, sizeof(T));                                      \
        for (long n = 0; n < images; ++n) {                                                    \
            double fidelity = 0, tv = 0, dual_value = 0, change = 0, norm = 0;                 \
            _Pragma("omp parallel num_threads(threads) reduction(+ : fidelity, tv, dual_value, change, norm)") \
            {                                                                                  \
            double *sum_y = (double *)malloc(sizeof(double) * (size_t)(3 * w));                \
            _Pragma("omp for schedule(static)")                                                \
            for (long i = 0; i < h; ++i) {                                                     \
                double acc[5] = {0, 0, 0, 0, 0};                                               \
                measure_row_##SUFFIX(u, ubar, p, f, n, i, channels, h, w, kind, zeros, sum_y,  \
                                     acc);                                                     \
                fidelity += acc[0];                                                            \
                change += acc[1];                                                              \
                norm += acc[2];                                                                \
                dual_value += acc[3];                                                          \
                tv += acc[4];                                                                  \
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
