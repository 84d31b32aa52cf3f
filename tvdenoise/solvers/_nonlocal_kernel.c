/* Fused Chambolle-Pock iterations for nonlocal TV with the L2 fidelity (beta = 1).
 *
 * Compiled at run time by tvdenoise/solvers/native.py (plain C99, OpenMP when available) and
 * called through ctypes on contiguous CPU tensors; tvdenoise/solvers/nonlocal_tv.py holds the
 * same algorithm in PyTorch operations, used where this cannot be compiled and on other
 * devices.
 *
 * Layout: u, ubar, f, div are (images, channels, hw); p is (images, channels, k, hw); the graph
 * is index (images, k, hw), the flat pixel of each pixel's k-th neighbour, and root_weight
 * (images, k, hw), sqrt(w).  The divergence's incoming part is a gather too, through the
 * reverse adjacency (CSR): for image n and pixel m, the edges e = k * hw + i with
 * index[e] = m and a nonzero weight are rev_edge[n][rev_start[n][m] .. rev_start[n][m + 1]),
 * with their weights in rev_weight; so both sweeps run in parallel over pixels, without
 * atomic updates.
 *
 * channelwise = 0 couples the channels in the dual norm (vectorial colour: one ball per pixel
 * over channels and edges), 1 gives each channel its own ball (over the edges).
 *
 * One iteration (Chambolle & Pock 2011, Algorithm 2, G(u) = 1/2 ||u - f||^2):
 *   p    <- project_{|p_i| <= radius}(p + sigma G_w ubar)
 *   div  <- div_w p
 *   u'   <- (u + tau div + tau f) / (1 + tau)
 *   ubar <- u' + theta (u' - u),  theta = 1 / sqrt(1 + 2 gamma tau); tau *= theta; sigma /= theta
 * as two sweeps (dual, then primal) over blocks of pixels.
 */
#include <math.h>
#include <stdint.h>

#define BLOCK 64
#define MAX_CHANNELS 8

