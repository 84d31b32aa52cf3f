/* Fused total variation: its value in one sweep, or its value and gradient in one sweep, for
 * float and double.
 *
 * Compiled at run time by tvdenoise/native.py (plain C99, OpenMP when available) and called
 * through ctypes by tvdenoise/_fused_tv.py on contiguous CPU tensors; tvdenoise/tv.py holds the
 * same functional in PyTorch operations, the reference this is tested against.
 *
 * Layout: x is (images, channels, A, R, W): A slabs of R rows of W values. A 2-D image is
 * (images, channels, H, 1, W), so its slabs are rows; a volume is (images, channels, D, H, W),
 * so its slabs are planes. Directions: 0 along slabs, 1 along rows (volumes only, nd == 3),
 * 2 along columns. Differences are forward, d_k(p) = (x[p + e_k] - x[p]) / h_k, zero at the last
 * index (Neumann boundary); the backward stencil uses b_k(p) = (x[p] - x[p - e_k]) / h_k, zero at
 * the first index. Channels are coupled inside the power (vectorial colour); channelwise colour
 * is passed as images * channels images of one channel.
 *
 * kind 0, isotropic:   term(p) = phi(sum_c sum_k d_k(p)^2)
 * kind 1, anisotropic: term(p) = sum_k dir_weight[k] phi(sum_c d_k(p)^2)
 * kind 2, symmetric:   term(p) = phi(sum_c sum_k d_k(p)^2) + phi(sum_c sum_k b_k(p)^2)
 * with phi(s) = (s + eps^2)^(beta / 2) (0 where s + eps^2 = 0), each term times `scale`.
 *
 * The gradient is a divergence of fluxes: with a_k(p) = beta (s + eps^2)^(beta / 2 - 1) of the
 * term that d_k(p) enters (0 where s + eps^2 = 0, where every difference is 0 too) and
 * c_k(p) the sum of those coefficients over the terms holding d_k(p) (for the symmetric kind
 * the forward term at p and the backward term at p + e_k),
 *     grad(p) = sum_k ( c_k(p - e_k) (x[p] - x[p - e_k]) - c_k(p) (x[p + e_k] - x[p]) ) / h_k^2.
 * Coefficients are computed one slab ahead, so each value of x is read from memory once per
 * sweep; the work is split into runs of slabs, each run recomputing the slab before it.
 */
#ifndef TV_T
#define _POSIX_C_SOURCE 200112L /* posix_memalign */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scratch for n values of `size` bytes, aligned to a vector (64 bytes) so whole-vector loads
 * and stores of its rows do not straddle cache lines; NULL when out of memory. */
static void *tv_scratch(size_t n, size_t size)
{
    void *p = NULL;
    return posix_memalign(&p, 64, n * size + 64) == 0 ? p : NULL;
}

/* The fused sweeps mask a row's first and last differences inside loops over whole rows; GCC
 * would split such a loop at the mask (-fsplit-loops, part of -O3) into one loop of W - 1
 * values and a scalar remainder, which costs more than the mask on short rows. */
#if defined(__GNUC__) && !defined(__clang__)
#define TV_WHOLE_ROWS __attribute__((optimize("no-split-loops")))
#else
#define TV_WHOLE_ROWS
#endif
/* Inlined where called, so that a call with constant column bounds gets loops with them. */
#if defined(__GNUC__)
#define TV_INLINE static inline __attribute__((always_inline))
#else
#define TV_INLINE static inline
#endif

#define TV_T float
#define TV_NAME(name) name##_f32
#define TV_SQRT sqrtf
#define TV_POW powf
#define TV_FABS fabsf
#define TV_COPYSIGN copysignf
#include __FILE__
#undef TV_T
#undef TV_NAME
#undef TV_SQRT
#undef TV_POW
#undef TV_FABS
#undef TV_COPYSIGN

#define TV_T double
#define TV_NAME(name) name##_f64
#define TV_SQRT sqrt
#define TV_POW pow
#define TV_FABS fabs
#define TV_COPYSIGN copysign
#include __FILE__

#else /* the body, once per type */

typedef struct {
    long channels, slabs, rows, width, plane, volume;
    int nd, kind;
    TV_T ih[3], ih2[3];
} TV_NAME(shape_t);

static TV_NAME(shape_t) TV_NAME(make_shape)(long channels, long slabs, long rows, long width,
                                              int nd, int kind, const double *inv_h)
{
    TV_NAME(shape_t) s;
    s.channels = channels;
    s.slabs = slabs;
    s.rows = rows;
    s.width = width;
    s.plane = rows * width;
    s.volume = slabs * rows * width;
    s.nd = nd;
    s.kind = kind;
    for (int k = 0; k < 3; ++k) {
        s.ih[k] = (TV_T)inv_h[k];
        s.ih2[k] = (TV_T)(inv_h[k] * inv_h[k]);
    }
    return s;
}

