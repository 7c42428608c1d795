/*
 * Exact L1 (sum of absolute differences) distance blocks for advlab's k-NN.
 *
 * Two kernels, each with a runtime-dispatched AVX-512 / AVX2 body and a portable scalar body:
 *   l1_u8(Q, X, out):  Q (nq, d) and X (nx, d) uint8, out (nq, nx) int32.  Exact integer sums
 *                      through the SAD instruction (vpsadbw), which sums |a - b| over 8 bytes.
 *   l1_f32(Q, X, out): float32 inputs and output; accumulation in float32 lanes, so the caller
 *                      re-ranks candidates in float64 (see advlab.classic.knn).
 * Rows must be C-contiguous with the same padded width d: a multiple of 64 bytes for uint8 and
 * of 16 floats for float32 (the caller pads both sides with zeros, which adds nothing).
 * The GIL is released while a block is computed, so Python threads split the queries.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define ADVLAB_X86 1
#endif

/* Training rows per tile: 768 rows of 832 bytes stay in a 1-2 MiB L2 while every query passes. */
#define TILE_ROWS 768

typedef void (*u8_kernel)(const uint8_t *, Py_ssize_t, const uint8_t *, Py_ssize_t, Py_ssize_t,
                          int32_t *);
typedef void (*f32_kernel)(const float *, Py_ssize_t, const float *, Py_ssize_t, Py_ssize_t,
                           float *);

static void l1_u8_scalar(const uint8_t *q, Py_ssize_t nq, const uint8_t *x, Py_ssize_t nx,
                         Py_ssize_t d, int32_t *out)
{
    for (Py_ssize_t i = 0; i < nq; i++) {
        const uint8_t *qi = q + i * d;
        for (Py_ssize_t j = 0; j < nx; j++) {
            const uint8_t *xj = x + j * d;
            int32_t s = 0;
            for (Py_ssize_t c = 0; c < d; c++) {
                int v = (int)qi[c] - (int)xj[c];
                s += v < 0 ? -v : v;
            }
            out[i * nx + j] = s;
        }
    }
}

static void l1_f32_scalar(const float *q, Py_ssize_t nq, const float *x, Py_ssize_t nx,
                          Py_ssize_t d, float *out)
{
    for (Py_ssize_t i = 0; i < nq; i++) {
        const float *qi = q + i * d;
        for (Py_ssize_t j = 0; j < nx; j++) {
            const float *xj = x + j * d;
            float s = 0.0f;
            for (Py_ssize_t c = 0; c < d; c++)
                s += fabsf(qi[c] - xj[c]);
            out[i * nx + j] = s;
        }
    }
}

