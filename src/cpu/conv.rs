//! Convolutions: [`FastConv`] holds a convolution's weights in the form its kernel takes, and
//! [`conv2d`], [`conv2d_add`] (plus a residual) and [`conv2d_part`] (into a channel
//! concatenation) run it. Each call picks its kernel: on CPUs with AVX-512, Winograd
//! ([`winograd`](super::winograd)) or the direct kernel ([`direct`](super::direct)), which can
//! also pool the output before storing it ([`FastConv::pool`]); elsewhere im2col and `gemm`
//! over tiles of output pixels, and one gemm over the batch for kernels that cover the whole
//! input.

use super::elementwise::add_relu;
use super::matmul::{Matrix, matmul_t};
use super::pool::{Pool, max_pool};
use super::{OutPtr, Values, host, is_plain_flex};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// A convolution prepared for [`conv2d`]: weights on the host as `[Cout, Cin/groups * kh * kw]`
/// rows (Burn's `[Cout, Cin/groups, kh, kw]` order, which is im2col's), bias folded in, and an
/// optional ReLU applied on the way out.
#[derive(Debug, Clone)]
pub struct FastConv {
    /// The weights, held once in the form the last call used.
    weight: Arc<Mutex<Weights>>,
    bias: Option<Arc<Vec<f32>>>,
    cout: usize,
    cin_g: usize,
    k: [usize; 2],
    stride: [usize; 2],
    /// `[top, bottom, left, right]`.
    pad: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
    pub relu: bool,
    /// A max pooling of the output (after the ReLU), fused into the convolution where the
    /// direct kernel computes it, else applied after it by the pooling layer's own op.
    pub pool: Option<(Pool, burn::nn::pool::MaxPool2d)>,
    /// The weights transformed for the Winograd kernel, made on the first call it takes (in
    /// addition to `weight`, which other batch sizes may still use).
    #[cfg(target_arch = "x86_64")]
    winograd: Arc<std::sync::OnceLock<super::winograd::Transformed>>,
}

/// A convolution's weights as `[Cout, Cin/groups * kh * kw]` rows (im2col + gemm, and fully
/// connected convolutions) or packed for the direct kernel: converted on the first call that
/// needs the other form (the previous one is dropped, so the weights are held once; a
/// MatConvNet fully connected layer's 400 MB are never packed).
#[derive(Debug)]
enum Weights {
    Rows(Arc<Vec<f32>>),
    #[cfg(target_arch = "x86_64")]
    Packed(Arc<super::direct::Packed>),
}

impl FastConv {
    fn lock(&self) -> std::sync::MutexGuard<'_, Weights> {
        // A panic while converting leaves the previous form in place: the data is still good.
        self.weight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The weights as rows.
    fn rows(&self) -> Arc<Vec<f32>> {
        let mut w = self.lock();
        match &*w {
            Weights::Rows(r) => r.clone(),
            #[cfg(target_arch = "x86_64")]
            Weights::Packed(p) => {
                let [kh, kw] = self.k;
                let r = Arc::new(p.unpack(self.cout, self.cin_g, kh * kw, self.groups));
                *w = Weights::Rows(r.clone());
                r
            }
        }
    }

    /// The weights transformed for the Winograd kernel when it computes `geo` (see
    /// [`winograd::applies`](super::winograd::applies)) on this CPU.
    #[cfg(target_arch = "x86_64")]
    fn winograd(&self, geo: &Geometry) -> Option<&super::winograd::Transformed> {
        if !super::direct::available() || !super::winograd::applies(geo) {
            return None;
        }
        Some(self.winograd.get_or_init(|| {
            let w = self.lock();
            let unpacked;
            let rows: &[f32] = match &*w {
                Weights::Rows(r) => r,
                Weights::Packed(p) => {
                    unpacked = p.unpack(self.cout, self.cin_g, 9, self.groups);
                    &unpacked
                }
            };
            super::winograd::Transformed::new(rows, self.cout, self.cin_g)
        }))
    }