/* Squared differences of slab a of one image (all channels): the forward stencil's sum over
 * directions into sq[0], or (per_direction) each direction k into sq[k]; the backward stencil
 * with `backward`. A missing neighbour (past the boundary, or the row axis of a 2-D image) is
 * replaced by the value itself, so its difference is 0 without a branch in the loop. */
static void TV_NAME(squares)(const TV_NAME(shape_t) *s, const TV_T *image, long a, int backward,
                             int per_direction, TV_T *const sq[3])
{
    const long W = s->width, R = s->rows, P = s->plane;
    const TV_T ih0 = s->ih[0], ih1 = s->ih[1], ih2 = s->ih[2];
    const int has_slab = backward ? a > 0 : a < s->slabs - 1;
    for (long c = 0; c < s->channels; ++c) {
        const TV_T *slab = image + c * s->volume + a * P;
        const TV_T *other = has_slab ? (backward ? slab - P : slab + P) : slab;
        for (long r = 0; r < R; ++r) {
            const TV_T *restrict x = slab + r * W, *restrict na = other + r * W;
            const int has_row = s->nd == 3 && (backward ? r > 0 : r < R - 1);
            const TV_T *restrict nr = has_row ? (backward ? x - W : x + W) : x;
            const long o = r * W;
/* The first channel assigns (ACC is =), the others add (+=): no clearing pass. */
#define TV_SQUARES(ACC)                                                                      \
    if (per_direction) {                                                                     \
        TV_T *restrict t0 = sq[0] + o, *restrict t1 = sq[1] + o, *restrict t2 = sq[2] + o;   \
        for (long j = 0; j < W; ++j) {                                                       \
            const TV_T da = (na[j] - x[j]) * ih0, dr = (nr[j] - x[j]) * ih1;                 \
            t0[j] ACC da * da;                                                               \
            t1[j] ACC dr * dr;                                                               \
        }                                                                                    \
        for (long j = 0; j < W - 1; ++j) {                                                   \
            const TV_T dc = (x[j + 1] - x[j]) * ih2;                                         \
            t2[j] ACC dc * dc;                                                               \
        }                                                                                    \
        t2[W - 1] ACC 0;                                                                     \
    } else if (!backward) {                                                                  \
        TV_T *restrict t = sq[0] + o;                                                        \
        for (long j = 0; j < W - 1; ++j) {                                                   \
            const TV_T da = (na[j] - x[j]) * ih0, dr = (nr[j] - x[j]) * ih1;                 \
            const TV_T dc = (x[j + 1] - x[j]) * ih2;                                         \
            t[j] ACC da * da + dr * dr + dc * dc;                                            \
        }                                                                                    \
        const TV_T da = (na[W - 1] - x[W - 1]) * ih0, dr = (nr[W - 1] - x[W - 1]) * ih1;     \
        t[W - 1] ACC da * da + dr * dr;                                                      \
    } else {                                                                                 \
        TV_T *restrict t = sq[0] + o;                                                        \
        const TV_T da = (x[0] - na[0]) * ih0, dr = (x[0] - nr[0]) * ih1;                     \
        t[0] ACC da * da + dr * dr;                                                          \
        for (long j = 1; j < W; ++j) {                                                       \
            const TV_T da = (x[j] - na[j]) * ih0, dr = (x[j] - nr[j]) * ih1;                 \
            const TV_T dc = (x[j] - x[j - 1]) * ih2;                                         \
            t[j] ACC da * da + dr * dr + dc * dc;                                            \
        }                                                                                    \
    }
            if (c == 0) {
                TV_SQUARES(=)
            } else {
                TV_SQUARES(+=)
            }
#undef TV_SQUARES
        }
    }
}

/* Which way q^(beta / 2) is computed: by square roots for beta 0.5 (4), 1.5 (5) and 3 (6),
 * which vectorise, else by pow (3), which does not (a call per value: 20 to 25 times the
 * time of beta 1). */
static int TV_NAME(power_mode)(double beta)
{
    return beta == 0.5 ? 4 : beta == 1.5 ? 5 : beta == 3.0 ? 6 : 3;
}

/* q^half for q >= 0, half = beta / 2, by power_mode's way `mode` (a constant where inlined). */
static inline TV_T TV_NAME(power)(TV_T q, int mode, TV_T half)
{
    switch (mode) {
    case 4: return TV_SQRT(TV_SQRT(q));
    case 5: {
        const TV_T r = TV_SQRT(q);
        return r * TV_SQRT(r);
    }
    case 6: return q * TV_SQRT(q);
    default: return TV_POW(q, half);
    }
}

/* phi(s) in place of s (value), or its coefficient times `weight` (and times gmap[p] when
 * given) (derivative: beta (s + eps^2)^(beta / 2 - 1)), over n values; with `values` (derivative
 * only) also phi(s) into values[i], for the sweep that computes the value and the gradient. */
