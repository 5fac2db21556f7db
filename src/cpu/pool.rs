//! Max pooling: [`max_pool`] for a Burn pooling layer, [`max_pool2d`] for the kernel itself, and
//! the per-plane routine that the direct convolution's fused pooling shares
//! ([`pool_into`]). Burn 0.22's flex backend computes every max pooling as a 3-D pooling that
//! also returns the argmax indices; this kernel computes the maxima only, one output plane per
//! rayon task.

use super::{Values, is_plain_flex, zeroed};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use rayon::prelude::*;

/// A max pooling applied to a convolution's output (after its bias and ReLU) before it is
/// stored: kernel `k`, stride `s`, padding `[top, bottom, left, right]` (smaller than the
/// kernel), floor rounding, as [`max_pool2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub k: [usize; 2],
    pub s: [usize; 2],
    pub pad: [usize; 4],
}

impl Pool {
    /// A max pooling layer in the form matcnn's kernels take: explicit padding smaller than the
    /// window, no dilation, floor rounding and non-zero strides; `None` for the others (Burn's
    /// op computes those).
    pub fn of(p: &MaxPool2d) -> Option<Pool> {
        let PaddingConfig2d::Explicit(t, l, b, r) = p.padding else {
            return None;
        };
        let [kh, kw] = p.kernel_size;
        (p.dilation == [1, 1]
            && !p.ceil_mode
            && !p.stride.contains(&0)
            && t < kh
            && b < kh
            && l < kw
            && r < kw)
            .then_some(Pool {
                k: p.kernel_size,
                s: p.stride,
                pad: [t, b, l, r],
            })
    }

    /// The pooled size of an `[h, w]` convolution output; `None` when the window does not fit.
    pub fn output(&self, [h, w]: [usize; 2]) -> Option<[usize; 2]> {
        let [t, b, l, r] = self.pad;
        let (hp, wp) = (h + t + b, w + l + r);
        (hp >= self.k[0] && wp >= self.k[1] && self.s[0] > 0 && self.s[1] > 0).then(|| {
            [
                (hp - self.k[0]) / self.s[0] + 1,
                (wp - self.k[1]) / self.s[1] + 1,
            ]
        })
    }
}

/// A max pooling layer on `[N, C, H, W]`: [`max_pool2d`] on plain Flex tensors where [`Pool::of`]
/// takes the layer and its window fits the input, else Burn's op (which also reports shapes
/// that do not fit).
pub fn max_pool(x: Tensor<4>, p: &MaxPool2d) -> Tensor<4> {
    match Pool::of(p) {
        Some(q) if is_plain_flex(&x) && q.output([x.dims()[2], x.dims()[3]]).is_some() => {
            max_pool2d(x, q.k, q.s, q.pad)
        }
        _ => p.forward(x),
    }
}

/// Max pooling of `[N, C, H, W]` with kernel `k`, stride `s` and padding `[top, bottom, left,
/// right]` (padded positions never win), floor rounding as MATLAB. `None` when the shapes do not
/// give an output (the caller then uses Burn's op, which reports the error).
pub fn max_pool2d(x: Tensor<4>, k: [usize; 2], s: [usize; 2], pad: [usize; 4]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let [t, b, l, r] = pad;
    let (hp, wp) = (h + t + b, w + l + r);
    let oh = (hp - k[0]) / s[0] + 1;
    let ow = (wp - k[1]) / s[1] + 1;
    let data = Values::of(x);
    let total = n * c * oh * ow;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    let sx = s[1];
    // Length of each stride phase of a padded row: phase q holds columns q, q + sx, ...
    let plen = wp.div_ceil(sx);
    // Separable, and unit-stride throughout: for each output row, the maximum over the
    // window's rows (`vrow`, padded with -inf on either side), split into its `sx` stride
    // phases, so that window column kx of output column ox is phase kx % sx at ox + kx / sx.
    let g = PoolGeometry::new([h, w], [oh, ow], k, s, [t, l, r]);
    out.spare_capacity_mut()[..total]
        .par_chunks_mut(oh * ow)
        .zip(data.par_chunks(h * w))
        .for_each_init(
            || {
                (
                    vec![f32::NEG_INFINITY; wp],
                    vec![f32::NEG_INFINITY; sx * plen],
                )
            },
            |(vrow, phases), (o, plane)| pool_into(&g, o, plane, vrow, phases),
        );
    // SAFETY: every chunk of the first `total` elements was initialised by `zeroed`.
    unsafe { out.set_len(total) };
    Tensor::from_data(TensorData::new(out, [n, c, oh, ow]), &device)
}

