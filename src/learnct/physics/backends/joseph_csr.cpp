// Joseph's matrix A_0 and its transpose as CSR, built in two passes over the rays: count the
// entries per ray and, per block of rays, per pixel; then write each entry once into A_0 and,
// through per-block pixel cursors, into A_0^T (whose rows list the rays in increasing order).
// The memory is the output and the counts only. Compiled with -ffp-contract=off: every entry is
// the same float64 arithmetic, in the same order, as learnct.physics.joseph.joseph_entries
// (IEEE operations, each rounded once), so the matrices equal the torch build's bit for bit.
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

struct Grid {
    int64_t n;     // pixels per side
    double px;     // pixel size, mm
    double centre; // (n - 1) / 2
};

// frames: per ray (prim_o, prim_d, sec_o, sec_d) in mm; x_major: x is the primary axis.
// Calls emit(pixel, weight) for the ray's entries with weight > 0 inside the image, in A_0's
// order: the lower neighbours for k = 0..n-1, then the upper ones.
template <typename Emit>
inline void ray_entries(const double* frame, bool x_major, const Grid& g, double* frac,
                        Emit&& emit) {
    const double prim_o = frame[0], prim_d = frame[1], sec_o = frame[2], sec_d = frame[3];
    for (int64_t k = 0; k < g.n; ++k) {
        const double line = (static_cast<double>(k) - g.centre) * g.px;
        const double prim = x_major ? line : -line;
        const double sec = sec_o + (prim - prim_o) / prim_d * sec_d;
        frac[k] = x_major ? g.centre - sec / g.px : g.centre + sec / g.px;
    }
    const double step_len = g.px / std::fabs(prim_d);
    for (int upper = 0; upper < 2; ++upper) {
        for (int64_t k = 0; k < g.n; ++k) {
            const double lower = std::floor(frac[k]);
            const double upper_w = frac[k] - lower;
            const double w = upper ? upper_w * step_len : (1 - upper_w) * step_len;
            const int64_t s = static_cast<int64_t>(lower) + upper;
            if (s >= 0 && s < g.n && w > 0) emit(x_major ? s * g.n + k : k * g.n + s, w);
        }
    }
}

inline int64_t block_start(int64_t b, int64_t n_blocks, int64_t n_rays) {
    return b * n_rays / n_blocks;
}

template <typename Index>
void fill(const double* frames, const uint8_t* x_major, int64_t n_rays, const Grid& g,
          int64_t n_blocks, const int64_t* crow, int64_t* cursors, Index* col, float* val,
          Index* row_t, float* val_t) {
    const int64_t n_pixels = g.n * g.n;
#pragma omp parallel
    {
        std::vector<double> frac(g.n);
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < n_blocks; ++b) {
            int64_t* cursor = cursors + b * n_pixels;
            for (int64_t r = block_start(b, n_blocks, n_rays);
                 r < block_start(b + 1, n_blocks, n_rays); ++r) {
                int64_t e = crow[r];
                ray_entries(frames + 4 * r, x_major[r] != 0, g, frac.data(),
                            [&](int64_t pixel, double w) {
                                const float w32 = static_cast<float>(w);
                                col[e] = static_cast<Index>(pixel);
                                val[e++] = w32;
                                const int64_t t = cursor[pixel]++;
                                row_t[t] = static_cast<Index>(r);
                                val_t[t] = w32;
                            });
            }
        }
    }
}

}  // namespace

extern "C" {

// ray_counts (n_rays): entries per ray; block_counts (n_blocks x n*n, zeroed): per block of
// rays, entries per pixel.
int joseph_csr_count(const double* frames, const uint8_t* x_major, int64_t n_rays, int64_t n,
                     double px, int64_t n_blocks, int64_t* ray_counts, int64_t* block_counts) {
    const Grid g{n, px, (static_cast<double>(n) - 1) / 2};
    const int64_t n_pixels = n * n;
#pragma omp parallel
    {
        std::vector<double> frac(n);
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < n_blocks; ++b) {
            int64_t* counts = block_counts + b * n_pixels;
            for (int64_t r = block_start(b, n_blocks, n_rays);
                 r < block_start(b + 1, n_blocks, n_rays); ++r) {
                int64_t count = 0;
                ray_entries(frames + 4 * r, x_major[r] != 0, g, frac.data(),
                            [&](int64_t pixel, double) {
                                ++count;
                                ++counts[pixel];
                            });
                ray_counts[r] = count;
            }
        }
    }
    return 0;
}

// crow (n_rays + 1): A_0's row offsets; cursors (n_blocks x n*n): where block b's first entry
// of pixel p goes in A_0^T (advanced while writing).
int joseph_csr_fill_i32(const double* frames, const uint8_t* x_major, int64_t n_rays,
                        int64_t n, double px, int64_t n_blocks, const int64_t* crow,
                        int64_t* cursors, int32_t* col, float* val, int32_t* row_t,
                        float* val_t) {
    const Grid g{n, px, (static_cast<double>(n) - 1) / 2};
    fill<int32_t>(frames, x_major, n_rays, g, n_blocks, crow, cursors, col, val, row_t, val_t);
    return 0;
}

int joseph_csr_fill_i64(const double* frames, const uint8_t* x_major, int64_t n_rays,
                        int64_t n, double px, int64_t n_blocks, const int64_t* crow,
                        int64_t* cursors, int64_t* col, float* val, int64_t* row_t,
                        float* val_t) {
    const Grid g{n, px, (static_cast<double>(n) - 1) / 2};
    fill<int64_t>(frames, x_major, n_rays, g, n_blocks, crow, cursors, col, val, row_t, val_t);
    return 0;
}
}