    /// The weights packed for the direct kernel; `None` where the CPU lacks AVX-512.
    #[cfg(target_arch = "x86_64")]
    fn packed(&self) -> Option<Arc<super::direct::Packed>> {
        if !super::direct::available() {
            return None;
        }
        let mut w = self.lock();
        Some(match &*w {
            Weights::Packed(p) => p.clone(),
            Weights::Rows(r) => {
                let [kh, kw] = self.k;
                let p = Arc::new(super::direct::Packed::new(
                    r,
                    self.cout,
                    self.cin_g,
                    kh * kw,
                    self.groups,
                ));
                *w = Weights::Packed(p.clone());
                p
            }
        })
    }

    /// The AVX-512 kernel that computes `geo`'s convolution, if any: Winograd where it
    /// applies, else the direct kernel (but for whole-input kernels, which are one gemm).
    #[cfg(target_arch = "x86_64")]
    fn kernel(&self, geo: &Geometry) -> Option<Kernel<'_>> {
        if let Some(u) = self.winograd(geo) {
            return Some(Kernel::Winograd(u));
        }
        if geo.whole() {
            return None;
        }
        self.packed().map(Kernel::Direct)
    }
}

/// An AVX-512 convolution kernel with its weights (see [`FastConv::kernel`]).
#[cfg(target_arch = "x86_64")]
enum Kernel<'a> {
    Winograd(&'a super::winograd::Transformed),
    Direct(Arc<super::direct::Packed>),
}

#[cfg(target_arch = "x86_64")]
impl Kernel<'_> {
    /// `f`'s convolution of `x` into `out`, plus `residual` before the ReLU.
    ///
    /// # Safety
    /// As [`direct::conv2d_into`](super::direct::conv2d_into).
    unsafe fn run(
        &self,
        x: &[f32],
        geo: &Geometry,
        f: &FastConv,
        residual: Option<&[f32]>,
        pool: Option<&Pool>,
        out: super::direct::Out,
    ) {
        let bias = f.bias.as_deref().map(|b| &b[..]);
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Kernel::Winograd(u) => {
                    assert!(
                        pool.is_none(),
                        "pooling is fused into the direct kernel only"
                    );
                    super::winograd::conv2d_into(x, geo, u, bias, f.relu, residual, out)
                }
                Kernel::Direct(p) => {
                    super::direct::conv2d_into(x, geo, p, bias, f.relu, residual, pool, out)
                }
            }
        }
    }

    /// [`run`](Self::run) into a new `[N, cout, oh, ow]` tensor (the pooled size with `pool`).
    fn run_new(
        &self,
        x: &[f32],
        geo: &Geometry,
        f: &FastConv,
        residual: Option<&[f32]>,
        pool: Option<&Pool>,
        device: &Device,
    ) -> Tensor<4> {
        let [oh, ow] = geo.output();
        let [h, w] = pool
            .map_or(Some([oh, ow]), |p| p.output([oh, ow]))
            .expect("a pooling that fits");
        let dims = [geo.n, f.cout, h, w];
        let total = dims.iter().product();
        let mut out: Vec<f32> = Vec::with_capacity(total);
        let o = super::direct::Out {
            ptr: out.as_mut_ptr(),
            channels: f.cout,
            offset: 0,
        };
        // SAFETY: `out` holds `total` floats, the [N, cout, oh, ow] output (pooled with `pool`),
        // nothing else accesses it, and the kernels write every one of them (each output lies in
        // one position block, tile or pooled band of one task); the residual's size is checked
        // by the kernels.
        unsafe {
            self.run(x, geo, f, residual, pool, o);
            out.set_len(total);
        }
        Tensor::from_data(TensorData::new(out, dims), device)
    }
}

impl FastConv {
    /// Whether [`conv2d`] handles `c`'s configuration.
    pub fn supports(c: &Conv2d) -> bool {
        let cout = c.weight.val().dims()[0];
        matches!(
            c.padding,
            PaddingConfig2d::Explicit(..) | PaddingConfig2d::Valid
        ) && c.groups > 0
            && cout.is_multiple_of(c.groups)
    }