/// One plane of max pooling: every element of `o` (`g.oh * g.ow`) from `plane` (`g.h * g.w`),
/// with `vrow` (`g.wp` floats) and `phases` (`s[1] * g.plen`) as scratch, both -inf outside
/// what this writes.
pub(super) fn pool_into(
    g: &PoolGeometry,
    o: &mut [std::mem::MaybeUninit<f32>],
    plane: &[f32],
    vrow: &mut [f32],
    phases: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    let avx512 = is_x86_feature_detected!("avx512f");
    #[cfg(target_arch = "x86_64")]
    if avx512 && g.s[1] == 2 && (g.k[1] == 2 || g.k[1] == 3) {
        // SAFETY: the CPU has AVX-512F (checked above). It writes every element (no zeroing
        // first: a pass over the output that cost 10 % of the pool).
        unsafe { pool_plane_s2_avx512(g, o, plane) };
        return;
    }
    // Zeroed here, in this core's cache, rather than by one memset of the whole output up
    // front.
    let o = zeroed(o);
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe { pool_plane_avx512(g, o, plane, vrow, phases) };
        return;
    }
    pool_plane(g, o, plane, vrow, phases, max_into);
}

/// What [`pool_plane`] needs to know of a max pooling.
pub(super) struct PoolGeometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: [usize; 2],
    s: [usize; 2],
    t: usize,
    l: usize,
    wp: usize,
    plen: usize,
}

impl PoolGeometry {
    /// Pooling `[h, w]` planes into `[oh, ow]` ones with kernel `k`, stride `s` and padding
    /// `[top, left, right]` (the bottom is implied by `oh`).
    pub(super) fn new(
        [h, w]: [usize; 2],
        [oh, ow]: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        [t, l, r]: [usize; 3],
    ) -> PoolGeometry {
        let wp = w + l + r;
        PoolGeometry {
            h,
            w,
            oh,
            ow,
            k,
            s,
            t,
            l,
            wp,
            plen: wp.div_ceil(s[1]),
        }
    }
}

/// [`pool_plane`] compiled for AVX-512 (16 lanes instead of the baseline's 4).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pool_plane_avx512(
    g: &PoolGeometry,
    o: &mut [f32],
    plane: &[f32],
    vrow: &mut [f32],
    phases: &mut [f32],
) {
    pool_plane(g, o, plane, vrow, phases, |d, s| {
        // SAFETY: this function runs only where AVX-512F is available.
        unsafe { max_into_avx512(d, s) }
    })
}

