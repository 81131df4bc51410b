// y = A x for a CSR matrix A and a dense row-major x of W columns (the batch columns of
// learnct's sparse backend), W a compile-time width. Four accumulator sets per row hide the
// FMA latency that bounds a one-accumulator loop (and MKL's CSR product) at 32 columns. Rows
// are shared among OpenMP threads: in a torch process the runtime torch loaded (libgomp.so.1),
// so torch.set_num_threads applies and no second thread pool spins.
#include <cstdint>

template <typename T, int W>
static void rows_range(const int64_t* crow, const int32_t* col, const T* val, const T* x, T* y,
                       int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        T acc[4][W];
        for (int j = 0; j < 4; ++j)
            for (int c = 0; c < W; ++c) acc[j][c] = 0;
        int64_t e = crow[r];
        const int64_t end = crow[r + 1];
        for (; e + 4 <= end; e += 4) {
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                const T v = val[e + j];
                const T* xr = x + static_cast<int64_t>(col[e + j]) * W;
#pragma GCC unroll 64
                for (int c = 0; c < W; ++c) acc[j][c] += v * xr[c];
            }
        }
        for (; e < end; ++e) {
            const T v = val[e];
            const T* xr = x + static_cast<int64_t>(col[e]) * W;
#pragma GCC unroll 64
            for (int c = 0; c < W; ++c) acc[0][c] += v * xr[c];
        }
        T* yr = y + r * W;
#pragma GCC unroll 64
        for (int c = 0; c < W; ++c) yr[c] = (acc[0][c] + acc[1][c]) + (acc[2][c] + acc[3][c]);
    }
}

template <typename T, int W>
static void rows(const int64_t* crow, const int32_t* col, const T* val, const T* x, T* y,
                 int64_t n_rows) {
    const int64_t chunk = 64;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
        const int64_t r1 = r0 + chunk < n_rows ? r0 + chunk : n_rows;
        rows_range<T, W>(crow, col, val, x, y, r0, r1);
    }
}

// Returns 0, or -1 for a width without an instance (the caller pads to one of these).
template <typename T>
static int dispatch(const int64_t* crow, const int32_t* col, const T* val, const T* x, T* y,
                    int64_t n_rows, int64_t width) {
    switch (width) {
        case 1: rows<T, 1>(crow, col, val, x, y, n_rows); return 0;
        case 2: rows<T, 2>(crow, col, val, x, y, n_rows); return 0;
        case 4: rows<T, 4>(crow, col, val, x, y, n_rows); return 0;
        case 8: rows<T, 8>(crow, col, val, x, y, n_rows); return 0;
        case 12: rows<T, 12>(crow, col, val, x, y, n_rows); return 0;
        case 16: rows<T, 16>(crow, col, val, x, y, n_rows); return 0;
        case 20: rows<T, 20>(crow, col, val, x, y, n_rows); return 0;
        case 24: rows<T, 24>(crow, col, val, x, y, n_rows); return 0;
        case 28: rows<T, 28>(crow, col, val, x, y, n_rows); return 0;
        case 32: rows<T, 32>(crow, col, val, x, y, n_rows); return 0;
        default: return -1;
    }
}

extern "C" {
int csr_columns_f32(const int64_t* crow, const int32_t* col, const float* val, const float* x,
                    float* y, int64_t n_rows, int64_t width) {
    return dispatch<float>(crow, col, val, x, y, n_rows, width);
}
int csr_columns_f64(const int64_t* crow, const int32_t* col, const double* val,
                    const double* x, double* y, int64_t n_rows, int64_t width) {
    return dispatch<double>(crow, col, val, x, y, n_rows, width);
}
}