    /// Takes `c`'s weights (without a copy where the backend allows it); `None` for
    /// configurations this kernel leaves to Burn (see [`supports`](Self::supports)).
    pub fn new(c: Conv2d) -> Option<FastConv> {
        if !Self::supports(&c) {
            return None;
        }
        let [cout, cin_g, kh, kw] = c.weight.val().dims();
        let pad = match c.padding {
            PaddingConfig2d::Explicit(t, l, b, r) => [t, b, l, r],
            _ => [0; 4],
        };
        let weight = host(c.weight.into_value());
        Some(FastConv::from_rows(
            weight,
            c.bias.map(|b| host(b.into_value())),
            cout,
            cin_g,
            [kh, kw],
            c.stride,
            pad,
            c.dilation,
            c.groups,
        ))
    }

    /// A convolution from its weights as `[Cout, Cin/groups * kh * kw]` rows (Burn's weight
    /// order), for callers that hold them on the host (the training kernels, whose weights
    /// change every step). `pad` is `[top, bottom, left, right]`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn from_rows(
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        cout: usize,
        cin_g: usize,
        k: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
    ) -> FastConv {
        FastConv {
            weight: Arc::new(Mutex::new(Weights::Rows(Arc::new(weight)))),
            bias: bias.map(Arc::new),
            cout,
            cin_g,
            k,
            stride,
            pad,
            dilation,
            groups,
            relu: false,
            pool: None,
            #[cfg(target_arch = "x86_64")]
            winograd: Arc::default(),
        }
    }
}

/// The sizes of one convolution call.
#[derive(Debug, Clone)]
pub struct Geometry {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub groups: usize,
    pub k: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, bottom, left, right]`.
    pub pad: [usize; 4],
}

impl Geometry {
    /// `[oh, ow]` (floor rounding, as MATLAB).
    pub fn output(&self) -> [usize; 2] {
        let [kh, kw] = self.k;
        let [t, b, l, r] = self.pad;
        let (ekh, ekw) = (
            self.dilation[0] * (kh - 1) + 1,
            self.dilation[1] * (kw - 1) + 1,
        );
        [
            (self.h + t + b - ekh) / self.stride[0] + 1,
            (self.w + l + r - ekw) / self.stride[1] + 1,
        ]
    }

    /// The kernel covers the whole unpadded input: a fully connected layer stored as a
    /// convolution (MatConvNet's), computed as one gemm over the batch.
    pub fn whole(&self) -> bool {
        self.k == [self.h, self.w]
            && self.pad == [0; 4]
            && self.dilation == [1, 1]
            && self.groups == 1
    }
}

impl FastConv {
    /// The geometry of this convolution on an `[n, cin, h, w]` input.
    fn geometry(&self, [n, cin, h, w]: [usize; 4]) -> Geometry {
        Geometry {
            n,
            cin,
            h,
            w,
            cout: self.cout,
            groups: self.groups,
            k: self.k,
            stride: self.stride,
            dilation: self.dilation,
            pad: self.pad,
        }
    }
}

/// Bytes of convolution output per thread above which a max pooling after it is fused into
/// it: below, the output stays in the core's L2 (2 MiB) until the pooling reads it.
const FUSE_POOL_BYTES: usize = 2 << 20;

#[cfg(test)]
thread_local! {
    /// Tests: fuse poolings whatever the output's size.
    pub(super) static FUSE_ALWAYS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a test asked for fused poolings whatever the size.
fn fuse_always() -> bool {
    #[cfg(test)]
    return FUSE_ALWAYS.get();
    #[cfg(not(test))]
    false
}

/// Bytes of one im2col tile: small enough to stay in a core's L2 cache while gemm packs it.
const COL_TILE_BYTES: usize = 512 * 1024;

/// Convolution (cross-correlation, as Burn and MATLAB) of `[N, Cin, H, W]`, by im2col and
/// single-threaded `gemm`s over tiles of output pixels: `out[Cout, P] = bias + W[Cout, K] x
/// col[K, P]` for each image, group and tile of pixels `P`, ReLU fused when asked. The tiles are
/// the parallel tasks (gemm's own threading is slower on these shapes), and each tile's column
/// matrix fits in L2. im2col is skipped where the input already is the column matrix (1x1
/// kernels with stride 1 and no padding); kernels that cover the whole unpadded input (fully
/// connected layers stored as convolutions, as MatConvNet does) are one gemm over the batch.
pub fn conv2d(x: Tensor<4>, f: &FastConv) -> Tensor<4> {
    conv2d_tiled(x, f, None, None)
}

impl FastConv {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.cout
    }
}