static void TV_NAME(phi)(TV_T *restrict v, long n, double beta, TV_T eps2, int derivative,
                         TV_T weight, const TV_T *restrict gmap, TV_T *restrict values)
{
    if (derivative && values) {
        if (beta == 1.0) {
            for (long i = 0; i < n; ++i) {
                const TV_T q = v[i] + eps2, r = TV_SQRT(q), safe = q > 0 ? r : 1;
                values[i] = r;
                v[i] = q > 0 ? weight / safe : 0;
            }
        } else if (beta == 2.0) {
            for (long i = 0; i < n; ++i) {
                values[i] = v[i] + eps2;
                v[i] = 2 * weight;
            }
        } else {
            const TV_T half = (TV_T)(beta / 2), b = (TV_T)beta;
#define TV_PHI_BOTH(m)                                                                       \
    for (long i = 0; i < n; ++i) {                                                           \
        const TV_T q = v[i] + eps2, safe = q > 0 ? q : 1, p = TV_NAME(power)(safe, m, half); \
        values[i] = q > 0 ? p : 0;                                                           \
        v[i] = q > 0 ? b * weight * p / safe : 0;                                            \
    }
            switch (TV_NAME(power_mode)(beta)) {
            case 4: TV_PHI_BOTH(4) break;
            case 5: TV_PHI_BOTH(5) break;
            case 6: TV_PHI_BOTH(6) break;
            default: TV_PHI_BOTH(3) break;
            }
#undef TV_PHI_BOTH
        }
    } else if (beta == 1.0) {
        if (!derivative) {
            for (long i = 0; i < n; ++i) v[i] = TV_SQRT(v[i] + eps2);
        } else {
            for (long i = 0; i < n; ++i) {
                /* Branch-free, so the loop vectorises: the division always has a divisor. */
                const TV_T q = v[i] + eps2, safe = q > 0 ? q : 1, r = weight / TV_SQRT(safe);
                v[i] = q > 0 ? r : 0;
            }
        }
    } else if (beta == 2.0) {
        if (!derivative) {
            for (long i = 0; i < n; ++i) v[i] = v[i] + eps2;
        } else {
            for (long i = 0; i < n; ++i) v[i] = 2 * weight;
        }
    } else {
        const TV_T half = (TV_T)(beta / 2), b = (TV_T)beta;
#define TV_PHI_ONE(m)                                                                        \
    for (long i = 0; i < n; ++i) {                                                           \
        const TV_T q = v[i] + eps2, safe = q > 0 ? q : 1, p = TV_NAME(power)(safe, m, half); \
        v[i] = q > 0 ? (derivative ? b * weight * p / safe : p) : 0;                         \
    }
        switch (TV_NAME(power_mode)(beta)) {
        case 4: TV_PHI_ONE(4) break;
        case 5: TV_PHI_ONE(5) break;
        case 6: TV_PHI_ONE(6) break;
        default: TV_PHI_ONE(3) break;
        }
#undef TV_PHI_ONE
    }
    if (derivative && gmap) {
        for (long i = 0; i < n; ++i) v[i] *= gmap[i];
    }
}

/* Sum of n values: 16 running sums (one vector register) in TV_T, added up in double. */
static double TV_NAME(row_sum)(const TV_T *restrict v, long n)
{
    TV_T acc[16] = {0};
    long j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; ++l) acc[l] += v[j + l];
    double total = 0.0;
    for (; j < n; ++j) total += v[j];
    for (int l = 0; l < 16; ++l) total += acc[l];
    return total;
}

/* Adds n values to 16 running sums in double: each call's values go to 16 lanes of TV_T first
 * (one vector register), so the loop is one add per value, and the lanes to acc. */
static void TV_NAME(lanes_add)(const TV_T *restrict v, long n, double *restrict acc)
{
    TV_T lane[16] = {0};
    long j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; ++l) lane[l] += v[j + l];
    for (; j < n; ++j) lane[j & 15] += v[j];
    for (int l = 0; l < 16; ++l) acc[l] += (double)lane[l];
}

static double TV_NAME(lanes_total)(const double *acc)
{
    double total = 0.0;
    for (int l = 0; l < 16; ++l) total += acc[l];
    return total;
}

/* n rounded up to a whole number of vectors (16 values), so rows laid end to end stay aligned. */
static long TV_NAME(padded)(long n) { return (n + 15) / 16 * 16; }

static long TV_NAME(run_length)(long images, long slabs, int threads)
{
    /* Enough runs to balance the threads; long enough that recomputing one slab per run
     * costs little. */
    const long target = (long)threads * 4;
    long run = (images * slabs + target - 1) / target;
    if (run < 8) run = 8;
    return run < slabs ? run : slabs;
}

/* The anisotropic kind on one channel (channelwise colour, or grey) needs no coefficient
 * planes: each difference d is its own term, phi(d^2), with derivative psi(d) = dphi/dd, so the
 * value and the gradient are single loops over x. mode 0: beta 1, eps 0 (|d|, sign d);
 * 1: beta 1 (sqrt(d^2 + eps^2)); 2: beta 2 (d^2 + eps^2, 2 d); 3 to 6: any other beta, as
 * power_mode (3: pow; 4, 5, 6: roots for beta 0.5, 1.5, 3). */