#ifdef ADVLAB_X86
/* ---- AVX-512: 4 queries share each training-row load; one vpsadbw per 64 bytes per query ---- */
__attribute__((target("avx512f,avx512bw")))
static void l1_u8_avx512(const uint8_t *q, Py_ssize_t nq, const uint8_t *x, Py_ssize_t nx,
                         Py_ssize_t d, int32_t *out)
{
    for (Py_ssize_t jb = 0; jb < nx; jb += TILE_ROWS) {
        Py_ssize_t je = jb + TILE_ROWS < nx ? jb + TILE_ROWS : nx;
        Py_ssize_t i = 0;
        for (; i + 4 <= nq; i += 4) {
            const uint8_t *q0 = q + i * d, *q1 = q0 + d, *q2 = q1 + d, *q3 = q2 + d;
            for (Py_ssize_t j = jb; j < je; j++) {
                const uint8_t *xj = x + j * d;
                __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
                for (Py_ssize_t c = 0; c < d; c += 64) {
                    __m512i xv = _mm512_loadu_si512((const void *)(xj + c));
                    a0 = _mm512_add_epi64(a0, _mm512_sad_epu8(xv, _mm512_loadu_si512((const void *)(q0 + c))));
                    a1 = _mm512_add_epi64(a1, _mm512_sad_epu8(xv, _mm512_loadu_si512((const void *)(q1 + c))));
                    a2 = _mm512_add_epi64(a2, _mm512_sad_epu8(xv, _mm512_loadu_si512((const void *)(q2 + c))));
                    a3 = _mm512_add_epi64(a3, _mm512_sad_epu8(xv, _mm512_loadu_si512((const void *)(q3 + c))));
                }
                out[i * nx + j] = (int32_t)_mm512_reduce_add_epi64(a0);
                out[(i + 1) * nx + j] = (int32_t)_mm512_reduce_add_epi64(a1);
                out[(i + 2) * nx + j] = (int32_t)_mm512_reduce_add_epi64(a2);
                out[(i + 3) * nx + j] = (int32_t)_mm512_reduce_add_epi64(a3);
            }
        }
        for (; i < nq; i++) {
            const uint8_t *qi = q + i * d;
            for (Py_ssize_t j = jb; j < je; j++) {
                const uint8_t *xj = x + j * d;
                __m512i a = _mm512_setzero_si512();
                for (Py_ssize_t c = 0; c < d; c += 64)
                    a = _mm512_add_epi64(a, _mm512_sad_epu8(_mm512_loadu_si512((const void *)(xj + c)),
                                                            _mm512_loadu_si512((const void *)(qi + c))));
                out[i * nx + j] = (int32_t)_mm512_reduce_add_epi64(a);
            }
        }
    }
}

__attribute__((target("avx512f")))
static void l1_f32_avx512(const float *q, Py_ssize_t nq, const float *x, Py_ssize_t nx,
                          Py_ssize_t d, float *out)
{
    for (Py_ssize_t jb = 0; jb < nx; jb += TILE_ROWS / 4) {
        Py_ssize_t je = jb + TILE_ROWS / 4 < nx ? jb + TILE_ROWS / 4 : nx;
        Py_ssize_t i = 0;
        for (; i + 4 <= nq; i += 4) {
            const float *q0 = q + i * d, *q1 = q0 + d, *q2 = q1 + d, *q3 = q2 + d;
            for (Py_ssize_t j = jb; j < je; j++) {
                const float *xj = x + j * d;
                __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (Py_ssize_t c = 0; c < d; c += 16) {
                    __m512 xv = _mm512_loadu_ps(xj + c);
                    a0 = _mm512_add_ps(a0, _mm512_abs_ps(_mm512_sub_ps(xv, _mm512_loadu_ps(q0 + c))));
                    a1 = _mm512_add_ps(a1, _mm512_abs_ps(_mm512_sub_ps(xv, _mm512_loadu_ps(q1 + c))));
                    a2 = _mm512_add_ps(a2, _mm512_abs_ps(_mm512_sub_ps(xv, _mm512_loadu_ps(q2 + c))));
                    a3 = _mm512_add_ps(a3, _mm512_abs_ps(_mm512_sub_ps(xv, _mm512_loadu_ps(q3 + c))));
                }
                out[i * nx + j] = _mm512_reduce_add_ps(a0);
                out[(i + 1) * nx + j] = _mm512_reduce_add_ps(a1);
                out[(i + 2) * nx + j] = _mm512_reduce_add_ps(a2);
                out[(i + 3) * nx + j] = _mm512_reduce_add_ps(a3);
            }
        }
        for (; i < nq; i++) {
            const float *qi = q + i * d;
            for (Py_ssize_t j = jb; j < je; j++) {
                const float *xj = x + j * d;
                __m512 a = _mm512_setzero_ps();
                for (Py_ssize_t c = 0; c < d; c += 16)
                    a = _mm512_add_ps(a, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(xj + c),
                                                                           _mm512_loadu_ps(qi + c))));
                out[i * nx + j] = _mm512_reduce_add_ps(a);
            }
        }
    }
}