#define DEFINE_KERNELS(T, SUFFIX, SQRT)                                                         \
    static void dual_block_##SUFFIX(const T *ubar, T *p, const int32_t *index,                \
                                    const T *root_weight, long channels, long k, long hw,     \
                                    int channelwise, T radius, T sigma, long start, long end) \
    {                                                                                          \
        T norm[MAX_CHANNELS][BLOCK];                                                           \
        const long count = end - start, groups = channelwise ? channels : 1;                  \
        for (long g = 0; g < groups; ++g)                                                      \
            for (long j = 0; j < count; ++j) norm[g][j] = 0;                                   \
        for (long c = 0; c < channels; ++c) {                                                  \
            const T *restrict ub = ubar + c * hw;                                              \
            T *restrict nc = norm[channelwise ? c : 0];                                        \
            for (long e = 0; e < k; ++e) {                                                     \
                T *restrict pe = p + (c * k + e) * hw + start;                                 \
                const int32_t *restrict ie = index + e * hw + start;                           \
                const T *restrict we = root_weight + e * hw + start;                           \
                const T *restrict here = ub + start;                                           \
                for (long j = 0; j < count; ++j) {                                             \
                    const T v = pe[j] + sigma * (we[j] * (ub[ie[j]] - here[j]));               \
                    pe[j] = v;                                                                 \
                    nc[j] += v * v;                                                            \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        for (long g = 0; g < groups; ++g)                                                      \
            for (long j = 0; j < count; ++j) {                                                 \
                const T m = SQRT(norm[g][j]) / radius;                                         \
                norm[g][j] = (T)1 / (m > (T)1 ? m : (T)1);                                     \
            }                                                                                  \
        for (long c = 0; c < channels; ++c) {                                                  \
            const T *restrict nc = norm[channelwise ? c : 0];                                  \
            for (long e = 0; e < k; ++e) {                                                     \
                T *restrict pe = p + (c * k + e) * hw + start;                                 \
                for (long j = 0; j < count; ++j) pe[j] *= nc[j];                               \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void divergence_block_##SUFFIX(const T *p, T *out, const T *root_weight,           \
                                          const int64_t *rev_start, const int32_t *rev_edge,  \
                                          const T *rev_weight, long k, long hw, long start,   \
                                          long end)                                           \
    {                                                                                          \
        const long count = end - start;                                                        \
        T *restrict d = out + start;                                                           \
        for (long j = 0; j < count; ++j) d[j] = 0;                                             \
        for (long e = 0; e < k; ++e) {                                                         \
            const T *restrict pe = p + e * hw + start;                                         \
            const T *restrict we = root_weight + e * hw + start;                               \
            for (long j = 0; j < count; ++j) d[j] += we[j] * pe[j];                            \
        }                                                                                      \
        for (long j = 0; j < count; ++j) {                                                     \
            T incoming = 0;                                                                    \
            for (int64_t r = rev_start[start + j]; r < rev_start[start + j + 1]; ++r)          \
                incoming += rev_weight[r] * p[rev_edge[r]];                                    \
            d[j] -= incoming;                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void nl_cp_iterations_##SUFFIX(T *u, T *ubar, T *p, const T *f, T *div,                   \
                                   const int32_t *index, const T *root_weight,                \
                                   const int64_t *rev_start, const int32_t *rev_edge,         \
                                   const T *rev_weight, long images, long channels, long k,   \
                                   long hw, int channelwise, double radius, double *steps,    \
                                   double gamma, long iterations, int threads)                \
    {                                                                                          \
        const long blocks = (hw + BLOCK - 1) / BLOCK, edges = k * hw;                          \
        double tau = steps[0], sigma = steps[1];                                               \
        (void)threads;                                                                         \
        for (long it = 0; it < iterations; ++it) {                                             \
            const double theta = 1.0 / sqrt(1.0 + 2.0 * gamma * tau);                          \
            const T s = (T)sigma, t = (T)tau, th = (T)theta, scale = (T)(1.0 / (1.0 + tau));  \
            _Pragma("omp parallel num_threads(threads)")                                       \
            {                                                                                  \
                _Pragma("omp for schedule(static)")                                            \
                for (long job = 0; job < images * blocks; ++job) {                             \
                    const long n = job / blocks, start = (job % blocks) * BLOCK;              \
                    const long end = start + BLOCK < hw ? start + BLOCK : hw;                  \
                    dual_block_##SUFFIX(ubar + n * channels * hw, p + n * channels * edges,   \
                                        index + n * edges, root_weight + n * edges, channels, \
                                        k, hw, channelwise, (T)radius, s, start, end);        \
                }                                                                              \
                _Pragma("omp for schedule(static)")                                            \
                for (long job = 0; job < images * blocks; ++job) {                             \
                    const long n = job / blocks, start = (job % blocks) * BLOCK;              \
                    const long end = start + BLOCK < hw ? start + BLOCK : hw;                  \
                    for (long c = 0; c < channels; ++c) {                                      \
                        const long plane = (n * channels + c) * hw;                            \
                        divergence_block_##SUFFIX(p + (n * channels + c) * edges, div + plane,  \
                                                  root_weight + n * edges,                     \
                                                  rev_start + n * (hw + 1),                    \
                                                  rev_edge + n * edges, rev_weight + n * edges, \
                                                  k, hw, start, end);                          \
                        T *restrict uu = u + plane, *restrict ub = ubar + plane;               \
                        const T *restrict ff = f + plane, *restrict dd = div + plane;          \
                        for (long j = start; j < end; ++j) {                                   \
                            const T old = uu[j];                                               \
                            const T next = (old + t * dd[j] + t * ff[j]) * scale;              \
                            uu[j] = next;                                                      \
                            ub[j] = next + th * (next - old);                                  \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            tau *= theta;                                                                      \
            sigma /= theta;                                                                    \
        }                                                                                      \
        steps[0] = tau;                                                                        \
        steps[1] = sigma;                                                                      \
    }                                                                                          \
                                                                                               \
    /* The same iterations on one thread as one sweep over the rows per iteration: the dual  \
     * step of row r adds each edge's sqrt(w) p to div at both ends (a scatter, safe on one   \
     * thread), and the primal step runs `reach` rows behind (reach = the largest row offset  \
     * of an edge), where div is complete and ubar is no longer read; the rows in flight stay \
     * in cache, so p, the index and the weights pass through memory once an iteration. */    \
    void nl_cp_sweep_##SUFFIX(T *u, T *ubar, T *p, const T *f, T *div, const int32_t *index,  \
                              const T *root_weight, long images, long channels, long k,       \
                              long h, long w, long reach, int channelwise, double radius,     \
                              double *steps, double gamma, long iterations)                   \
    {                                                                                          \
        const long hw = h * w, edges = k * hw;                                                 \
        double tau = steps[0], sigma = steps[1];                                               \
        for (long it = 0; it < iterations; ++it) {                                             \
            const double theta = 1.0 / sqrt(1.0 + 2.0 * gamma * tau);                          \
            const T s = (T)sigma, t = (T)tau, th = (T)theta, scale = (T)(1.0 / (1.0 + tau));  \
            for (long n = 0; n < images; ++n) {                                                \
                T *un = u + n * channels * hw, *ubn = ubar + n * channels * hw;                \
                T *pn = p + n * channels * edges, *dn = div + n * channels * hw;               \
                const T *fn = f + n * channels * hw;                                           \
                const int32_t *in = index + n * edges;                                         \
                const T *wn = root_weight + n * edges;                                         \
                for (long c = 0; c < channels; ++c)                                            \
                    for (long j = 0; j < (reach < h ? reach : h) * w; ++j) dn[c * hw + j] = 0; \
                for (long r = 0; r < h + reach; ++r) {                                         \
                    if (r < h) {                                                               \
                        if (r + reach < h)                                                     \
                            for (long c = 0; c < channels; ++c)                                \
                                for (long j = 0; j < w; ++j) dn[c * hw + (r + reach) * w + j] = 0; \
                        for (long start = r * w; start < (r + 1) * w; start += BLOCK) {        \
                            const long stop = (r + 1) * w;                                     \
                            const long end = start + BLOCK < stop ? start + BLOCK : stop;      \
                            dual_block_##SUFFIX(ubn, pn, in, wn, channels, k, hw, channelwise, \
                                                (T)radius, s, start, end);                     \
                            for (long c = 0; c < channels; ++c) {                              \
                                T *restrict dc = dn + c * hw;                                  \
                                for (long e = 0; e < k; ++e) {                                 \
                                    const T *pe = pn + (c * k + e) * hw;                       \
                                    const T *we = wn + e * hw;                                 \
                                    const int32_t *ie = in + e * hw;                           \
                                    for (long j = start; j < end; ++j) {                       \
                                        const T v = we[j] * pe[j];                             \
                                        dc[j] += v;                                            \
                                        dc[ie[j]] -= v;                                        \
                                    }                                                          \
                                }                                                              \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    const long m = r - reach;                                                  \
                    if (m < 0) continue;                                                       \
                    for (long c = 0; c < channels; ++c) {                                      \
                        T *restrict uu = un + c * hw + m * w, *restrict ub = ubn + c * hw + m * w; \
                        const T *restrict ff = fn + c * hw + m * w;                            \
                        const T *restrict dd = dn + c * hw + m * w;                            \
                        for (long j = 0; j < w; ++j) {                                         \
                            const T old = uu[j];                                               \
                            const T next = (old + t * dd[j] + t * ff[j]) * scale;              \
                            uu[j] = next;                                                      \
                            ub[j] = next + th * (next - old);                                  \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            tau *= theta;                                                                      \
            sigma /= theta;                                                                    \
        }                                                                                      \
        steps[0] = tau;                                                                        \
        steps[1] = sigma;                                                                      \
    }                                                                                          \
                                                                                               \
    void nl_divergence_##SUFFIX(const T *p, T *div, const T *root_weight,                     \
                                const int64_t *rev_start, const int32_t *rev_edge,            \
                                const T *rev_weight, long images, long channels, long k,      \
                                long hw, int threads)                                         \
    {                                                                                          \
        const long blocks = (hw + BLOCK - 1) / BLOCK, edges = k * hw;                          \
        (void)threads;                                                                         \
        _Pragma("omp parallel for schedule(static) num_threads(threads)")                      \
        for (long job = 0; job < images * blocks; ++job) {                                     \
            const long n = job / blocks, start = (job % blocks) * BLOCK;                      \
            const long end = start + BLOCK < hw ? start + BLOCK : hw;                          \
            for (long c = 0; c < channels; ++c)                                                \
                divergence_block_##SUFFIX(p + (n * channels + c) * edges,                      \
                                          div + (n * channels + c) * hw,                       \
                                          root_weight + n * edges, rev_start + n * (hw + 1),   \
                                          rev_edge + n * edges, rev_weight + n * edges, k, hw, \
                                          start, end);                                         \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* Per image: out[0] = NLTV(u) and out[1] = ||u - u_previous||^2 (from ubar = u +        \
     * theta (u - u_previous), divided by theta^2 by the caller), in double precision. */     \
    void nl_measure_##SUFFIX(const T *u, const T *ubar, const int32_t *index,                 \
                             const T *root_weight, long images, long channels, long k,        \
                             long hw, int channelwise, double *out, int threads)              \
    {                                                                                          \
        const long edges = k * hw;                                                             \
        (void)threads;                                                                         \
        for (long n = 0; n < images; ++n) {                                                    \
            double tv = 0, change = 0;                                                         \
            _Pragma("omp parallel for reduction(+ : tv, change) num_threads(threads)")           \
            for (long i = 0; i < hw; ++i) {                                                    \
                double pixel = 0;                                                              \
                for (long c = 0; c < channels; ++c) {                                          \
                    const T *uc = u + (n * channels + c) * hw;                                 \
                    const double here = uc[i];                                                 \
                    const double step = (double)ubar[(n * channels + c) * hw + i] - here;      \
                    double sum = 0;                                                            \
                    for (long e = 0; e < k; ++e) {                                             \
                        const double g = (double)root_weight[n * edges + e * hw + i]           \
                                         * ((double)uc[index[n * edges + e * hw + i]] - here); \
                        sum += g * g;                                                          \
                    }                                                                          \
                    change += step * step;                                                     \
                    if (channelwise) tv += sqrt(sum); else pixel += sum;                       \
                }                                                                              \
                if (!channelwise) tv += sqrt(pixel);                                           \
            }                                                                                  \
            out[2 * n] = tv;                                                                   \
            out[2 * n + 1] = change;                                                           \
        }                                                                                      \
    }

DEFINE_KERNELS(float, f32, sqrtf)
DEFINE_KERNELS(double, f64, sqrt)
