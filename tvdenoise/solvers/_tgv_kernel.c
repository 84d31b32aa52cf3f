/* Fused Chambolle-Pock iterations for second-order TGV with the L2 fidelity, 2-D images.
 *
 * Compiled at run time by tvdenoise/solvers/native.py (plain C99, OpenMP when available) and
 * called through ctypes on contiguous CPU tensors; tvdenoise/solvers/tgv.py holds the same
 * iteration in PyTorch operations (used on other devices, for volumes, grid steps and the
 * other fidelities, and with TVDENOISE_NO_NATIVE=1), and its docstring the maths.
 *
 * Layout, per image n and channel c, planes of h * w values: u, ubar, f (images, channels);
 * w, wbar, p (images, channels, 2); q (images, channels, 3: q00, q11, q01).  w and wbar hold 0
 * where w_k does not live (the last row for k = 0, the last column for k = 1).
 *
 * channelwise = 0 couples the channels in both dual norms (vectorial colour), 1 gives each
 * channel its own balls.
 *
 * One iteration (theta = 1 / sqrt(1 + 2 gamma tau), then tau *= theta, sigma /= theta):
 *   p <- project_{|p| <= alpha1}(p + sigma (D ubar - wbar))
 *   q <- project_{|q|_F <= alpha0}(q + sigma E wbar)
 *   u' <- (u + tau div p + tau f) / (1 + tau);  w' <- w + tau mask(p + div2 q)
 *   ubar <- u' + theta (u' - u);  wbar <- w' + theta (w' - w)
 * Row r's dual step reads ubar and wbar on rows r and r + 1; its primal step reads p and q on
 * rows r and r - 1.  On one thread each iteration is one sweep: the dual step of row r, then
 * its primal step (rows r and r + 1 of ubar, wbar were read before row r is rewritten).  With
 * more threads, a dual sweep and a primal sweep over the rows in parallel.
 */
#include <math.h>
#include <stdlib.h>

/* The loop bodies over columns START <= j < END of a row, with the column flags given: the
 * interior columns get constant flags, so the compiler vectorises them. */
#define PRIMAL_SEGMENT(T, START, END, right, right2, left, left2)                               \
    for (long j = (START); j < (END); ++j) {                                                    \
        const T div = (fd * p0[j] - fu * p0u[j]) +                       \
                      (((right) ? p1[j] : (T)0) - ((left) ? p1[j - 1] : (T)0));                 \
        const T s0 = (fd2 * q0[j] - fu2 * q0u[j]) +        \
                     (((right) ? q2[j] : (T)0) - ((left) ? q2[j - 1] : (T)0));                  \
        const T s1 = (fd * q2[j] - fu * q2u[j]) +                        \
                     (((right) && (right2) ? q1[j] : (T)0) - ((left) && (left2) ? q1[j - 1] : (T)0));\
        const T old = uu[j];                                                                    \
        const T next = ((old + tau * div) + tau * ff[j]) * scale;                               \
        uu[j] = next;                                                                           \
        ub[j] = next + theta * (next - old);                                                    \
        const T a = w0[j], b = w1[j];                                                           \
        const T na = fd * (a + tau * (p0[j] + s0));                                      \
        const T nb = (right) ? b + tau * (p1[j] + s1) : (T)0;                                   \
        w0[j] = na;                                                                             \
        w1[j] = nb;                                                                             \
        v0[j] = na + theta * (na - a);                                                          \
        v1[j] = nb + theta * (nb - b);                                                          \
    }

#define DUAL_SEGMENT(T, START, END, right, right2)                                              \
    for (long j = (START); j < (END); ++j) {                                                    \
        const T gu0 = ubd[j] - ub[j];                                          \
        const T gu1 = (right) ? ub[j + 1] - ub[j] : (T)0;                                       \
        const T a = p0[j] + sigma * (gu0 - w0[j]);                                              \
        const T b = p1[j] + sigma * (gu1 - w1[j]);                                              \
        const T e00 = w0d[j] - w0[j];                                         \
        const T e11 = (right2) ? w1[j + 1] - w1[j] : (T)0;                                      \
        const T d10 = (right) ? w0[j + 1] - w0[j] : (T)0;                                       \
        const T d01 = w1d[j] - w1[j];                                          \
        const T x = q0[j] + sigma * e00, y = q1[j] + sigma * e11;                               \
        const T z = q2[j] + sigma * ((T)0.5 * (d10 + d01));                                     \
        p0[j] = a;                                                                              \
        p1[j] = b;                                                                              \
        q0[j] = x;                                                                              \
        q1[j] = y;                                                                              \
        q2[j] = z;                                                                              \
        np[j] += a * a + b * b;                                                                 \
        nq[j] += x * x + y * y + (T)2 * (z * z);                                                \
    }