/* ---- AVX2: the same shape with 32-byte registers ---- */
__attribute__((target("avx2")))
static inline int64_t hsum_epi64_256(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

__attribute__((target("avx2")))
static void l1_u8_avx2(const uint8_t *q, Py_ssize_t nq, const uint8_t *x, Py_ssize_t nx,
                       Py_ssize_t d, int32_t *out)
{
    for (Py_ssize_t jb = 0; jb < nx; jb += TILE_ROWS) {
        Py_ssize_t je = jb + TILE_ROWS < nx ? jb + TILE_ROWS : nx;
        Py_ssize_t i = 0;
        for (; i + 4 <= nq; i += 4) {
            const uint8_t *q0 = q + i * d, *q1 = q0 + d, *q2 = q1 + d, *q3 = q2 + d;
            for (Py_ssize_t j = jb; j < je; j++) {
                const uint8_t *xj = x + j * d;
                __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
                for (Py_ssize_t c = 0; c < d; c += 32) {
                    __m256i xv = _mm256_loadu_si256((const __m256i *)(xj + c));
                    a0 = _mm256_add_epi64(a0, _mm256_sad_epu8(xv, _mm256_loadu_si256((const __m256i *)(q0 + c))));
                    a1 = _mm256_add_epi64(a1, _mm256_sad_epu8(xv, _mm256_loadu_si256((const __m256i *)(q1 + c))));
                    a2 = _mm256_add_epi64(a2, _mm256_sad_epu8(xv, _mm256_loadu_si256((const __m256i *)(q2 + c))));
                    a3 = _mm256_add_epi64(a3, _mm256_sad_epu8(xv, _mm256_loadu_si256((const __m256i *)(q3 + c))));
                }
                out[i * nx + j] = (int32_t)hsum_epi64_256(a0);
                out[(i + 1) * nx + j] = (int32_t)hsum_epi64_256(a1);
                out[(i + 2) * nx + j] = (int32_t)hsum_epi64_256(a2);
                out[(i + 3) * nx + j] = (int32_t)hsum_epi64_256(a3);
            }
        }
        for (; i < nq; i++) {
            const uint8_t *qi = q + i * d;
            for (Py_ssize_t j = jb; j < je; j++) {
                const uint8_t *xj = x + j * d;
                __m256i a = _mm256_setzero_si256();
                for (Py_ssize_t c = 0; c < d; c += 32)
                    a = _mm256_add_epi64(a, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)(xj + c)),
                                                            _mm256_loadu_si256((const __m256i *)(qi + c))));
                out[i * nx + j] = (int32_t)hsum_epi64_256(a);
            }
        }
    }
}

__attribute__((target("avx2")))
static inline float hsum_ps_256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2")))
static void l1_f32_avx2(const float *q, Py_ssize_t nq, const float *x, Py_ssize_t nx,
                        Py_ssize_t d, float *out)
{
    const __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (Py_ssize_t jb = 0; jb < nx; jb += TILE_ROWS / 4) {
        Py_ssize_t je = jb + TILE_ROWS / 4 < nx ? jb + TILE_ROWS / 4 : nx;
        for (Py_ssize_t i = 0; i < nq; i++) {
            const float *qi = q + i * d;
            for (Py_ssize_t j = jb; j < je; j++) {
                const float *xj = x + j * d;
                __m256 a = _mm256_setzero_ps(), b = a;
                for (Py_ssize_t c = 0; c < d; c += 16) {
                    a = _mm256_add_ps(a, _mm256_and_ps(mask, _mm256_sub_ps(_mm256_loadu_ps(xj + c),
                                                                           _mm256_loadu_ps(qi + c))));
                    b = _mm256_add_ps(b, _mm256_and_ps(mask, _mm256_sub_ps(_mm256_loadu_ps(xj + c + 8),
                                                                           _mm256_loadu_ps(qi + c + 8))));
                }
                out[i * nx + j] = hsum_ps_256(_mm256_add_ps(a, b));
            }
        }
    }
}
#endif /* ADVLAB_X86 */

