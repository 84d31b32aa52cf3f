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