static inline TV_T TV_NAME(phi_d)(TV_T d, int mode, TV_T eps2, TV_T half)
{
    const TV_T q = d * d + eps2;
    switch (mode) {
    case 0: return d < 0 ? -d : d;
    case 1: return TV_SQRT(q);
    case 2: return q;
    default: return q > 0 ? TV_NAME(power)(q > 0 ? q : 1, mode, half) : 0;
    }
}

static inline TV_T TV_NAME(psi_d)(TV_T d, int mode, TV_T eps2, TV_T half, TV_T beta)
{
    const TV_T q = d * d + eps2, safe = q > 0 ? q : 1;
    switch (mode) {
    case 0: return (TV_T)((d > 0) - (d < 0));
    case 1: return d / TV_SQRT(safe);
    case 2: return 2 * d;
    case 3: return q > 0 ? beta * TV_POW(safe, half - 1) * d : 0;
    default: return q > 0 ? beta * TV_NAME(power)(safe, mode, half) / safe * d : 0;
    }
}

static int TV_NAME(direct_mode)(double beta, double eps)
{
    if (beta == 1.0) return eps == 0.0 ? 0 : 1;
    return beta == 2.0 ? 2 : TV_NAME(power_mode)(beta);
}

/* The sum of slab a's anisotropic terms, one channel, with weights w[k] per direction. */
static double TV_NAME(direct_slab_value)(const TV_NAME(shape_t) *s, const TV_T *image, long a,
                                         int mode, TV_T eps2, TV_T half, const TV_T w[3],
                                         int skip_last, TV_T *restrict t)
{
    const long W = s->width, R = s->rows, P = s->plane;
    const TV_T *slab = image + a * P;
    const int has_slab = a < s->slabs - 1;
    const TV_T *other = has_slab ? slab + P : slab;
    const TV_T w0 = skip_last && !has_slab ? 0 : w[0], ih0 = s->ih[0], ih1 = s->ih[1],
               ih2 = s->ih[2];
    const TV_T edge = skip_last ? 0 : w[2] * TV_NAME(phi_d)(0, mode, eps2, half);
    double total = 0.0;
    for (long r = 0; r < R; ++r) {
        const TV_T *restrict x = slab + r * W, *restrict na = other + r * W;
        if (s->nd == 3) {
            const int has_row = r < R - 1;
            const TV_T *restrict nr = has_row ? x + W : x;
            const TV_T w1 = skip_last && !has_row ? 0 : w[1];
#define TV_DIRECT_VALUE(m)                                                                   \
    for (long j = 0; j < W - 1; ++j)                                                         \
        t[j] = w0 * TV_NAME(phi_d)((na[j] - x[j]) * ih0, m, eps2, half) +                    \
               w1 * TV_NAME(phi_d)((nr[j] - x[j]) * ih1, m, eps2, half) +                    \
               w[2] * TV_NAME(phi_d)((x[j + 1] - x[j]) * ih2, m, eps2, half);                \
    t[W - 1] = w0 * TV_NAME(phi_d)((na[W - 1] - x[W - 1]) * ih0, m, eps2, half) +            \
               w1 * TV_NAME(phi_d)((nr[W - 1] - x[W - 1]) * ih1, m, eps2, half) + edge;
            switch (mode) {
            case 0: TV_DIRECT_VALUE(0) break;
            case 1: TV_DIRECT_VALUE(1) break;
            case 2: TV_DIRECT_VALUE(2) break;
            case 4: TV_DIRECT_VALUE(4) break;
            case 5: TV_DIRECT_VALUE(5) break;
            case 6: TV_DIRECT_VALUE(6) break;
            default: TV_DIRECT_VALUE(3) break;
            }
#undef TV_DIRECT_VALUE
        } else {
#define TV_DIRECT_VALUE(m)                                                                   \
    for (long j = 0; j < W - 1; ++j)                                                         \
        t[j] = w0 * TV_NAME(phi_d)((na[j] - x[j]) * ih0, m, eps2, half) +                    \
               w[2] * TV_NAME(phi_d)((x[j + 1] - x[j]) * ih2, m, eps2, half);                \
    t[W - 1] = w0 * TV_NAME(phi_d)((na[W - 1] - x[W - 1]) * ih0, m, eps2, half) + edge;
            switch (mode) {
            case 0: TV_DIRECT_VALUE(0) break;
            case 1: TV_DIRECT_VALUE(1) break;
            case 2: TV_DIRECT_VALUE(2) break;
            case 4: TV_DIRECT_VALUE(4) break;
            case 5: TV_DIRECT_VALUE(5) break;
            case 6: TV_DIRECT_VALUE(6) break;
            default: TV_DIRECT_VALUE(3) break;
            }
#undef TV_DIRECT_VALUE
        }
        total += TV_NAME(row_sum)(t, W);
    }
    return total;
}

