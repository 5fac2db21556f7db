//! `out = x Wᵀ + bias` for a weight matrix stored by rows (fully connected layers, and
//! convolutions whose kernel covers the whole input): parallel single-threaded `gemm`s over runs
//! of the weights' rows, and an AVX-512 matrix-vector product at batch 1.

use super::OutPtr;
use rayon::prelude::*;

/// A `rows x cols` matrix of floats: element `(r, c)` at `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

/// `out[N, R] = x[N, C] x W^T + bias` for a `R x C` matrix `W`, ReLU when `relu`. The tasks
/// are runs of W's rows (at batch 1 the weights are then read once, in parallel; there, rows
/// stored contiguously go through [`gemv_avx512`] where available) and, when those are fewer
/// than the threads, runs of images (MNIST's 10-output layer at batch 32 was one task).
pub(super) fn matmul_t(
    data: &[f32],
    out: &mut [f32],
    w: Matrix,
    bias: Option<&[f32]>,
    relu: bool,
    n: usize,
) {
    let (cout, kk) = (w.rows, w.cols);
    assert!(data.len() >= n * kk && out.len() >= n * cout);
    assert!(
        cout == 0 || kk == 0 || (cout - 1) * w.row_stride + (kk - 1) * w.col_stride < w.data.len(),
        "weights outside their buffer"
    );
    if cout == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let outp = OutPtr(out.as_mut_ptr());
    let chunk = cout.div_ceil(threads * 2).max(16).min(cout);
    let chunks = cout.div_ceil(chunk);
    let runs = if chunks < threads {
        threads.div_ceil(chunks).min(n)
    } else {
        1
    };
    (0..chunks * runs).into_par_iter().for_each(|task| {
        let (ci, ri) = (task / runs, task % runs);
        let (c0, c1) = (ci * chunk, ((ci + 1) * chunk).min(cout));
        let (i0, i1) = (ri * n / runs, (ri + 1) * n / runs);
        let m = i1 - i0;
        // SAFETY: columns c0..c1 of rows i0..i1 of `out` ([n, cout]) belong to this task only.
        let dst = unsafe { outp.get().add(i0 * cout + c0) };
        let x = &data[i0 * kk..i1 * kk];
        if let Some(bias) = bias {
            for i in 0..m {
                // SAFETY: as above.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.add(i * cout), c1 - c0) };
                row.copy_from_slice(&bias[c0..c1]);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if m == 1 && w.col_stride == 1 && w.row_stride == kk && is_x86_feature_detected!("avx512f")
        {
            // SAFETY: AVX-512F is available; dst holds c1 - c0 floats (row i0, columns c0..c1).
            let dst = unsafe { std::slice::from_raw_parts_mut(dst, c1 - c0) };
            // SAFETY: as above; rows c0..c1 of W, each kk floats, and x's kk floats.
            unsafe { gemv_avx512(&w.data[c0 * kk..c1 * kk], x, dst) };
            if relu {
                self::relu(dst);
            }
            return;
        }
        // SAFETY: dst is [c1-c0, m] with column stride cout (rows i0..i1 of out, [n, cout]
        // row-major), lhs is rows c0..c1 of W (checked inside its buffer above), rhs is x^T:
        // [kk, m] with column stride kk.
        unsafe {
            gemm::gemm(
                c1 - c0,
                m,
                kk,
                dst,
                cout as isize,
                1,
                bias.is_some(),
                w.data[c0 * w.row_stride..].as_ptr(),
                w.col_stride as isize,
                w.row_stride as isize,
                x.as_ptr(),
                kk as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        if relu {
            for i in 0..m {
                // SAFETY: as above.
                self::relu(unsafe { std::slice::from_raw_parts_mut(dst.add(i * cout), c1 - c0) });
            }
        }
    });
}

/// ReLU in place; NaN stays NaN. A select, not a conditional store, so that it vectorizes.
fn relu(v: &mut [f32]) {
    for v in v.iter_mut() {
        *v = if *v < 0.0 { 0.0 } else { *v };
    }
}

/// `out[o] += dot(w[o * k..(o + 1) * k], x)` for every row `o` of `w` (`out.len()` rows of
/// `k = x.len()` floats): a batch-1 fully connected layer, whose time is reading the weights
/// once. Four rows at a time, two accumulators each, so that four streams are in flight.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gemv_avx512(w: &[f32], x: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let k = x.len();
    assert_eq!(w.len(), out.len() * k);
    let full = k / 32 * 32;
    let tail = k - full;
    // Lanes of the last one or two partial vectors.
    let (m0, m1) = super::direct::tail_masks(tail);
    let xp = x.as_ptr();
    let mut o = 0;
    // SAFETY (all loads): row r's floats are w[r * k..(r + 1) * k]; i + 32 <= full <= k, and the
    // masked tail loads read lanes below k only.
    unsafe {
        for dst in out.chunks_mut(4) {
            let r = dst.len();
            let base: [*const f32; 4] =
                std::array::from_fn(|j| w.as_ptr().add((o + j.min(r - 1)) * k));
            let mut a = [[_mm512_setzero_ps(); 2]; 4];
            let mut i = 0;
            while i < full {
                let x0 = _mm512_loadu_ps(xp.add(i));
                let x1 = _mm512_loadu_ps(xp.add(i + 16));
                for j in 0..4 {
                    a[j][0] = _mm512_fmadd_ps(_mm512_loadu_ps(base[j].add(i)), x0, a[j][0]);
                    a[j][1] = _mm512_fmadd_ps(_mm512_loadu_ps(base[j].add(i + 16)), x1, a[j][1]);
                }
                i += 32;
            }
            if tail > 0 {
                let x0 = _mm512_maskz_loadu_ps(m0, xp.add(i));
                let x1 = _mm512_maskz_loadu_ps(m1, xp.add(i + 16));
                for j in 0..4 {
                    let w0 = _mm512_maskz_loadu_ps(m0, base[j].add(i));
                    let w1 = _mm512_maskz_loadu_ps(m1, base[j].add(i + 16));
                    a[j][0] = _mm512_fmadd_ps(w0, x0, a[j][0]);
                    a[j][1] = _mm512_fmadd_ps(w1, x1, a[j][1]);
                }
            }
            for (j, d) in dst.iter_mut().enumerate() {
                *d += _mm512_reduce_add_ps(_mm512_add_ps(a[j][0], a[j][1]));
            }
            o += r;
        }
    }
}