#define DEFINE_KERNELS(T, SUFFIX, SQRT)                                                         \
    /* Dual step of row r of one image: every channel, then the projections. */              \
    static void dual_row_##SUFFIX(const T *ubar, const T *wbar, T *p, T *q, long channels,    \
                                  long h, long w, long r, int channelwise, T alpha1,          \
                                  T alpha0, T sigma, T *np, T *nq)                            \
    {                                                                                          \
        const long hw = h * w, o = r * w;                                                      \
        const int down = r < h - 1, down2 = r < h - 2;                                         \
        for (long j = 0; j < w; ++j) np[j] = nq[j] = 0;                                        \
        for (long c = 0; c < channels; ++c) {                                                  \
            const T *restrict ub = ubar + c * hw + o;                                          \
            const T *restrict w0 = wbar + (2 * c) * hw + o;                                    \
            const T *restrict w1 = wbar + (2 * c + 1) * hw + o;                                \
            T *restrict p0 = p + (2 * c) * hw + o, *restrict p1 = p + (2 * c + 1) * hw + o;    \
            T *restrict q0 = q + (3 * c) * hw + o, *restrict q1 = q + (3 * c + 1) * hw + o;    \
            T *restrict q2 = q + (3 * c + 2) * hw + o;                                         \
            /* The next row, or the row itself where there is none: the difference is 0. */   \
            const T *restrict ubd = down ? ub + w : ub, *restrict w1d = down ? w1 + w : w1;    \
            const T *restrict w0d = down2 ? w0 + w : w0;                                       \
            DUAL_SEGMENT(T, 0, w - 2 > 0 ? w - 2 : 0, 1, 1);                                     \
            DUAL_SEGMENT(T, w - 2 > 0 ? w - 2 : 0, w, j < w - 1, j < w - 2);                      \
            if (channelwise || c == channels - 1) {                                            \
                const long first = channelwise ? c : 0;                                        \
                for (long j = 0; j < w; ++j) {                                                 \
                    T m = SQRT(np[j]) / alpha1;                                                \
                    np[j] = (T)1 / (m > (T)1 ? m : (T)1);                                      \
                    m = SQRT(nq[j]) / alpha0;                                                  \
                    nq[j] = (T)1 / (m > (T)1 ? m : (T)1);                                      \
                }                                                                              \
                for (long k = first; k <= c; ++k) {                                            \
                    T *restrict a0 = p + (2 * k) * hw + o, *restrict a1 = p + (2 * k + 1) * hw + o; \
                    T *restrict b0 = q + (3 * k) * hw + o, *restrict b1 = q + (3 * k + 1) * hw + o; \
                    T *restrict b2 = q + (3 * k + 2) * hw + o;                                 \
                    for (long j = 0; j < w; ++j) {                                             \
                        a0[j] *= np[j];                                                        \
                        a1[j] *= np[j];                                                        \
                        b0[j] *= nq[j];                                                        \
                        b1[j] *= nq[j];                                                        \
                        b2[j] *= nq[j];                                                        \
                    }                                                                          \
                }                                                                              \
                for (long j = 0; j < w; ++j) np[j] = nq[j] = 0;                                \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* Primal step of row r of one image (reads p and q on rows r and r - 1). */             \
    static void primal_row_##SUFFIX(T *u, T *ubar, T *wf, T *wbar, const T *p, const T *q,    \
                                    const T *f, long channels, long h, long w, long r, T tau, \
                                    T theta)                                                   \
    {                                                                                          \
        const long hw = h * w, o = r * w;                                                      \
        const int down = r < h - 1, up = r > 0, down2 = r < h - 2, up2 = r > 0 && r - 1 < h - 2; \
        const T scale = (T)1 / ((T)1 + tau);                                                   \
        /* Row flags as factors, the rows above as pointers that stay in the image. */    \
        const T fd = (T)down, fu = (T)up, fd2 = (T)(down && down2), fu2 = (T)(up && up2);     \
        for (long c = 0; c < channels; ++c) {                                                  \
            T *restrict uu = u + c * hw + o, *restrict ub = ubar + c * hw + o;                 \
            T *restrict w0 = wf + (2 * c) * hw + o, *restrict w1 = wf + (2 * c + 1) * hw + o;  \
            T *restrict v0 = wbar + (2 * c) * hw + o, *restrict v1 = wbar + (2 * c + 1) * hw + o; \
            const T *restrict p0 = p + (2 * c) * hw + o, *restrict p1 = p + (2 * c + 1) * hw + o; \
            const T *restrict q0 = q + (3 * c) * hw + o, *restrict q1 = q + (3 * c + 1) * hw + o; \
            const T *restrict q2 = q + (3 * c + 2) * hw + o;                                   \
            const T *restrict ff = f + c * hw + o;                                             \
            const T *restrict p0u = up ? p0 - w : p0, *restrict q0u = up ? q0 - w : q0;      \
            const T *restrict q2u = up ? q2 - w : q2;                                          \
            PRIMAL_SEGMENT(T, 0, w < 1 ? w : 1, j < w - 1, j < w - 2, j > 0, j > 0 && j - 1 < w - 2); \
            PRIMAL_SEGMENT(T, 1, w - 2, 1, 1, 1, 1);                                          \
            PRIMAL_SEGMENT(T, w - 2 > 1 ? w - 2 : 1, w, j < w - 1, j < w - 2, j > 0,              \
                           j > 0 && j - 1 < w - 2);                                            \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void tgv_cp_iterations_##SUFFIX(T *u, T *ubar, T *wf, T *wbar, T *p, T *q, const T *f,    \
                                    long images, long channels, long h, long w,               \
                                    int channelwise, double alpha1, double alpha0,            \
                                    double *steps, double gamma, long iterations, int threads) \
    {                                                                                          \
        const long image = channels * h * w;                                                   \
        double tau = steps[0], sigma = steps[1];                                               \
        T *scratch = (T *)malloc(sizeof(T) * 2 * (size_t)w * (size_t)(threads > 0 ? threads : 1)); \
        if (scratch == NULL) return;                                                           \
        for (long it = 0; it < iterations; ++it) {                                             \
            const double theta = gamma > 0 ? 1.0 / sqrt(1.0 + 2.0 * gamma * tau) : 1.0;        \
            const T s = (T)sigma, t = (T)tau, th = (T)theta;                                   \
            if (threads <= 1) {                                                                \
                for (long n = 0; n < images; ++n)                                              \
                    for (long r = 0; r < h; ++r) {                                             \
                        dual_row_##SUFFIX(ubar + n * image, wbar + 2 * n * image,              \
                                          p + 2 * n * image, q + 3 * n * image, channels, h,   \
                                          w, r, channelwise, (T)alpha1, (T)alpha0, s,          \
                                          scratch, scratch + w);                               \
                        primal_row_##SUFFIX(u + n * image, ubar + n * image, wf + 2 * n * image, \
                                            wbar + 2 * n * image, p + 2 * n * image,           \
                                            q + 3 * n * image, f + n * image, channels, h, w,  \
                                            r, t, th);                                         \
                    }                                                                          \
            } else {                                                                           \
                _Pragma("omp parallel num_threads(threads)")                                   \
                {                                                                              \
                    _Pragma("omp for schedule(static)")                                        \
                    for (long job = 0; job < images * h; ++job) {                              \
                        const long n = job / h, r = job % h;                                   \
                        T *buffer = scratch + 2 * w * THREAD_NUMBER;                           \
                        dual_row_##SUFFIX(ubar + n * image, wbar + 2 * n * image,              \
                                          p + 2 * n * image, q + 3 * n * image, channels, h,   \
                                          w, r, channelwise, (T)alpha1, (T)alpha0, s, buffer,  \
                                          buffer + w);                                         \
                    }                                                                          \
                    _Pragma("omp for schedule(static)")                                        \
                    for (long job = 0; job < images * h; ++job) {                              \
                        const long n = job / h, r = job % h;                                   \
                        primal_row_##SUFFIX(u + n * image, ubar + n * image, wf + 2 * n * image, \
                                            wbar + 2 * n * image, p + 2 * n * image,           \
                                            q + 3 * n * image, f + n * image, channels, h, w,  \
                                            r, t, th);                                         \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            tau *= theta;                                                                      \
            sigma /= theta;                                                                    \
        }                                                                                      \
        free(scratch);                                                                         \
        steps[0] = tau;                                                                        \
        steps[1] = sigma;                                                                      \
    }

#ifdef _OPENMP
#include <omp.h>
#define THREAD_NUMBER omp_get_thread_num()
#else
#define THREAD_NUMBER 0
#endif

DEFINE_KERNELS(float, f32, sqrtf)
DEFINE_KERNELS(double, f64, sqrt)

/* The check in one call, in double precision, on double copies (q is overwritten): per image,
 * out[2 n] = E(u, w) and out[2 n + 1] = the certificate of tgv.py's certificate(): q
 * projected onto |q|_F <= alpha0, `passes` local repairs (where |div2 q| > alpha1, the q of
 * the 3x3 neighbourhood scaled by its smallest alpha1 / |div2 q|), then the global scale and
 * the L2 dual value -1/2 ||z||^2 - <f, z> of z = div(-div2 q) times that scale.
 * scale and spare hold images * groups * h * w values, pt images * channels * 2 * h * w. */
static void div2_pixel(const double *q0, const double *q1, const double *q2, long h, long w,
                       long r, long j, double *s0, double *s1)
{
    const long i = r * w + j;
    const int down = r < h - 1, up = r > 0, down2 = r < h - 2, up2 = r > 0 && r - 1 < h - 2;
    const int right = j < w - 1, left = j > 0, right2 = j < w - 2, left2 = j > 0 && j - 1 < w - 2;
    *s0 = ((down && down2 ? q0[i] : 0.0) - (up && up2 ? q0[i - w] : 0.0)) +
          ((right ? q2[i] : 0.0) - (left ? q2[i - 1] : 0.0));
    *s1 = ((down ? q2[i] : 0.0) - (up ? q2[i - w] : 0.0)) +
          ((right && right2 ? q1[i] : 0.0) - (left && left2 ? q1[i - 1] : 0.0));
    if (!down) *s0 = 0.0;
    if (!right) *s1 = 0.0;
}

/* scale[g][i] = min(1, alpha1 / |div2 q|) per group (all channels, or one); returns whether
 * any is below 1.  pt (if not NULL) receives -div2 q. */
static int repair_scale(const double *q, double *scale, double *pt, long channels, long h,
                        long w, int channelwise, double alpha1)
{
    const long hw = h * w, groups = channelwise ? channels : 1;
    int violated = 0;
    for (long g = 0; g < groups; ++g)
        for (long i = 0; i < hw; ++i) scale[g * hw + i] = 0.0;
    for (long c = 0; c < channels; ++c) {
        const double *q0 = q + 3 * c * hw, *q1 = q0 + hw, *q2 = q1 + hw;
        double *sc = scale + (channelwise ? c : 0) * hw;
        for (long r = 0; r < h; ++r)
            for (long j = 0; j < w; ++j) {
                double s0, s1;
                div2_pixel(q0, q1, q2, h, w, r, j, &s0, &s1);
                sc[r * w + j] += s0 * s0 + s1 * s1;
                if (pt != NULL) {
                    pt[2 * c * hw + r * w + j] = -s0;
                    pt[(2 * c + 1) * hw + r * w + j] = -s1;
                }
            }
    }
    for (long i = 0; i < groups * hw; ++i) {
        const double m = sqrt(scale[i]);
        scale[i] = m > alpha1 ? alpha1 / m : 1.0;
        violated |= scale[i] < 1.0;
    }
    return violated;
}

void tgv_measure_f64(const double *u, const double *wf, double *q, const double *f,
                     double *scale, double *spare, double *pt, long images, long channels,
                     long h, long w, int channelwise, double alpha1, double alpha0, long passes,
                     double *out)
{
    const long hw = h * w, groups = channelwise ? channels : 1;
    for (long n = 0; n < images; ++n) {
        const double *un = u + n * channels * hw, *fn = f + n * channels * hw;
        const double *wn = wf + 2 * n * channels * hw;
        double *qn = q + 3 * n * channels * hw, *sn = scale + n * groups * hw;
        double *tn = spare + n * groups * hw, *pn = pt + 2 * n * channels * hw;
        /* E(u, w): the fidelity, then both TV terms from per-pixel sums of squares. */
        double fidelity = 0.0, first = 0.0, second = 0.0;
        for (long g = 0; g < groups; ++g)
            for (long i = 0; i < hw; ++i) sn[g * hw + i] = tn[g * hw + i] = 0.0;
        for (long c = 0; c < channels; ++c) {
            const double *uc = un + c * hw, *fc = fn + c * hw;
            const double *w0 = wn + 2 * c * hw, *w1 = w0 + hw;
            double *a = sn + (channelwise ? c : 0) * hw, *b = tn + (channelwise ? c : 0) * hw;
            for (long r = 0; r < h; ++r)
                for (long j = 0; j < w; ++j) {
                    const long i = r * w + j;
                    const int down = r < h - 1, right = j < w - 1;
                    const double d = uc[i] - fc[i];
                    fidelity += d * d;
                    const double g0 = (down ? uc[i + w] - uc[i] : 0.0) - (down ? w0[i] : 0.0);
                    const double g1 = (right ? uc[i + 1] - uc[i] : 0.0) - (right ? w1[i] : 0.0);
                    a[i] += g0 * g0 + g1 * g1;
                    const double e00 = r < h - 2 ? w0[i + w] - w0[i] : 0.0;
                    const double e11 = j < w - 2 ? w1[i + 1] - w1[i] : 0.0;
                    const double d10 = right ? (down ? w0[i + 1] : 0.0) - (down ? w0[i] : 0.0) : 0.0;
                    const double d01 = down ? (right ? w1[i + w] : 0.0) - (right ? w1[i] : 0.0) : 0.0;
                    const double e01 = 0.5 * (d10 + d01);
                    b[i] += e00 * e00 + e11 * e11 + 2.0 * e01 * e01;
                }
        }
        for (long i = 0; i < groups * hw; ++i) {
            first += sqrt(sn[i]);
            second += sqrt(tn[i]);
        }
        out[2 * n] = 0.5 * fidelity + alpha1 * first + alpha0 * second;
        /* q onto its ball |q|_F <= alpha0. */
        for (long i = 0; i < groups * hw; ++i) sn[i] = 0.0;
        for (long c = 0; c < channels; ++c) {
            const double *q0 = qn + 3 * c * hw, *q1 = q0 + hw, *q2 = q1 + hw;
            double *a = sn + (channelwise ? c : 0) * hw;
            for (long i = 0; i < hw; ++i) a[i] += q0[i] * q0[i] + q1[i] * q1[i] + 2.0 * q2[i] * q2[i];
        }
        for (long i = 0; i < groups * hw; ++i) {
            const double m = sqrt(sn[i]) / alpha0;
            sn[i] = m > 1.0 ? 1.0 / m : 1.0;
        }
        for (long c = 0; c < channels; ++c) {
            const double *a = sn + (channelwise ? c : 0) * hw;
            for (long k = 0; k < 3; ++k)
                for (long i = 0; i < hw; ++i) qn[(3 * c + k) * hw + i] *= a[i];
        }
        /* The local repairs. */
        for (long pass = 0; pass < passes; ++pass) {
            if (!repair_scale(qn, sn, NULL, channels, h, w, channelwise, alpha1)) break;
            for (long g = 0; g < groups; ++g) {
                double *s = sn + g * hw, *t = tn + g * hw;
                for (long r = 0; r < h; ++r)
                    for (long j = 0; j < w; ++j) {
                        const long i = r * w + j;
                        double m = s[i];
                        if (r > 0 && s[i - w] < m) m = s[i - w];
                        if (r < h - 1 && s[i + w] < m) m = s[i + w];
                        t[i] = m;
                    }
                for (long r = 0; r < h; ++r)
                    for (long j = 0; j < w; ++j) {
                        const long i = r * w + j;
                        double m = t[i];
                        if (j > 0 && t[i - 1] < m) m = t[i - 1];
                        if (j < w - 1 && t[i + 1] < m) m = t[i + 1];
                        s[i] = m;
                    }
            }
            for (long c = 0; c < channels; ++c) {
                const double *a = sn + (channelwise ? c : 0) * hw;
                for (long k = 0; k < 3; ++k)
                    for (long i = 0; i < hw; ++i) qn[(3 * c + k) * hw + i] *= a[i];
            }
        }
        /* The global scale and the dual value of z = scale * div(-div2 q). */
        repair_scale(qn, sn, pn, channels, h, w, channelwise, alpha1);
        double smallest = 1.0;
        for (long i = 0; i < groups * hw; ++i) smallest = sn[i] < smallest ? sn[i] : smallest;
        double dual = 0.0;
        for (long c = 0; c < channels; ++c) {
            const double *p0 = pn + 2 * c * hw, *p1 = p0 + hw, *fc = fn + c * hw;
            for (long r = 0; r < h; ++r)
                for (long j = 0; j < w; ++j) {
                    const long i = r * w + j;
                    const double z = smallest * (((r < h - 1 ? p0[i] : 0.0) - (r > 0 ? p0[i - w] : 0.0)) +
                                                 ((j < w - 1 ? p1[i] : 0.0) - (j > 0 ? p1[i - 1] : 0.0)));
                    dual += -0.5 * z * z - fc[i] * z;
                }
        }
        out[2 * n + 1] = dual;
    }
}