/* out[i] = psi((to[i] - from[i]) * ih) over n values: psi of one axis's differences. */
static void TV_NAME(psi_of_steps)(const TV_T *restrict from, const TV_T *restrict to, long n,
                                  TV_T ih, int mode, TV_T eps2, TV_T half, TV_T beta,
                                  TV_T *restrict out)
{
#define TV_PSI_LOOP(m)                                                                       \
    for (long i = 0; i < n; ++i) out[i] = TV_NAME(psi_d)((to[i] - from[i]) * ih, m, eps2, half, beta);
    switch (mode) {
    case 0: TV_PSI_LOOP(0) break;
    case 1: TV_PSI_LOOP(1) break;
    case 2: TV_PSI_LOOP(2) break;
    case 4: TV_PSI_LOOP(4) break;
    case 5: TV_PSI_LOOP(5) break;
    case 6: TV_PSI_LOOP(6) break;
    default: TV_PSI_LOOP(3) break;
    }
#undef TV_PSI_LOOP
}

/* The one-sweep loops of the common cases: the anisotropic kind on one channel, the
 * isotropic kind on one or three channels. */
#include "_tv_runs.c"

/* Sum of the terms of slab a over the slab, and their map when `map` is given. */
static double TV_NAME(slab_value)(const TV_NAME(shape_t) *s, const TV_T *image, long a,
                                  double beta, TV_T eps2, double scale, const double *dir_weight,
                                  int skip_last, TV_T *const sq[3], TV_T *const sq_back,
                                  TV_T *map)
{
    const long W = s->width, R = s->rows, plane = s->plane;
    double total = 0.0;
    if (s->kind == 1) {
        TV_NAME(squares)(s, image, a, 0, 1, sq);
        for (int k = 0; k < 3; ++k) {
            if (k == 1 && s->nd != 3) continue;
            TV_NAME(phi)(sq[k], plane, beta, eps2, 0, 1, NULL, NULL);
            if (map) {
                const TV_T wk = (TV_T)(dir_weight[k] * scale);
                if (k == 0) {
                    for (long i = 0; i < plane; ++i) map[i] = wk * sq[k][i];
                } else {
                    for (long i = 0; i < plane; ++i) map[i] += wk * sq[k][i];
                }
            }
            if (k == 0 && skip_last && a == s->slabs - 1) continue;
            double part = 0.0;
            for (long r = 0; r < R; ++r) {
                if (k == 1 && skip_last && r == R - 1) continue;
                const TV_T *v = sq[k] + r * W;
                part += TV_NAME(row_sum)(v, (k == 2 && skip_last) ? W - 1 : W);
            }
            total += dir_weight[k] * scale * part;
        }
        return total;
    }
    TV_T *const one[3] = {sq[0], sq[0], sq[0]};
    TV_NAME(squares)(s, image, a, 0, 0, one);
    TV_NAME(phi)(sq[0], plane, beta, eps2, 0, 1, NULL, NULL);
    if (s->kind == 2) {
        TV_T *const back[3] = {sq_back, sq_back, sq_back};
        TV_NAME(squares)(s, image, a, 1, 0, back);
        TV_NAME(phi)(sq_back, plane, beta, eps2, 0, 1, NULL, NULL);
        for (long i = 0; i < plane; ++i) sq[0][i] += sq_back[i];
    }
    double part = 0.0;
    for (long r = 0; r < R; ++r) part += TV_NAME(row_sum)(sq[0] + r * W, W);
    if (map) {
        const TV_T w = (TV_T)scale;
        for (long i = 0; i < plane; ++i) map[i] = w * sq[0][i];
    }
    return scale * part;
}

/* out[i] = scale times the sum of the partial sums (runs_per_image each, in order) of the
 * `group` images i * group to (i + 1) * group - 1, for i < images / group: the value per
 * image, per sample (channelwise: a sample's channels are consecutive images) or in total. */
static void TV_NAME(gather)(const double *partial, long images, long runs_per_image, long group,
                            double scale, TV_T *out)
{
    const long per_out = group * runs_per_image;
    for (long i = 0; i < images / group; ++i) {
        double total = 0.0;
        for (long q = 0; q < per_out; ++q) total += partial[i * per_out + q];
        out[i] = (TV_T)(scale * total);
    }
}

/* The sums of the terms of each `group` consecutive images into out[images / group] (see
 * gather; none when out is NULL); with `map` (images, A * R * W) also the terms themselves. */
