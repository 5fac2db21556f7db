//! Winograd F(2x2, 3x3) convolution on CPUs with AVX-512, for 3x3 kernels with stride 1, no
//! dilation and one group: each 2x2 block of outputs (a tile) takes 16 multiplications per
//! input and output channel pair instead of 36 (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2015):
//!
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, with `d` the tile's 4x4 padded input patch and `g` the 3x3
//! kernel. The 16 element-wise products summed over the input channels are 16 matrix products
//! `M[k] = U[k] V[k]` (`U[k]`: `[cout, cin]`, the transformed weights; `V[k]`: `[cin, tiles]`,
//! the transformed inputs), which run on the direct convolution's micro-kernel as 1x1
//! convolutions over tiles (aligned loads, everything in L1).
//!
//! Tiles are numbered over the batch (`(image * th + ty) * tw + tx`) and taken 64 at a time.
//! Per block of tiles and run of output channels: the input transform of a chunk of input
//! channels (read straight from the input, 16 consecutive tiles per vector, masked loads making
//! the padding), the 16 products, and once every chunk is in, the output transform with bias,
//! residual and ReLU, stored row by row into `[N, C, oh, ow]` (or a concatenation).
//!
//! F(2x2, 3x3) rather than F(4x4, 3x3) (4x fewer multiplications) for its accuracy: its
//! transforms have coefficients 0, ±1 and ±1/2 only, so the rounding error stays at the level of
//! a direct sum's (the tests compare against Burn's convolution at 1e-5 of the largest output).

use super::direct::{self, NC, Out, low_mask, span};
use super::{Geometry, OutPtr as Ptr};
use std::arch::x86_64::*;

/// Tiles per block: four 16-float vectors, the micro-kernel's widest call.
const TB: usize = 64;
/// Input channels per transform chunk (their transformed inputs, 16 x 128 x 64 floats, stay in
/// L2 while the products read them).
const CHUNK: usize = 128;
/// Floats from one transform element's inputs to the next in the scratch: a chunk, plus one
/// cache line so that the 16 elements of a tile (stored together) fall in different L1 sets
/// (32 KB apart, they all shared one, and the transform's stores stalled on each other).
const KSTRIDE: usize = CHUNK * TB + 16;
/// How many input channels ahead the input transform prefetches.
const PF_IN: usize = 4;
/// How many output channels ahead the output transform fetches its outputs (and residual).
const PF_OUT: usize = 6;
/// Output channel blocks per run at most (the run's 16 products, 16 x 132 x 64 floats, stay in
/// L2 between chunks).
const CRUN: usize = 22;

/// A convolution's weights transformed and packed for the products: per transform element `k`
/// (of 16), blocks of `NC` output channels, each `[cin][NC]` (the last block zero-padded).
#[derive(Debug)]
pub struct Transformed {
    data: Vec<f32>,
    blocks: usize,
    cin: usize,
}

impl Transformed {
    /// `U = G g Gᵀ` for every channel pair of `weight` (`[cout, cin, 3, 3]` row-major),
    /// computed in f64.
    pub fn new(weight: &[f32], cout: usize, cin: usize) -> Transformed {
        const G: [[f64; 3]; 4] = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let blocks = cout.div_ceil(NC);
        let ksize = blocks * cin * NC;
        let mut data = vec![0f32; 16 * ksize];
        for co in 0..cout {
            for ci in 0..cin {
                let g = &weight[(co * cin + ci) * 9..][..9];
                // G g: 4 x 3.
                let mut gg = [[0f64; 3]; 4];
                for (i, row) in gg.iter_mut().enumerate() {
                    for (l, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|m| G[i][m] * g[m * 3 + l] as f64).sum();
                    }
                }
                for k in 0..16 {
                    let (i, j) = (k / 4, k % 4);
                    let u: f64 = (0..3).map(|l| gg[i][l] * G[j][l]).sum();
                    data[k * ksize + ((co / NC) * cin + ci) * NC + co % NC] = u as f32;
                }
            }
        }
        Transformed { data, blocks, cin }
    }
}

