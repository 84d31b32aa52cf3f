/* The patch graph of nonlocal TV: for every pixel, the `k` offsets of a search window whose
 * patches are nearest to its own, and their weights.
 *
 * Compiled at run time by tvdenoise/nonlocal_graph.py through tvdenoise/native.py (plain C99,
 * OpenMP when available) and called through ctypes on contiguous CPU tensors; build_graph in
 * nonlocal_graph.py holds the same computation in PyTorch operations, used where this cannot
 * be compiled and on other devices.
 *
 * pilot is (images, channels, h, w); offsets holds `count` pairs (dy, dx), nearest first.  For
 * each offset: the per-pixel squared difference to the shifted pilot, averaged over channels
 * (0 where the shifted pixel leaves the image), then its mean over the patch x patch window
 * around each pixel (over the window's pixels inside the image), skipped where the shifted
 * pixel leaves the image; each pixel keeps the `k` smallest distances, the earlier offset
 * first among equal ones (a stable selection, as a stable sort would).  Outputs index
 * (images, k, h * w), the flat pixel of each kept neighbour (the pixel itself where fewer than
 * k offsets fit), and root_weight (images, k, h * w) = exp(-d / (2 scale^2)) (0 for no edge),
 * the square root of the weight exp(-d / scale^2).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define DEFINE_GRAPH(T, SUFFIX)                                                                 \
    void nl_build_graph_##SUFFIX(const T *pilot, long images, long channels, long h, long w,    \
                                 const int32_t *offsets, long count, long k, long patch,        \
                                 double scale, int64_t *index, T *root_weight, int threads)     \
    {                                                                                           \
        const long hw = h * w, half = patch / 2;                                                \
        const double factor = -0.5 / (scale * scale);                                           \
        (void)threads;                                                                          \
        for (long n = 0; n < images; ++n) {                                                     \
            const T *image = pilot + n * channels * hw;                                         \
            _Pragma("omp parallel num_threads(threads)")                                        \
            {                                                                                   \
                T *columns = (T *)malloc(sizeof(T) * (size_t)(3 * w));                          \
                T *sums = columns + w, *limit = sums + w;                                       \
                T *best = (T *)malloc(sizeof(T) * (size_t)(w * k));                             \
                int32_t *chosen = (int32_t *)malloc(sizeof(int32_t) * (size_t)(w * k));         \
                /* One row at a time, all offsets: the row's kept lists stay in cache. */       \
                _Pragma("omp for schedule(static)")                                             \
                for (long i = 0; i < h; ++i) {                                                  \
                    const long top = i - half > 0 ? i - half : 0;                               \
                    const long bottom = i + half < h - 1 ? i + half : h - 1;                    \
                    const long rows_in = bottom - top + 1;                                      \
                    for (long e = 0; e < w * k; ++e) {                                          \
                        best[e] = (T)INFINITY;                                                  \
                        chosen[e] = -1;                                                         \
                    }                                                                           \
                    for (long j = 0; j < w; ++j) limit[j] = (T)INFINITY;                        \
                    for (long o = 0; o < count; ++o) {                                          \
                        const long dy = offsets[2 * o], dx = offsets[2 * o + 1];                \
                        if (i + dy < 0 || i + dy >= h) continue;                                \
                        const long lo = dx < 0 ? -dx : 0, hi = dx > 0 ? w - dx : w;             \
                        /* The patch's column sums of the squared differences (0 where the      \
                         * shifted pixel leaves the image), averaged over the channels. */      \
                        for (long j = 0; j < w; ++j) columns[j] = 0;                            \
                        for (long r = top; r <= bottom; ++r) {                                  \
                            if (r + dy < 0 || r + dy >= h) continue;                            \
                            for (long c = 0; c < channels; ++c) {                               \
                                const T *restrict here = image + c * hw + r * w;                \
                                const T *restrict there = here + dy * w + dx;                   \
                                T *restrict column = columns;                                   \
                                for (long j = lo; j < hi; ++j) {                                \
                                    const T diff = here[j] - there[j];                          \
                                    column[j] += diff * diff;                                   \
                                }                                                               \
                            }                                                                   \
                        }                                                                       \
                        if (channels > 1)                                                       \
                            for (long j = lo; j < hi; ++j) columns[j] /= (T)channels;           \
                        /* Window sums along the row: the cut ends, then the interior. */       \
                        const long from = lo > half ? lo : half;                                \
                        const long to = hi < w - half ? hi : w - half;                          \
                        for (long j = lo; j < hi; ++j) {                                        \
                            if (j == from && from < to) {                                       \
                                j = to - 1;                                                     \
                                continue;                                                       \
                            }                                                                   \
                            const long left = j - half > 0 ? j - half : 0;                      \
                            const long right = j + half < w - 1 ? j + half : w - 1;             \
                            T sum = 0;                                                          \
                            for (long m = left; m <= right; ++m) sum += columns[m];             \
                            sums[j] = sum / (T)(rows_in * (right - left + 1));                  \
                        }                                                                       \
                        const T area = (T)(rows_in * patch);                                    \
                        for (long j = from; j < to; ++j) sums[j] = 0;                           \
                        for (long m = -half; m <= half; ++m) {                                  \
                            const T *restrict shifted = columns + m;                            \
                            T *restrict total = sums;                                           \
                            for (long j = from; j < to; ++j) total[j] += shifted[j];            \
                        }                                                                       \
                        for (long j = from; j < to; ++j) sums[j] /= area;                       \
                        for (long chunk = lo; chunk < hi; chunk += 16) {                        \
                            const long stop = chunk + 16 < hi ? chunk + 16 : hi;                \
                            int any = 0;                                                        \
                            for (long j = chunk; j < stop; ++j) any |= sums[j] < limit[j];      \
                            if (!any) continue;                                                 \
                            for (long j = chunk; j < stop; ++j) {                               \
                            const T d = sums[j];                                                \
                            if (!(d < limit[j])) continue;                                      \
                            T *list = best + j * k;                                             \
                            int32_t *ids = chosen + j * k;                                      \
                            long place = k - 1;                                                 \
                            while (place > 0 && d < list[place - 1]) {                          \
                                list[place] = list[place - 1];                                  \
                                ids[place] = ids[place - 1];                                    \
                                --place;                                                        \
                            }                                                                   \
                            list[place] = d;                                                    \
                            ids[place] = (int32_t)o;                                            \
                            limit[j] = list[k - 1];                                             \
                        }                                                                       \
                        }                                                                       \
                    }                                                                           \
                    for (long j = 0; j < w; ++j)                                                \
                        for (long e = 0; e < k; ++e) {                                          \
                            const int32_t o = chosen[j * k + e];                                \
                            const long pixel = i * w + j, out = n * k * hw + e * hw + pixel;    \
                            if (o < 0) {                                                        \
                                index[out] = pixel;                                             \
                                root_weight[out] = 0;                                           \
                            } else {                                                            \
                                index[out] = pixel + offsets[2 * o] * w + offsets[2 * o + 1];   \
                                root_weight[out] = (T)exp(factor * (double)best[j * k + e]);    \
                            }                                                                   \
                        }                                                                       \
                }                                                                               \
                free(columns);                                                                  \
                free(best);                                                                     \
                free(chosen);                                                                   \
            }                                                                                   \
        }                                                                                       \
    }

DEFINE_GRAPH(float, f32)
DEFINE_GRAPH(double, f64)