void TV_NAME(tv_value)(const TV_T *x, long images, long channels, long slabs, long rows,
                       long width, int nd, int kind, const double *inv_h, double beta,
                       double eps, double scale, const double *dir_weight, int skip_last,
                       TV_T *out, long group, TV_T *map, int threads)
{
    const TV_NAME(shape_t) s = TV_NAME(make_shape)(channels, slabs, rows, width, nd, kind, inv_h);
    const TV_T eps2 = (TV_T)(eps * eps);
    const long run = TV_NAME(run_length)(images, slabs, threads);
    const long runs_per_image = (slabs + run - 1) / run, units = images * runs_per_image;
    double *partial = (double *)calloc((size_t)(units > 0 ? units : 1), sizeof(double));
    const int direct = kind == 1 && channels == 1 && !map, mode = TV_NAME(direct_mode)(beta, eps);
    const TV_T half = (TV_T)(beta / 2);
    const TV_T w[3] = {(TV_T)(scale * dir_weight[0]), (TV_T)(scale * dir_weight[1]),
                       (TV_T)(scale * dir_weight[2])};
#pragma omp parallel num_threads(threads)
    {
        TV_T *buffer = (TV_T *)tv_scratch((size_t)(4 * s.plane), sizeof(TV_T));
        TV_T *const sq[3] = {buffer, buffer + s.plane, buffer + 2 * s.plane};
#pragma omp for schedule(dynamic)
        for (long u = 0; u < units; ++u) {
            const long n = u / runs_per_image, first = (u % runs_per_image) * run;
            const long last = first + run < slabs ? first + run : slabs;
            const TV_T *image = x + n * channels * s.volume;
            double sum = 0.0;
            for (long a = first; a < last; ++a) {
                if (direct) {
                    sum += TV_NAME(direct_slab_value)(&s, image, a, mode, eps2, half, w,
                                                      skip_last, sq[0]);
                    continue;
                }
                TV_T *slab_map = map ? map + n * s.volume + a * s.plane : NULL;
                sum += TV_NAME(slab_value)(&s, image, a, beta, eps2, scale, dir_weight,
                                           skip_last, sq, buffer + 3 * s.plane, slab_map);
            }
            partial[u] = sum;
        }
        free(buffer);
    }
    if (out) TV_NAME(gather)(partial, images, runs_per_image, group, 1.0, out);
    free(partial);
}

/* The sum of a plane of terms (R rows of W) without, for the mean of the anisotropic kind
 * (skip_last), the last row (skip_row) or each row's last value (skip_column). */
static double TV_NAME(plane_sum)(const TV_T *v, long R, long W, int skip_row, int skip_column)
{
    if (!skip_column) return TV_NAME(row_sum)(v, (R - (skip_row ? 1 : 0)) * W);
    double total = 0.0;
    for (long r = 0; r < R - (skip_row ? 1 : 0); ++r) total += TV_NAME(row_sum)(v + r * W, W - 1);
    return total;
}

/* Forward-stencil coefficients of slab a into fwd[k] (one shared plane unless anisotropic).
 * With `values` (scratch for a plane), returns the slab's forward terms (times dir_weight[k],
 * the boundary's left out with skip_last), else 0. */
static double TV_NAME(forward_coefficients)(const TV_NAME(shape_t) *s, const TV_T *image,
                                            long a, double beta, TV_T eps2, TV_T weight,
                                            const double *dir_weight, const TV_T *gmap_image,
                                            TV_T *const fwd[3], TV_T *values, int skip_last)
{
    if (a < 0 || a >= s->slabs) return 0.0;
    const TV_T *g = gmap_image ? gmap_image + a * s->plane : NULL;
    const long P = s->plane, R = s->rows, W = s->width;
    double total = 0.0;
    if (s->kind == 1) {
        TV_NAME(squares)(s, image, a, 0, 1, fwd);
        for (int k = 0; k < 3; ++k) {
            if (k == 1 && s->nd != 3) continue;
            TV_NAME(phi)(fwd[k], P, beta, eps2, 1, (TV_T)(weight * dir_weight[k]), g, values);
            if (!values || (k == 0 && skip_last && a == s->slabs - 1)) continue;
            total += dir_weight[k] *
                     TV_NAME(plane_sum)(values, R, W, k == 1 && skip_last, k == 2 && skip_last);
        }
        return total;
    }
    TV_T *const one[3] = {fwd[0], fwd[0], fwd[0]};
    TV_NAME(squares)(s, image, a, 0, 0, one);
    TV_NAME(phi)(fwd[0], P, beta, eps2, 1, weight, g, values);
    return values ? TV_NAME(row_sum)(values, P) : 0.0;
}

/* Backward-stencil coefficients of slab a into back (symmetric kind); with `values`, returns
 * the slab's backward terms. */
static double TV_NAME(backward_coefficients)(const TV_NAME(shape_t) *s, const TV_T *image,
                                             long a, double beta, TV_T eps2, TV_T weight,
                                             const TV_T *gmap_image, TV_T *back, TV_T *values)
{
    if (a < 0 || a >= s->slabs) return 0.0;
    const TV_T *g = gmap_image ? gmap_image + a * s->plane : NULL;
    TV_T *const b3[3] = {back, back, back};
    TV_NAME(squares)(s, image, a, 1, 0, b3);
    TV_NAME(phi)(back, s->plane, beta, eps2, 1, weight, g, values);
    return values ? TV_NAME(row_sum)(values, s->plane) : 0.0;
}

/* grad = d/dx of sum_n image_weight[n] * (the image's term sum) (image_weight NULL: all 1),
 * or with gmap (images, A * R * W) of sum_p gmap[p] term(p): the backward pass of tv_value
 * (dir_weight as there). With `out`, the same sweep also writes tv_value's sums there
 * (skip_last and group as there): the value and the gradient in one pass over x. */