/// Whether this kernel computes `geo`'s convolution: 3x3, stride 1, no dilation, one group, and
/// where it beats the direct kernel (measured on ResNet-18's and SqueezeNet's layers, figures in
/// docs/performance.md): at least 48 tiles (a 7 x 7 image is 16, and at batch 1 the transformed weights,
/// 16/9 the size, are read for too few of them), and under 512 tiles (batch 1 on 28 x 28 and
/// smaller planes) only with 128 input channels or more (with fewer, the transforms and the
/// short products cost more than the multiplications saved).
pub fn applies(geo: &Geometry) -> bool {
    let [oh, ow] = geo.output();
    let tiles = geo.n * oh.div_ceil(2) * ow.div_ceil(2);
    let computes =
        geo.groups == 1 && geo.k == [3, 3] && geo.stride == [1, 1] && geo.dilation == [1, 1];
    #[cfg(test)]
    if FORCE.get() {
        return computes;
    }
    computes && tiles >= 48 && geo.cin >= if tiles >= 512 { 8 } else { 128 }
}

#[cfg(test)]
thread_local! {
    /// Tests: every convolution this kernel computes takes it (on this thread).
    pub static FORCE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// One row of tiles inside a block: image `img`, tile row `ty`, tiles `tx..tx + len`, at
/// position `at` of the block.
#[derive(Clone, Copy)]
struct Seg {
    img: usize,
    ty: usize,
    tx: usize,
    len: usize,
    at: usize,
}

/// As [`direct::conv2d_into`], for a convolution that [`applies`].
///
/// # Safety
/// As [`direct::conv2d_into`]; AVX-512F must be available.
pub unsafe fn conv2d_into(
    x: &[f32],
    geo: &Geometry,
    u: &Transformed,
    bias: Option<&[f32]>,
    relu: bool,
    residual: Option<&[f32]>,
    out: Out,
) {
    use rayon::prelude::*;
    let Geometry {
        n,
        cin,
        h,
        w,
        cout,
        pad: [t, _, l, _],
        ..
    } = *geo;
    assert!(u.cin == cin && u.blocks == cout.div_ceil(NC) && x.len() >= n * cin * h * w);
    let [oh, ow] = geo.output();
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    assert!(residual.is_none_or(|r| {
        out.channels == cout && out.offset == 0 && r.len() >= n * cout * oh * ow
    }));
    let res = residual.map(|r| Ptr(r.as_ptr().cast_mut()));
    let threads = rayon::current_num_threads().max(1);
    let tiles = n * th * tw;
    let nb = tiles.div_ceil(TB);
    let natural = u.blocks.div_ceil(CRUN);
    let mut nc = natural;
    while nb * nc < 4 * threads && nc < u.blocks {
        nc += 1;
    }
    let outp = Ptr(out.ptr);
    let (ctot, coff) = (out.channels, out.offset);
    let zeros = [0f32; NC];
    let ksize = u.blocks * cin * NC;
    let chunks = cin.div_ceil(CHUNK);
    thread_local! {
        // The transformed inputs and the products, kept per thread between calls.
        static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        // Every block's transformed inputs, when they are shared (below).
        static SHARED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // Few blocks (batch 1 on small planes): the output channels are split further to occupy
    // every thread, so each block's inputs are transformed once beforehand, in parallel, instead
    // of by every task that takes the block (at 14 x 14 with 256 channels, the repeated
    // transforms cost a third of the layer).
    let shared = nc > natural;
    // Taken out of the thread-local for the call: while this thread waits in the parallel loops
    // below, it may run another network's convolution, which then finds an empty buffer.
    let mut shared_buf = SHARED.take();
    let all: &[f32] = if shared {
        let all = line_aligned(&mut shared_buf, nb * chunks * 16 * KSTRIDE);
        all.par_chunks_mut(16 * KSTRIDE)
            .enumerate()
            .for_each(|(i, v)| {
                let (bi, ch) = (i / chunks, i % chunks);
                let c0 = ch * CHUNK;
                let segs = segments(bi, tiles, [th, tw]);
                // SAFETY: AVX-512F is available (the caller's contract).
                unsafe { transform_in(x, [cin, h, w], [t, l], &segs, c0..cin.min(c0 + CHUNK), v) };
            });
        all
    } else {
        &[]
    };
    (0..nb * nc).into_par_iter().for_each(|task| {
        let (ci, bi) = (task / nb, task % nb);
        let (cb0, cb1) = (ci * u.blocks / nc, (ci + 1) * u.blocks / nc);
        let runc = (cb1 - cb0) * NC;
        let (co0, co1) = (cb0 * NC, (cb1 * NC).min(cout));
        let segs = segments(bi, tiles, [th, tw]);
        let nv = (((bi + 1) * TB).min(tiles) - bi * TB).div_ceil(16);
        let vecs: Vec<(u16, usize)> = (0..nv).map(|v| (u16::MAX, 16 * v)).collect();
        SCRATCH.with_borrow_mut(|s| {
            let vlen = if shared { 0 } else { 16 * KSTRIDE };
            let (vs, m) = line_aligned(s, vlen + 16 * runc * TB).split_at_mut(vlen);
            for c0 in (0..cin).step_by(CHUNK) {
                let cn = CHUNK.min(cin - c0);
                let v: &[f32] = if shared {
                    &all[(bi * chunks + c0 / CHUNK) * 16 * KSTRIDE..][..16 * KSTRIDE]
                } else {
                    // SAFETY: AVX-512F is available (the caller's contract).
                    unsafe { transform_in(x, [cin, h, w], [t, l], &segs, c0..c0 + cn, vs) };
                    vs
                };
                for k in 0..16 {
                    for cb in cb0..cb1 {
                        let nco = (cout - cb * NC).min(NC);
                        // SAFETY: reads `cn` channels of TB floats of v[k] and `cn * NC`
                        // weights of block cb from channel c0; writes rows cb * NC.. of m[k]
                        // ([runc][TB]), vectors 0..nv.
                        let dst = m
                            .as_mut_ptr()
                            .wrapping_add((k * runc + (cb - cb0) * NC) * TB);
                        unsafe {
                            direct::kernel(
                                v.as_ptr().add(k * KSTRIDE),
                                &[0],
                                0,
                                &[],
                                0,
                                cn,
                                TB,
                                u.data.as_ptr().add(k * ksize + (cb * cin + c0) * NC),
                                dst,
                                TB,
                                &vecs,
                                nco,
                                if c0 > 0 {
                                    dst.cast_const()
                                } else {
                                    std::ptr::null()
                                },
                                zeros.as_ptr(),
                                false,
                                // (The products stay in L2: fetching them cost 3 %.)
                                false,
                                false,
                            );
                        }
                    }
                }
            }
            // SAFETY: reads m ([16][runc][TB]) rows 0..co1 - co0; writes the valid outputs
            // of channels co0..co1 of this block's tiles, this task's alone, inside `out`.
            unsafe {
                transform_out(
                    m,
                    runc,
                    &segs,
                    co0..co1,
                    bias,
                    relu,
                    res,
                    [oh, ow],
                    (outp, ctot, coff),
                )
            };
        });
    });
    SHARED.set(shared_buf);
}

/// The first `len` floats of `buf` from a cache line boundary on, `buf` grown as needed: every
/// 16-float vector of the scratch then fills one line (from wherever malloc put it, the
/// transform's stores and the products' loads each touched two: 13-16 % of a layer).
fn line_aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + 15 {
        buf.resize(len + 15, 0.0);
    }
    let skew = buf.as_ptr().align_offset(64).min(15);
    &mut buf[skew..skew + len]
}

/// The tiles of block `bi` (of `tiles` numbered over the batch, `th x tw` per image), row by
/// row.
fn segments(bi: usize, tiles: usize, [th, tw]: [usize; 2]) -> Vec<Seg> {
    let (start, end) = (bi * TB, ((bi + 1) * TB).min(tiles));
    let mut segs = Vec::with_capacity(TB);
    let mut at = start;
    while at < end {
        let (row, tx) = (at / tw, at % tw);
        let len = (tw - tx).min(end - at);
        segs.push(Seg {
            img: row / th,
            ty: row % th,
            tx,
            len,
            at: at - start,
        });
        at += len;
    }
    segs
}

/// The input transform `V = Bᵀ d B` of channels `cs` of every segment's tiles, into `v` as
/// `[16][CHUNK][TB]` (element k at `k * KSTRIDE`, channel `cs.start` first), read straight from
/// `x` (`[N, cin, h, w]` with padding `[top, left]`, and whatever the tiles reach past the bottom
/// and right edges, being zeros). 16 consecutive tiles of the block at a time, whichever rows
/// (or images) they come from: per patch row, each row's piece of the 32 (+2) input columns
/// under its tiles is loaded into its lanes of two pairs of vectors (masked loads; lanes outside
/// the input stay zero), split into even and odd columns: the patches' four columns. (One
/// vector per row of tiles left 9 of 16 lanes empty on 14 x 14 planes and 12 on 7 x 7, where
/// this transform took a fifth of the layer.)
#[target_feature(enable = "avx512f")]
unsafe fn transform_in(
    x: &[f32],
    [cin, h, w]: [usize; 3],
    [t, l]: [usize; 2],
    segs: &[Seg],
    cs: std::ops::Range<usize>,
    v: &mut [f32],
) {
    assert!(v.len() >= 16 * KSTRIDE && cs.len() <= CHUNK && cs.end <= cin);
    assert!(segs.iter().all(|s| (s.img + 1) * cin * h * w <= x.len()));
    let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let zero = _mm512_setzero_ps();
    let hw = h * w;
    let vp = v.as_mut_ptr();
    // The lanes of a 16-float load from column `at` that lie inside the row.
    let lanes = |at: isize| -> u16 { span(-at, w as isize - at) };
    /// One row of tiles' share of a vector of 16: its input rows (offsets in the plane; None:
    /// padding), the plane's offset, the column of window column 0, and the load masks.
    struct Piece {
        rows: [Option<usize>; 4],
        plane: usize,
        col: isize,
        m: [u16; 4],
    }
    let total = segs.last().map_or(0, |s| s.at + s.len);
    let mut pieces: Vec<Piece> = Vec::with_capacity(16);
    for g0 in (0..total).step_by(16) {
        pieces.clear();
        for s in segs {
            let (a0, a1) = (s.at.max(g0), (s.at + s.len).min(g0 + 16));
            if a0 >= a1 {
                continue;
            }
            let (lane0, len) = ((a0 - g0) as isize, (a1 - a0) as isize);
            // Window column 2 lane0 (the first tile's first column) is input column 2 tx - l.
            let col = 2 * (s.tx + a0 - s.at) as isize - l as isize - 2 * lane0;
            let (lo, hi) = (2 * lane0, 2 * (lane0 + len));
            pieces.push(Piece {
                rows: std::array::from_fn(|r| {
                    (2 * s.ty + r)
                        .checked_sub(t)
                        .filter(|&y| y < h)
                        .map(|y| y * w)
                }),
                plane: (s.img * cin + cs.start) * hw,
                col,
                m: [
                    span(lo, hi) & lanes(col),
                    span(lo - 16, hi - 16) & lanes(col + 16),
                    span(lo, hi) & lanes(col + 2),
                    span(lo - 16, hi - 16) & lanes(col + 18),
                ],
            });
        }
        let store = low_mask((total - g0).min(16));
        for c in 0..cs.len() {
            // SAFETY: the loads read, of row y < h of plane (img, cs.start + c) (inside `x`,
            // checked above), only the lanes inside the row (the masks; masked-off lanes are
            // not accessed, and their addresses are only formed with wrapping arithmetic); the
            // stores write element k, channel c, positions g0.. of the block under `store`,
            // inside `v` (checked above: g0 + 16 <= TB, c < CHUNK).
            unsafe {
                let mut d = [[zero; 4]; 4];
                for (r, d) in d.iter_mut().enumerate() {
                    let [mut a, mut b, mut a2, mut b2] = [zero; 4];
                    let mut any = false;
                    for p in &pieces {
                        let Some(y) = p.rows[r] else { continue };
                        any = true;
                        let at = x
                            .as_ptr()
                            .wrapping_add(p.plane + c * hw + y)
                            .wrapping_offset(p.col);
                        // The same columns of a channel PF_IN ahead: the planes lie far
                        // apart, a stride the hardware prefetchers do not follow.
                        let ahead = at.wrapping_add(PF_IN * hw + 2 * lane_of(p.m));
                        _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(33) as *const i8);
                        a = _mm512_mask_loadu_ps(a, p.m[0], at);
                        b = _mm512_mask_loadu_ps(b, p.m[1], at.wrapping_add(16));
                        a2 = _mm512_mask_loadu_ps(a2, p.m[2], at.wrapping_add(2));
                        b2 = _mm512_mask_loadu_ps(b2, p.m[3], at.wrapping_add(18));
                    }
                    if any {
                        *d = [
                            _mm512_permutex2var_ps(a, ie, b),
                            _mm512_permutex2var_ps(a, io, b),
                            _mm512_permutex2var_ps(a2, ie, b2),
                            _mm512_permutex2var_ps(a2, io, b2),
                        ];
                    }
                }
                // Bᵀ d, column by column: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3.
                let mut bd = [[zero; 4]; 4];
                for cc in 0..4 {
                    bd[0][cc] = _mm512_sub_ps(d[0][cc], d[2][cc]);
                    bd[1][cc] = _mm512_add_ps(d[1][cc], d[2][cc]);
                    bd[2][cc] = _mm512_sub_ps(d[2][cc], d[1][cc]);
                    bd[3][cc] = _mm512_sub_ps(d[1][cc], d[3][cc]);
                }
                // (Bᵀ d) B, row by row, the same combinations of columns.
                let at = vp.add(c * TB + g0);
                for (i, r) in bd.iter().enumerate() {
                    let vals = [
                        _mm512_sub_ps(r[0], r[2]),
                        _mm512_add_ps(r[1], r[2]),
                        _mm512_sub_ps(r[2], r[1]),
                        _mm512_sub_ps(r[1], r[3]),
                    ];
                    for (j, &val) in vals.iter().enumerate() {
                        _mm512_mask_storeu_ps(at.add((i * 4 + j) * KSTRIDE), store, val);
                    }
                }
            }
        }
    }
}