/// The output of a channel concatenation whose inputs are convolutions, written in place by
/// [`conv2d_part`] (no copy into the concatenation afterwards).
#[derive(Debug)]
pub struct ConcatBuf {
    data: Vec<f32>,
    dims: [usize; 4],
    filled: usize,
}

impl ConcatBuf {
    /// The concatenation, once every part has been written.
    pub fn into_tensor(mut self, device: &Device) -> Tensor<4> {
        let total: usize = self.dims.iter().product();
        assert_eq!(
            self.filled, self.dims[1],
            "concatenation: {} of {} channels written",
            self.filled, self.dims[1]
        );
        // SAFETY: every part wrote all its channels (`filled` counts them; parts do not
        // overlap, see `conv2d_part`), so all `total` elements are initialized.
        unsafe { self.data.set_len(total) };
        Tensor::from_data(TensorData::new(self.data, self.dims), device)
    }
}

/// [`conv2d`] of `x` into channels `offset..offset + cout` of the concatenation `buf` of
/// `channels` channels (created by the first part). Parts whose images differ in size from the
/// first one's cannot be concatenated (shape inference refuses such networks at import).
pub fn conv2d_part(
    x: Tensor<4>,
    f: &FastConv,
    buf: &mut Option<ConcatBuf>,
    offset: usize,
    channels: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let geo = f.geometry(x.dims());
        if let Some(kernel) = f.kernel(&geo) {
            let [oh, ow] = geo.output();
            let b = part_buf(buf, [geo.n, channels, oh, ow], offset, f.cout);
            let data = Values::of(x);
            let out = super::direct::Out {
                ptr: b.data.as_mut_ptr(),
                channels,
                offset,
            };
            debug_assert!(
                f.pool.is_none(),
                "no pooling fused into a concatenation's part"
            );
            // SAFETY: `b` holds capacity for [n, channels, oh, ow] (checked by `part_buf`),
            // offset + cout <= channels, and no other part writes these channels.
            unsafe { kernel.run(&data, &geo, f, None, None, out) };
            b.filled += f.cout;
            return;
        }
    }
    // Elsewhere: the convolution, then a copy of its channels into place.
    let y = conv2d(x, f);
    let [n, c, oh, ow] = y.dims();
    let b = part_buf(buf, [n, channels, oh, ow], offset, c);
    let v = y.into_data().try_into_vec::<f32>().expect("f32 data");
    let plane = c * oh * ow;
    for img in 0..n {
        let at = (img * channels + offset) * oh * ow;
        // SAFETY: image img's channels offset..offset + c lie inside the capacity (checked by
        // `part_buf`) and belong to this part alone.
        unsafe {
            std::ptr::copy_nonoverlapping(
                v[img * plane..].as_ptr(),
                b.data.as_mut_ptr().add(at),
                plane,
            );
        }
    }
    b.filled += c;
}

/// The concatenation buffer, created for `dims` by the first part; checks that this part's
/// channels fit and its images have the first part's sizes.
fn part_buf(
    buf: &mut Option<ConcatBuf>,
    dims: [usize; 4],
    offset: usize,
    cout: usize,
) -> &mut ConcatBuf {
    let b = buf.get_or_insert_with(|| ConcatBuf {
        data: Vec::with_capacity(dims.iter().product()),
        dims,
        filled: 0,
    });
    assert!(
        b.dims == dims && offset + cout <= dims[1],
        "concatenation of a {dims:?} part (channels {offset}..) into {:?}",
        b.dims
    );
    b
}

/// [`conv2d`] plus `residual` (a residual block's shortcut), before the ReLU: added as the
/// kernels store their results (no pass of its own), where they take the convolution and the
/// residual has the output's shape; elsewhere the convolution, then the addition.
pub fn conv2d_add(x: Tensor<4>, residual: Tensor<4>, f: &FastConv) -> Tensor<4> {
    conv2d_tiled(x, f, None, Some(residual))
}