/// One plane of [`max_pool2d`] for windows 2 or 3 wide with horizontal stride 2 (VGG's 2x2,
/// ResNet's and SqueezeNet's 3x3 poolings), 16 output columns at a time: each input row's 32
/// (or 34) columns under them are loaded once, under a mask that turns padding and the columns
/// past the row into -inf, and split into even and odd columns by two permutes; then the
/// maximum over the window's rows, stored under the mask of valid output columns. About 3x
/// faster than the separable `pool_plane` on these, whose passes are short rows of scalars.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pool_plane_s2_avx512(
    g: &PoolGeometry,
    o: &mut [std::mem::MaybeUninit<f32>],
    plane: &[f32],
) {
    use std::arch::x86_64::*;
    let &PoolGeometry {
        h,
        w,
        oh,
        ow,
        k,
        s,
        t,
        l,
        ..
    } = g;
    let three = k[1] == 3;
    // max(a, b) with NaN from either side winning, as Burn's op.
    let maxn = |a: __m512, b: __m512| {
        let take =
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b, a) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b);
        _mm512_mask_blend_ps(take, a, b)
    };
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    // Lanes i of a load at column `from` that lie in 0..w.
    let cols = |from: isize| -> __mmask16 { super::direct::span(-from, w as isize - from) };
    let rows_ahead = (1024 / (s[0] * w).max(1)).max(2);
    for oy in 0..oh {
        let y0 = (oy * s[0]).saturating_sub(t);
        let y1 = (oy * s[0] + k[0]).saturating_sub(t).min(h);
        // The rows this loop reaches about 4 KB on (past the plane's end: the next plane's
        // first rows, which this thread usually takes next). Planes are read faster than the
        // hardware prefetchers ramp up on them: the loads stalled for most of the time.
        let ahead = plane.as_ptr().wrapping_add((y0 + rows_ahead * s[0]) * w);
        for line in (0..s[0] * w).step_by(16) {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
        }
        for ox0 in (0..ow).step_by(16) {
            let from = (2 * ox0) as isize - l as isize;
            let (m0, m1) = (cols(from), cols(from + 16));
            let (m2, m3) = (cols(from + 2), cols(from + 18));
            let mut acc = ninf;
            for y in y0..y1 {
                let row = plane.as_ptr().wrapping_add(y * w);
                // SAFETY: masked-off lanes are never read (nor can they fault), and every
                // lane left on is a column of row y, inside `plane`.
                let (a, b) = unsafe {
                    (
                        _mm512_mask_loadu_ps(ninf, m0, row.wrapping_offset(from)),
                        _mm512_mask_loadu_ps(ninf, m1, row.wrapping_offset(from + 16)),
                    )
                };
                let mut v = maxn(
                    _mm512_permutex2var_ps(a, even, b),
                    _mm512_permutex2var_ps(a, odd, b),
                );
                if three {
                    // SAFETY: as above.
                    let (c, d) = unsafe {
                        (
                            _mm512_mask_loadu_ps(ninf, m2, row.wrapping_offset(from + 2)),
                            _mm512_mask_loadu_ps(ninf, m3, row.wrapping_offset(from + 18)),
                        )
                    };
                    v = maxn(v, _mm512_permutex2var_ps(c, even, d));
                }
                acc = maxn(acc, v);
            }
            let n = (ow - ox0).min(16);
            let keep = ((1u32 << n) - 1) as u16;
            // SAFETY: the n <= 16 stored lanes are outputs ox0..ox0 + n of row oy, inside `o`
            // (every output of every row is stored once).
            unsafe {
                _mm512_mask_storeu_ps(o[oy * ow + ox0..].as_mut_ptr().cast::<f32>(), keep, acc)
            };
        }
    }
}

/// `d[i] = max(d[i], s[i])` over the shorter length, NaN in `s` propagating, 16 lanes at a
/// time (the compiler's version of the generic loop used 8-lane masked stores).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_into_avx512(d: &mut [f32], s: &[f32]) {
    use std::arch::x86_64::*;
    let n = d.len().min(s.len());
    let (dp, sp) = (d.as_mut_ptr(), s.as_ptr());
    let mut i = 0;
    // SAFETY: every access is below n, inside both slices; the tail uses masked accesses.
    unsafe {
        let step = |i: usize, k: __mmask16| {
            let a = _mm512_maskz_loadu_ps(k, dp.add(i));
            let b = _mm512_maskz_loadu_ps(k, sp.add(i));
            let take =
                _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b, a) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b);
            _mm512_mask_storeu_ps(dp.add(i), k, _mm512_mask_blend_ps(take, a, b));
        };
        while i + 16 <= n {
            step(i, u16::MAX);
            i += 16;
        }
        if i < n {
            step(i, ((1u32 << (n - i)) - 1) as u16);
        }
    }
}

/// `d[i] = max(d[i], s[i])` over the shorter length, NaN in `s` propagating (as Burn's op).
fn max_into(d: &mut [f32], s: &[f32]) {
    for (d, &v) in d.iter_mut().zip(s) {
        // `|`, not `||`: no branch, so the loop vectorizes.
        *d = if (v > *d) | v.is_nan() { v } else { *d };
    }
}