/// The first window column a piece loads (its first lane of `a`, or 16 + that of `b`).
fn lane_of(m: [u16; 4]) -> usize {
    if m[0] != 0 {
        m[0].trailing_zeros() as usize / 2 * 2
    } else {
        16 + m[1].trailing_zeros() as usize / 2 * 2
    }
}

/// The output transform `Y = Aᵀ M A` of channels `cos` (rows `0..` of `m`, `[16][runc][TB]`),
/// plus bias, plus the residual `res` (laid out as the output) and ReLU, stored at each tile's
/// 2x2 outputs (the valid ones) into channels `coff + cos` of the `[N, ctot, oh, ow]` buffer at
/// `outp`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_out(
    m: &[f32],
    runc: usize,
    segs: &[Seg],
    cos: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    relu: bool,
    res: Option<Ptr>,
    [oh, ow]: [usize; 2],
    (outp, ctot, coff): (Ptr, usize, usize),
) {
    assert!(m.len() >= 16 * runc * TB && cos.len() <= runc);
    let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    let zero = _mm512_setzero_ps();
    for (r, co) in cos.enumerate() {
        let b = _mm512_set1_ps(bias.map_or(0.0, |b| b[co]));
        for s in segs {
            for o in (0..s.len).step_by(16) {
                let tx = s.tx + o;
                // SAFETY: m reads inside the bound checked above (row r < runc, positions
                // < TB); output writes at rows 2 ty (+1) < oh, columns 2 tx.. < ow of channel
                // co of image img (the caller's bounds).
                unsafe {
                    let mk =
                        |k: usize| _mm512_loadu_ps(m.as_ptr().add((k * runc + r) * TB + s.at + o));
                    // Aᵀ M: rows m0 + m1 + m2 and m1 - m2 - m3, column by column.
                    let mut am = [[zero; 4]; 2];
                    let [top, bottom] = &mut am;
                    for (c, (t, b)) in top.iter_mut().zip(bottom.iter_mut()).enumerate() {
                        let (m0, m1, m2, m3) = (mk(c), mk(4 + c), mk(8 + c), mk(12 + c));
                        *t = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                        *b = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                    }
                    let cols = (ow - 2 * tx).min(2 * (s.len - o)).min(32);
                    let (ma, mb) = direct::tail_masks(cols);
                    for (i, a) in am.iter().enumerate() {
                        let y = 2 * s.ty + i;
                        if y >= oh {
                            break;
                        }
                        let y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), a[2]), b);
                        let y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(a[1], a[2]), a[3]), b);
                        // Columns 2 tx.. in order: the two outputs of each tile side by side.
                        let mut v0 = _mm512_permutex2var_ps(y0, lo, y1);
                        let mut v1 = _mm512_permutex2var_ps(y0, hi, y1);
                        let at = ((s.img * ctot + coff + co) * oh + y) * ow + 2 * tx;
                        if let Some(r) = res {
                            // The residual has the output's layout (checked by the caller);
                            // fetched PF_OUT channels ahead, as the outputs.
                            let q = r.get().cast_const().add(at);
                            let n = q.wrapping_add(PF_OUT * oh * ow);
                            _mm_prefetch::<_MM_HINT_T0>(n as *const i8);
                            _mm_prefetch::<_MM_HINT_T0>(n.wrapping_add(31) as *const i8);
                            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(ma, q));
                            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(mb, q.add(16)));
                        }
                        if relu {
                            // max(0, v) returns v when v is NaN (the second operand).
                            v0 = _mm512_max_ps(zero, v0);
                            v1 = _mm512_max_ps(zero, v1);
                        }
                        let p = outp.get().add(at);
                        // The same outputs PF_OUT channels on, fetched for writing (at batch 32
                        // they are far from the cache).
                        let n = p.wrapping_add(PF_OUT * oh * ow);
                        _mm_prefetch::<_MM_HINT_ET0>(n as *const i8);
                        _mm_prefetch::<_MM_HINT_ET0>(n.wrapping_add(31) as *const i8);
                        _mm512_mask_storeu_ps(p, ma, v0);
                        _mm512_mask_storeu_ps(p.add(16), mb, v1);
                    }
                }
            }
        }
    }
}