fn conv2d_tiled(
    x: Tensor<4>,
    f: &FastConv,
    tile: Option<usize>,
    residual: Option<Tensor<4>>,
) -> Tensor<4> {
    let geo = f.geometry(x.dims());
    let Geometry { n, cin, h, w, .. } = geo;
    let device = x.device();
    let [oh, ow] = geo.output();
    let [kh, kw] = f.k;
    let (g, cin_g, cout) = (f.groups, f.cin_g, f.cout);
    let cout_g = cout / g;
    let kk = cin_g * kh * kw;
    let npix = oh * ow;
    let whole = geo.whole();
    // The AVX-512 kernel that computes this call, if any (the kernels add the residual).
    #[cfg(target_arch = "x86_64")]
    let kernel = tile.is_none().then(|| f.kernel(&geo)).flatten();
    #[cfg(not(target_arch = "x86_64"))]
    let kernel: Option<()> = None;
    if let Some((pool, op)) = &f.pool {
        // Fused where the convolution's output would not stay in the threads' L2 caches
        // between the two (a first layer at batch 32: SqueezeNet's conv1 and pool1 17.6 ->
        // 15.4 ms); at batch 1 it does, and the rows the bands share cost more than the
        // traffic saved (0.45 -> 0.52 ms).
        #[cfg(target_arch = "x86_64")]
        if let (Some(direct @ Kernel::Direct(_)), None, Some(_)) =
            (&kernel, &residual, pool.output([oh, ow]))
            && (n * cout * npix * size_of::<f32>()
                > FUSE_POOL_BYTES * rayon::current_num_threads().max(1)
                || fuse_always())
        {
            return direct.run_new(&Values::of(x), &geo, f, None, Some(pool), &device);
        }
        // Elsewhere: the convolution, then the pooling layer as it would have run.
        let mut plain = f.clone();
        plain.pool = None;
        let y = conv2d_tiled(x, &plain, tile, residual);
        let _ = pool; // (read by the fused kernel, on x86-64 only)
        return max_pool(y, op);
    }
    let residual = match residual {
        Some(r) if kernel.is_none() || r.dims() != [n, cout, oh, ow] || !is_plain_flex(&r) => {
            let mut plain = f.clone();
            plain.relu = false;
            let y = conv2d_tiled(x, &plain, tile, None);
            return if f.relu { add_relu(vec![y, r]) } else { y + r };
        }
        r => r.map(Values::of),
    };
    let data = Values::of(x);
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = kernel {
        return kernel.run_new(&data, &geo, f, residual.as_deref(), None, &device);
    }
    let mut out = vec![0f32; n * cout * npix];
    let threads = rayon::current_num_threads().max(1);
    let weight = f.rows();
    if whole {
        fully_connected(&data, &mut out, f, &weight, n, kk);
        return Tensor::from_data(TensorData::new(out, [n, cout, oh, ow]), &device);
    }
    let direct = kh == 1 && kw == 1 && f.stride == [1, 1] && f.pad == [0; 4];
    // Pixels per tile: the im2col tile within its cache budget, and enough tasks for every
    // thread (two each, for balance) when the batch alone does not give them.
    let mut tp = if direct {
        npix
    } else {
        (COL_TILE_BYTES / 4 / kk).max(64)
    };
    let jobs = n * g;
    if jobs < 2 * threads {
        let split = (2 * threads).div_ceil(jobs);
        tp = tp.min(npix.div_ceil(split).max(16));
    }
    if let Some(t) = tile {
        tp = t;
    }
    let tp = tp.clamp(1, npix);
    let tiles = npix.div_ceil(tp);
    let outp = OutPtr(out.as_mut_ptr());
    thread_local! {
        // im2col buffers are kept per thread between calls: a fresh allocation of this size
        // costs its page faults again on every call.
        static COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let task = |job: usize| {
        let (img, rest) = (job / (g * tiles), job % (g * tiles));
        let (gi, ti) = (rest / tiles, rest % tiles);
        let p0 = ti * tp;
        let p1 = (p0 + tp).min(npix);
        let np = p1 - p0;
        let xg = &data[(img * cin + gi * cin_g) * h * w..(img * cin + (gi + 1) * cin_g) * h * w];
        let wg = &weight[gi * cout_g * kk..(gi + 1) * cout_g * kk];
        // SAFETY: this task owns rows gi*cout_g.. of image img, columns p0..p1: disjoint from
        // every other task's, and inside `out`, which outlives the parallel loop.
        let dst = unsafe { outp.get().add((img * cout + gi * cout_g) * npix + p0) };
        if let Some(bias) = &f.bias {
            for co in 0..cout_g {
                // SAFETY: as above, row co's columns p0..p1.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.add(co * npix), np) };
                row.fill(bias[gi * cout_g + co]);
            }
        }
        let mm = |rhs: *const f32, rhs_rs: usize| {
            // SAFETY: dst is [cout_g, np] with row stride npix, lhs [cout_g, kk], rhs [kk, np]
            // with row stride rhs_rs, all in bounds; dst does not alias the inputs.
            unsafe {
                gemm::gemm(
                    cout_g,
                    np,
                    kk,
                    dst,
                    1,
                    npix as isize,
                    f.bias.is_some(),
                    wg.as_ptr(),
                    1,
                    kk as isize,
                    rhs,
                    1,
                    rhs_rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        };
        if direct {
            mm(xg[p0..].as_ptr(), npix);
        } else {
            let with_col = |col: &mut Vec<f32>| {
                // im2col writes every entry: grow the buffer, never clear it.
                if col.len() < kk * np {
                    col.resize(kk * np, 0.0);
                }
                im2col(xg, &mut col[..kk * np], h, w, f, ow, p0, p1);
                mm(col.as_ptr(), np);
            };
            COL.with(|c| match c.try_borrow_mut() {
                Ok(mut buf) => with_col(&mut buf),
                Err(_) => with_col(&mut Vec::new()),
            });
        }
        if f.relu {
            for co in 0..cout_g {
                // SAFETY: as above.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.add(co * npix), np) };
                // A select, not a conditional store, so that it vectorizes; NaN stays NaN.
                for v in row.iter_mut() {
                    *v = if *v < 0.0 { 0.0 } else { *v };
                }
            }
        }
    };
    (0..n * g * tiles).into_par_iter().for_each(task);
    Tensor::from_data(TensorData::new(out, [n, cout, oh, ow]), &device)
}

/// A kernel covering the whole unpadded input, as one gemm over the batch: `out[N, Cout] =
/// x[N, K] x W[Cout, K]^T + bias`, split over output channels between the threads (at batch 1
/// this reads the weights once, in parallel).
fn fully_connected(
    data: &[f32],
    out: &mut [f32],
    f: &FastConv,
    weight: &[f32],
    n: usize,
    kk: usize,
) {
    let w = Matrix {
        data: weight,
        rows: f.cout,
        cols: kk,
        row_stride: kk,
        col_stride: 1,
    };
    matmul_t(data, out, w, f.bias.as_deref().map(|b| &b[..]), f.relu, n);
}

/// Columns `p0..p1` of the column matrix `[cin * kh * kw, oh * ow]` of one image's `[cin, h,
/// w]` planes, into `col` (`[cin * kh * kw, p1 - p0]`).
#[allow(clippy::too_many_arguments)]
pub(super) fn im2col(
    x: &[f32],
    col: &mut [f32],
    h: usize,
    w: usize,
    f: &FastConv,
    ow: usize,
    p0: usize,
    p1: usize,
) {
    let rows = col.len() / (p1 - p0).max(1);
    im2col_strided(x, col, rows, p1 - p0, h, w, f, ow, p0, p1);
}

/// [`im2col`] into the first `p1 - p0` columns of each of `rows` rows `row_stride` apart (a
/// block of a wider matrix: the training kernels put several images side by side).
#[allow(clippy::too_many_arguments)]
pub(super) fn im2col_strided(
    x: &[f32],
    col: &mut [f32],
    rows: usize,
    row_stride: usize,
    h: usize,
    w: usize,
    f: &FastConv,
    ow: usize,
    p0: usize,
    p1: usize,
) {
    let [kh, kw] = f.k;
    let [t, _, l, _] = f.pad;
    let [sh, sw] = f.stride;
    let [dh, dw] = f.dilation;
    let np = p1 - p0;
    if [sh, sw, dh, dw] == [1; 4]
        && ow == w
        && w > 0
        && p0.is_multiple_of(w)
        && p1.is_multiple_of(w)
    {
        return im2col_same(x, col, rows, row_stride, h, w, f, p0 / w..p1 / w);
    }
    for row in 0..rows {
        let dst = &mut col[row * row_stride..row * row_stride + np];
        let c = row / (kh * kw);
        let ky = (row / kw) % kh;
        let kx = row % kw;
        let plane = &x[c * h * w..(c + 1) * h * w];
        let x0 = kx * dw;
        // Output columns whose input column ox * sw + x0 - l lies inside the row.
        let lo = l.saturating_sub(x0).div_ceil(sw).min(ow);
        let hi = (w + l).saturating_sub(x0).div_ceil(sw).clamp(lo, ow);
        let mut p = p0;
        while p < p1 {
            let oy = p / ow;
            let a = p % ow;
            let e = ow.min(a + (p1 - p));
            let d = &mut dst[p - p0..p - p0 + (e - a)];
            p += e - a;
            let iy = (oy * sh + ky * dh) as isize - t as isize;
            if iy < 0 || iy >= h as isize {
                d.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
            // The inside part of this row's columns a..e; zeros either side.
            let (ia, ib) = (lo.clamp(a, e), hi.clamp(a, e));
            d[..ia - a].fill(0.0);
            d[ib - a..].fill(0.0);
            if ia < ib {
                let s0 = ia * sw + x0 - l;
                let d = &mut d[ia - a..ib - a];
                if sw == 1 {
                    d.copy_from_slice(&src[s0..s0 + d.len()]);
                } else {
                    // Every sw-th input column: the first of each chunk of sw (the last chunk
                    // may be shorter, never empty).
                    let s = &src[s0..=s0 + (d.len() - 1) * sw];
                    for (v, c) in d.iter_mut().zip(s.chunks(sw)) {
                        *v = c[0];
                    }
                }
            }
        }
    }
}

/// [`im2col_strided`] for stride and dilation 1 with output rows as wide as the input's ('same'
/// padding across): output rows `oys`, whole. Each row of the column matrix is then the input
/// plane shifted, so it is copied in one run over all its output rows, and the values that ran
/// over an edge into the next input row are zeroed after (the training kernels' weight gradients
/// on 7x7 and 14x14 planes spent most of their im2col time in per-row copies of 7 or 14 floats).
#[allow(clippy::too_many_arguments)]
fn im2col_same(
    x: &[f32],
    col: &mut [f32],
    rows: usize,
    row_stride: usize,
    h: usize,
    w: usize,
    f: &FastConv,
    oys: std::ops::Range<usize>,
) {
    let [kh, kw] = f.k;
    let [t, _, l, _] = f.pad;
    let np = oys.len() * w;
    let plane = h * w;
    for row in 0..rows {
        let dst = &mut col[row * row_stride..row * row_stride + np];
        let c = row / (kh * kw);
        let ky = ((row / kw) % kh) as isize;
        let shift = (row % kw) as isize - l as isize;
        let src = &x[c * plane..(c + 1) * plane];
        // Output rows whose input row oy + ky - t lies inside the plane.
        let v0 = (t as isize - ky).clamp(oys.start as isize, oys.end as isize) as usize;
        let v1 = (h as isize + t as isize - ky).clamp(v0 as isize, oys.end as isize) as usize;
        let (d0, d1) = ((v0 - oys.start) * w, (v1 - oys.start) * w);
        dst[..d0].fill(0.0);
        dst[d1..].fill(0.0);
        if v0 == v1 {
            continue;
        }
        // dst[d0 + j] = src[s0 + j] where that lies inside the plane.
        let s0 = (v0 as isize + ky - t as isize) * w as isize + shift;
        let n = (d1 - d0) as isize;
        let lo = (-s0).clamp(0, n);
        let hi = (plane as isize - s0).clamp(lo, n);
        let run = &mut dst[d0..d1];
        run[..lo as usize].fill(0.0);
        run[hi as usize..].fill(0.0);
        if lo < hi {
            run[lo as usize..hi as usize]
                .copy_from_slice(&src[(s0 + lo) as usize..(s0 + hi) as usize]);
        }
        // Columns whose input column ox + shift is outside the row read the neighbouring row.
        let edge = shift.unsigned_abs().min(w);
        if edge > 0 {
            for r in run.chunks_exact_mut(w) {
                if shift > 0 {
                    r[w - edge..].fill(0.0);
                } else {
                    r[..edge].fill(0.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