void TV_NAME(tv_gradient)(const TV_T *x, long images, long channels, long slabs, long rows,
                          long width, int nd, int kind, const double *inv_h, double beta,
                          double eps, double scale, const double *dir_weight, int skip_last,
                          TV_T *out, long group, const double *image_weight, const TV_T *gmap,
                          TV_T *grad, int threads)
{
    const TV_NAME(shape_t) s = TV_NAME(make_shape)(channels, slabs, rows, width, nd, kind, inv_h);
    const TV_T eps2 = (TV_T)(eps * eps);
    const long run = TV_NAME(run_length)(images, slabs, threads);
    const long runs_per_image = (slabs + run - 1) / run, units = images * runs_per_image;
    const long P = s.plane, W = s.width, R = s.rows;
    /* Scratch per thread: the coefficient planes below (13 P), or what isotropic_run takes for
     * three channels (with their padded copies of rows), direct_run less. */
    const long Pa = TV_NAME(padded)(P), Wa = TV_NAME(padded)(W);
    const long scratch = 13 * P > 6 * Pa + 15 * Wa + 32 ? 13 * P : 6 * Pa + 15 * Wa + 32;
    double *partial = out ? (double *)calloc((size_t)(units > 0 ? units : 1), sizeof(double))
                          : NULL;
#pragma omp parallel num_threads(threads)
    {
        /* Rolling coefficient planes: forward stencil of the previous and current slab (3
         * directions each for the anisotropic kind), backward stencil of the current and next
         * slab; then c_k of the current slab (4 planes, with c_0 of the previous slab); last,
         * the terms of one plane when the value is wanted. */
        TV_T *buffer = (TV_T *)tv_scratch((size_t)scratch, sizeof(TV_T));
        TV_T *zeros = (TV_T *)calloc((size_t)W, sizeof(TV_T));
        TV_T *fwd_prev[3] = {buffer, buffer + P, buffer + 2 * P};
        TV_T *fwd_cur[3] = {buffer + 3 * P, buffer + 4 * P, buffer + 5 * P};
        TV_T *back_cur = buffer + 6 * P, *back_next = buffer + 7 * P;
        TV_T *c_prev = buffer + 8 * P, *c0 = buffer + 9 * P, *c1 = buffer + 10 * P,
             *c2 = buffer + 11 * P;
        TV_T *values = out ? buffer + 12 * P : NULL;
#pragma omp for schedule(dynamic)
        for (long u = 0; u < units; ++u) {
            const long n = u / runs_per_image, first = (u % runs_per_image) * run;
            const long last = first + run < slabs ? first + run : slabs;
            const TV_T *image = x + n * channels * s.volume;
            const TV_T *gm = gmap ? gmap + n * s.volume : NULL;
            const TV_T weight = (TV_T)((image_weight ? image_weight[n] : 1.0) * scale);
            double sum = 0.0;
            if (kind == 1 && channels == 1 && !gmap) {
                const int mode = TV_NAME(direct_mode)(beta, eps);
                const TV_T half = (TV_T)(beta / 2), b = (TV_T)beta;
                /* Planes from the coefficient buffer: psi along the slab axis, along rows,
                 * one row (with a leading 0) along columns, and the terms, each on a vector. */
                TV_T *pcol = buffer + Pa + Wa + 16;
                pcol[-1] = 0;
                const TV_T *end = x + images * channels * s.volume;
                const double sum =
                    mode == 0 || mode == 2
                        ? TV_NAME(direct_run_fast)(&s, image, x, end, grad + n * s.volume,
                                                   first, last, mode, eps2, dir_weight, weight,
                                                   skip_last, buffer)
                        : TV_NAME(direct_run)(&s, image, end, grad + n * s.volume, first, last,
                                              mode, eps2, half, b, dir_weight, weight,
                                              skip_last, buffer, buffer + Pa, pcol,
                                              pcol + Wa);
                if (partial) partial[u] = sum;
                continue;
            }
            if (kind == 0 && (channels == 1 || channels == 3) && !gmap) {
                const double sum = TV_NAME(isotropic_run)(
                    &s, image, x, x + images * channels * s.volume, grad + n * channels * s.volume,
                    first, last, beta, eps2, weight, buffer);
                if (partial) partial[u] = sum;
                continue;
            }
            TV_NAME(forward_coefficients)(&s, image, first - 1, beta, eps2, weight,
                                          dir_weight, gm, fwd_prev, NULL, skip_last);
            sum += TV_NAME(forward_coefficients)(&s, image, first, beta, eps2, weight,
                                                 dir_weight, gm, fwd_cur, values, skip_last);
            if (kind == 2)
                sum += TV_NAME(backward_coefficients)(&s, image, first, beta, eps2, weight, gm,
                                                      back_cur, values);
            for (long a = first; a < last; ++a) {
                if (kind == 2)
                    sum += TV_NAME(backward_coefficients)(&s, image, a + 1, beta, eps2, weight,
                                                          gm, back_next,
                                                          a + 1 < last ? values : NULL);
                /* c_k for this slab. */
                const TV_T *cp, *k0, *k1, *k2;
                if (kind == 0) {
                    cp = fwd_prev[0];
                    k0 = k1 = k2 = fwd_cur[0];
                } else if (kind == 1) {
                    cp = fwd_prev[0];
                    k0 = fwd_cur[0];
                    k1 = fwd_cur[1];
                    k2 = fwd_cur[2];
                } else {
                    /* c_k(p) = forward coefficient at p + backward coefficient at p + e_k;
                     * past the last index the value is never used (d_k is 0 there). */
                    const TV_T *restrict f0 = fwd_cur[0], *restrict bc = back_cur;
                    const TV_T *restrict bn = a + 1 < slabs ? back_next : back_cur;
                    for (long i = 0; i < P; ++i) c_prev[i] = fwd_prev[0][i] + bc[i];
                    for (long i = 0; i < P; ++i) c0[i] = f0[i] + bn[i];
                    for (long i = 0; i + W < P; ++i) c1[i] = f0[i] + bc[i + W];
                    for (long i = P - W > 0 ? P - W : 0; i < P; ++i) c1[i] = f0[i];
                    for (long i = 0; i + 1 < P; ++i) c2[i] = f0[i] + bc[i + 1];
                    c2[P - 1] = f0[P - 1];
                    cp = c_prev;
                    k0 = c0;
                    k1 = c1;
                    k2 = c2;
                }
                const TV_T h0 = s.ih2[0], h1 = s.ih2[1], h2 = s.ih2[2];
                for (long c = 0; c < channels; ++c) {
                    const TV_T *slab = image + c * s.volume + a * P;
                    TV_T *gslab = grad + (n * channels + c) * s.volume + a * P;
                    /* A missing neighbour is the value itself (difference 0) and a missing
                     * coefficient is 0, so one loop covers the interior and the faces. */
                    const TV_T *pslab = a > 0 ? slab - P : slab;
                    const TV_T *nslab = a < slabs - 1 ? slab + P : slab;
                    for (long r = 0; r < R; ++r) {
                        const long o = r * W;
                        const TV_T *restrict x = slab + o, *restrict pa = pslab + o;
                        const TV_T *restrict na = nslab + o;
                        const int up = nd == 3 && r > 0, down = nd == 3 && r < R - 1;
                        const TV_T *restrict pr = up ? x - W : x, *restrict nr = down ? x + W : x;
                        const TV_T *restrict qp = a > 0 ? cp + o : zeros;
                        const TV_T *restrict qu = up ? k1 + o - W : zeros;
                        const TV_T *restrict q0 = k0 + o, *restrict q1 = k1 + o;
                        const TV_T *restrict q2 = k2 + o;
                        TV_T *restrict g = gslab + o;
#define TV_GRAD_SLABS(j) (h0 * (qp[j] * (x[j] - pa[j]) - q0[j] * (na[j] - x[j])))
#define TV_GRAD_ROWS(j) (h1 * (qu[j] * (x[j] - pr[j]) - q1[j] * (nr[j] - x[j])))
#define TV_GRAD_ROW(AXES)                                                                    \
    if (W == 1) {                                                                            \
        g[0] = AXES(0);                                                                      \
    } else {                                                                                 \
        g[0] = AXES(0) - h2 * q2[0] * (x[1] - x[0]);                                         \
        for (long j = 1; j < W - 1; ++j)                                                     \
            g[j] = AXES(j) + h2 * (q2[j - 1] * (x[j] - x[j - 1]) - q2[j] * (x[j + 1] - x[j])); \
        g[W - 1] = AXES(W - 1) + h2 * q2[W - 2] * (x[W - 1] - x[W - 2]);                     \
    }
#define TV_GRAD_BOTH(j) (TV_GRAD_SLABS(j) + TV_GRAD_ROWS(j))
                        /* Images (nd 2) have no row axis: fewer streams in the loop. */
                        if (nd == 3) {
                            TV_GRAD_ROW(TV_GRAD_BOTH)
                        } else {
                            TV_GRAD_ROW(TV_GRAD_SLABS)
                        }
#undef TV_GRAD_BOTH
#undef TV_GRAD_ROW
#undef TV_GRAD_ROWS
#undef TV_GRAD_SLABS
                    }
                }
                /* Roll: the current slab becomes the previous one. */
                if (a + 1 < last) {
                    for (int k = 0; k < 3; ++k) {
                        TV_T *t = fwd_prev[k];
                        fwd_prev[k] = fwd_cur[k];
                        fwd_cur[k] = t;
                    }
                    TV_T *t = back_cur;
                    back_cur = back_next;
                    back_next = t;
                    sum += TV_NAME(forward_coefficients)(&s, image, a + 1, beta, eps2, weight,
                                                         dir_weight, gm, fwd_cur, values,
                                                         skip_last);
                }
            }
            if (partial) partial[u] = sum;
        }
        free(buffer);
        free(zeros);
    }
    if (out) {
        TV_NAME(gather)(partial, images, runs_per_image, group, scale, out);
        free(partial);
    }
}

#endif