static u8_kernel pick_u8(const char **name)
{
#ifdef ADVLAB_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f")) {
        *name = "avx512";
        return l1_u8_avx512;
    }
    if (__builtin_cpu_supports("avx2")) {
        *name = "avx2";
        return l1_u8_avx2;
    }
#endif
    *name = "scalar";
    return l1_u8_scalar;
}

static f32_kernel pick_f32(void)
{
#ifdef ADVLAB_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return l1_f32_avx512;
    if (__builtin_cpu_supports("avx2"))
        return l1_f32_avx2;
#endif
    return l1_f32_scalar;
}

static const char *isa_name = "scalar";
static u8_kernel kernel_u8 = l1_u8_scalar;
static f32_kernel kernel_f32 = l1_f32_scalar;

/* Parse (Q, X, out) buffers, check shapes, run `kind` with the GIL released. */
static PyObject *run_block(PyObject *args, int is_float, int force_scalar)
{
    Py_buffer qb, xb, ob;
    Py_ssize_t nq, nx, d;
    if (!PyArg_ParseTuple(args, "y*y*w*nnn", &qb, &xb, &ob, &nq, &nx, &d))
        return NULL;
    Py_ssize_t item = is_float ? (Py_ssize_t)sizeof(float) : 1;
    Py_ssize_t align = is_float ? 16 : 64;
    const char *err = NULL;
    if (nq < 0 || nx < 0 || d <= 0 || d % align != 0)
        err = "d must be a positive multiple of the kernel width (64 bytes or 16 floats)";
    else if (qb.len != nq * d * item)
        err = "query buffer does not hold nq * d items";
    else if (xb.len != nx * d * item)
        err = "training buffer does not hold nx * d items";
    else if (ob.len != nq * nx * 4)
        err = "output buffer does not hold nq * nx 4-byte items";
    if (err != NULL) {
        PyBuffer_Release(&qb);
        PyBuffer_Release(&xb);
        PyBuffer_Release(&ob);
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (is_float)
        (force_scalar ? l1_f32_scalar : kernel_f32)((const float *)qb.buf, nq, (const float *)xb.buf,
                                                    nx, d, (float *)ob.buf);
    else
        (force_scalar ? l1_u8_scalar : kernel_u8)((const uint8_t *)qb.buf, nq, (const uint8_t *)xb.buf,
                                                  nx, d, (int32_t *)ob.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&qb);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&ob);
    Py_RETURN_NONE;
}

static PyObject *py_l1_u8(PyObject *self, PyObject *args) { return run_block(args, 0, 0); }
static PyObject *py_l1_f32(PyObject *self, PyObject *args) { return run_block(args, 1, 0); }
static PyObject *py_l1_u8_scalar(PyObject *self, PyObject *args) { return run_block(args, 0, 1); }
static PyObject *py_l1_f32_scalar(PyObject *self, PyObject *args) { return run_block(args, 1, 1); }

static PyMethodDef methods[] = {
    {"l1_u8", py_l1_u8, METH_VARARGS, "l1_u8(Q, X, out, nq, nx, d): int32 L1 distances of uint8 rows."},
    {"l1_f32", py_l1_f32, METH_VARARGS, "l1_f32(Q, X, out, nq, nx, d): float32 L1 distances."},
    {"l1_u8_scalar", py_l1_u8_scalar, METH_VARARGS, "Portable body of l1_u8 (for tests)."},
    {"l1_f32_scalar", py_l1_f32_scalar, METH_VARARGS, "Portable body of l1_f32 (for tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_l1", "Exact L1 distance kernels.", -1, methods};

PyMODINIT_FUNC PyInit__l1(void)
{
    kernel_u8 = pick_u8(&isa_name);
    kernel_f32 = pick_f32();
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "ISA", isa_name) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