/// One plane of [`max_pool2d`]. Separable, and unit-stride throughout: for each output row,
/// the maximum over the window's rows (`vrow`, padded with -inf on either side), split into its
/// `sx` stride phases (`phases`, each `plen` long), so that window column kx of output column
/// ox is phase kx % sx at ox + kx / sx.
#[inline(always)]
fn pool_plane(
    g: &PoolGeometry,
    o: &mut [f32],
    plane: &[f32],
    vrow: &mut [f32],
    phases: &mut [f32],
    max_into: impl Fn(&mut [f32], &[f32]),
) {
    let &PoolGeometry {
        h,
        w,
        oh,
        ow,
        k,
        s,
        t,
        l,
        wp,
        plen,
    } = g;
    let (sx, kx) = (s[1], k[1]);
    for oy in 0..oh {
        let y0 = (oy * s[0]).saturating_sub(t);
        let y1 = (oy * s[0] + k[0]).saturating_sub(t).min(h);
        let inner = &mut vrow[l..l + w];
        if y0 >= y1 {
            // A window entirely in the padding (only with oversized padding).
            inner.fill(f32::NEG_INFINITY);
        } else {
            inner.copy_from_slice(&plane[y0 * w..(y0 + 1) * w]);
            for y in y0 + 1..y1 {
                max_into(inner, &plane[y * w..(y + 1) * w]);
            }
        }
        if sx == 1 {
            phases[..wp].copy_from_slice(vrow);
        } else if sx == 2 {
            let (even, odd) = phases.split_at_mut(plen);
            for ((e, o), pair) in even
                .iter_mut()
                .zip(odd.iter_mut())
                .zip(vrow.chunks_exact(2))
            {
                *e = pair[0];
                *o = pair[1];
            }
            if wp % 2 == 1 {
                even[wp / 2] = vrow[wp - 1];
            }
        } else {
            for (i, chunk) in vrow.chunks(sx).enumerate() {
                for (q, &v) in chunk.iter().enumerate() {
                    phases[q * plen + i] = v;
                }
            }
        }
        let orow = &mut o[oy * ow..(oy + 1) * ow];
        orow.fill(f32::NEG_INFINITY);
        for j in 0..kx {
            max_into(orow, &phases[(j % sx) * plen + j / sx..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_util::Rng;
    use burn::nn::pool::MaxPool2dConfig;
    /// The kernel equals Burn's max pooling on the same input, over kernels, strides and
    /// asymmetric paddings (including negative inputs, where padding must not win).
    #[test]
    fn max_pool_equals_burns() {
        let dev = Device::flex();
        // Narrow and wide planes (several 16-column vectors, with a tail), one with a NaN.
        for (n, c, h, w, nan) in [
            (2, 3, 9, 8, false),
            (1, 2, 13, 45, true),
            (1, 1, 7, 57, true),
        ] {
            let mut rng = Rng::new(3);
            let mut x: Vec<f32> = (0..n * c * h * w)
                .map(|_| (rng.uniform() * 2.0 - 1.5) as f32)
                .collect();
            if nan {
                // Rows increasing down the plane: a window reading past a row's end into the
                // next row would pick that row's larger values.
                for (i, v) in x.iter_mut().enumerate() {
                    *v += ((i / w) % h) as f32 * 4.0;
                }
                x[3 * w + 37] = f32::NAN;
            }
            let x = Tensor::<4>::from_data(TensorData::new(x, [n, c, h, w]), &dev);
            for (k, s, pad) in [
                ([2, 2], [2, 2], [0, 0, 0, 0]),
                ([2, 2], [2, 2], [0, 1, 0, 1]),
                ([3, 3], [2, 2], [0, 0, 0, 0]),
                ([3, 3], [2, 2], [1, 1, 1, 1]),
                ([3, 3], [2, 2], [0, 1, 0, 1]),
                ([1, 3], [1, 2], [2, 0, 2, 1]),
                ([3, 3], [1, 1], [1, 1, 1, 1]),
                ([3, 2], [2, 1], [0, 1, 1, 0]),
                ([2, 3], [1, 2], [1, 0, 0, 2]),
                ([3, 3], [3, 3], [1, 1, 1, 1]),
                ([2, 2], [1, 1], [0, 0, 0, 0]),
                ([3, 1], [3, 2], [2, 0, 0, 1]),
            ] {
                let [t, b, l, r] = pad;
                let want = MaxPool2dConfig::new(k)
                    .with_strides(s)
                    .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                    .init()
                    .forward(x.clone());
                let got = max_pool2d(x.clone(), k, s, pad);
                assert_eq!(got.dims(), want.dims(), "{k:?} {s:?} {pad:?}");
                let bits = |t: Tensor<4>| {
                    t.into_data()
                        .try_to_vec::<f32>()
                        .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                        .ok()
                };
                assert_eq!(bits(got), bits(want), "{w} {k:?} {s:?} {pad:?}");
            }
        }
    }
}
