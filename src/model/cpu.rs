//! Hand-written inference kernels for the CPU (flex) backend, used where Burn 0.22's own kernel
//! does avoidable work. Only on a plain flex device (no autodiff, no GPU): training and other
//! backends keep Burn's ops.
//!
//! - Max pooling: flex computes every max pooling as a 3-D pooling that also returns the argmax
//!   indices; this kernel computes the maxima only, one output plane per rayon task. SqueezeNet
//!   at batch 32: 203 ms -> see DESIGN.md.

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
    pub fn of(p: &burn::nn::pool::MaxPool2d) -> Option<Pool> {
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

/// An activation's values, borrowed from its buffer when the tensor is a contiguous f32 tensor
/// of the Flex (CPU) backend, even when another tensor shares that buffer: `into_data` copies a
/// shared buffer, and a residual block's input is shared with its skip connection (ResNet-18 at
/// batch 32 spent 55 ms of a 670 ms pass in those copies). Elsewhere, a copy.
pub(crate) enum Values {
    Flex(burn::backend::flex::FlexTensor),
    Owned(Vec<f32>),
}

impl Values {
    pub fn of<const D: usize>(x: Tensor<D>) -> Values {
        if let Ok(t) = x.clone().try_into_primitive::<burn::backend::Flex>()
            && t.as_slice::<f32>().is_some()
        {
            return Values::Flex(t);
        }
        Values::Owned(host(x))
    }
}

impl std::ops::Deref for Values {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Values::Flex(t) => t
                .as_slice::<f32>()
                .expect("checked contiguous f32 by Values::of"),
            Values::Owned(v) => v,
        }
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
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
        Some(FastConv {
            weight: Arc::new(Mutex::new(Weights::Rows(Arc::new(weight)))),
            bias: c.bias.map(|b| Arc::new(host(b.into_value()))),
            cout,
            cin_g,
            k: [kh, kw],
            stride: c.stride,
            pad,
            dilation: c.dilation,
            groups: c.groups,
            relu: false,
            pool: None,
            #[cfg(target_arch = "x86_64")]
            winograd: Arc::default(),
        })
    }
}

/// Raw pointer to an output buffer, shared by parallel tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: the kernels give every task a region no other task touches.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// The sizes of one convolution call.
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
        return super::ops::Op::MaxPool(op.clone()).forward(vec![y]);
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

/// A `rows x cols` matrix of floats: element `(r, c)` at `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// `out[N, R] = x[N, C] x W^T + bias` for a `R x C` matrix `W`, ReLU when `relu`. The tasks
/// are runs of W's rows (at batch 1 the weights are then read once, in parallel; there, rows
/// stored contiguously go through [`gemv_avx512`] where available) and, when those are fewer
/// than the threads, runs of images (MNIST's 10-output layer at batch 32 was one task).
fn matmul_t(data: &[f32], out: &mut [f32], w: Matrix, bias: Option<&[f32]>, relu: bool, n: usize) {
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

/// A fully connected layer (Burn's `Linear`: `y[N, out] = x[N, in] W + bias`, `W` `[in,
/// out]`) on plain Flex tensors by [`matmul_t`], reading the weights in place where each
/// output's weights are contiguous: the import keeps MATLAB's `[out, in]` rows and gives Burn a
/// transposed view of them. Measured on this layout (2 threads): VGG-16's fc6 (25088 -> 4096)
/// at batch 1 27-36 ms with Burn's matmul, 13.5-14 here; MNIST's 3136 -> 10 at batch 32 0.054
/// -> 0.020 ms. `None` elsewhere (other backends, autodiff, weights stored `[in, out]` as
/// training leaves them, where gemm on this layout was slower than Burn's op at batch 1, and
/// batches over fewer than 256 inputs): Burn's op then runs.
pub fn linear(x: &Tensor<2>, weight: &Tensor<2>, bias: Option<&Tensor<1>>) -> Option<Tensor<2>> {
    let [n, kk] = x.dims();
    let [wk, cout] = weight.dims();
    // (Batches over few inputs, the size of a sequence network's layers, stay with Burn: 176
    // rows of 100 -> 4 took 8 µs there and 26-36 here, 1000 rows of 100 -> 5 0.04 ms and 0.08.)
    if wk != kk
        || (n > 1 && kk < 256)
        || !is_plain_flex(x)
        || !is_plain_flex(weight)
        || bias.is_some_and(|b| b.dims() != [cout])
    {
        return None;
    }
    let w = weight
        .clone()
        .try_into_primitive::<burn::backend::Flex>()
        .ok()
        .filter(|t| t.dtype() == burn::tensor::DType::F32)?;
    let layout = w.layout();
    // Element (i, o) of W, i.e. (o, i) of the matrix W^T that `matmul_t` takes, lies at
    // start + i + o * s1: rows of W^T, `s1` apart.
    let s1 = match layout.strides() {
        &[1, s1] => match usize::try_from(s1) {
            Ok(s1) if s1 >= kk => s1,
            _ => return None,
        },
        _ => return None,
    };
    let storage = w.storage::<f32>().get(layout.start_offset()..)?;
    if cout > 0 && kk > 0 && (cout - 1) * s1 + kk > storage.len() {
        return None;
    }
    let wt = Matrix {
        data: storage,
        rows: cout,
        cols: kk,
        row_stride: s1,
        col_stride: 1,
    };
    let bias = bias.map(|b| Values::of(b.clone()));
    let device = x.device();
    let data = Values::of(x.clone());
    let mut out = vec![0f32; n * cout];
    matmul_t(&data, &mut out, wt, bias.as_deref(), false, n);
    Some(Tensor::from_data(TensorData::new(out, [n, cout]), &device))
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

/// Columns `p0..p1` of the column matrix `[cin * kh * kw, oh * ow]` of one image's `[cin, h,
/// w]` planes, into `col` (`[cin * kh * kw, p1 - p0]`).
#[allow(clippy::too_many_arguments)]
fn im2col(
    x: &[f32],
    col: &mut [f32],
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
    for (row, dst) in col.chunks_exact_mut(np).enumerate() {
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

/// An input layer's normalization, `(x - shift) * scale`, with `shift` and `scale` each
/// `[1, C, H, W]` (per pixel) or `[1, C, 1, 1]` (per channel): one parallel pass on plain Flex
/// tensors, the same operations in the same order as Burn's two (which are each a
/// single-threaded pass with its own output: SqueezeNet at batch 32, 4.3 -> 1.7 ms).
/// Elsewhere, Burn's ops.
pub fn normalize(x: Tensor<4>, shift: Tensor<4>, scale: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let fits = |t: &Tensor<4>| {
        let [one, tc, th, tw] = t.dims();
        one == 1 && tc == c && ([th, tw] == [h, w] || [th, tw] == [1, 1])
    };
    let fast = [&x, &shift, &scale].into_iter().all(is_plain_flex) && fits(&shift) && fits(&scale);
    if !fast {
        return (x - shift) * scale;
    }
    let device = x.device();
    let hw = h * w;
    let (x, shift, scale) = (Values::of(x), Values::of(shift), Values::of(scale));
    let per_pixel = |t: &Values| t.len() == c * hw && hw > 1;
    let (ps, pk) = (per_pixel(&shift), per_pixel(&scale));
    let mut out: Vec<f32> = Vec::with_capacity(n * c * hw);
    // Tasks: planes, or pieces of planes when there are few of them (a batch-1 RGB image is
    // three planes, which two threads split 2:1).
    let piece = if n * c < 4 * rayon::current_num_threads() {
        hw.div_ceil(4 * rayon::current_num_threads())
            .next_multiple_of(16)
    } else {
        hw
    }
    .max(1);
    out.spare_capacity_mut()[..n * c * hw]
        .par_chunks_mut(hw.max(1))
        .zip(x.par_chunks(hw.max(1)))
        .enumerate()
        .flat_map(|(i, (o, x))| {
            o.par_chunks_mut(piece)
                .zip(x.par_chunks(piece))
                .enumerate()
                .map(move |(j, (o, x))| (i, j * piece, o, x))
        })
        .for_each(|(i, at, o, x)| {
            let ch = i % c;
            let len = o.len();
            let s = if ps {
                &shift[ch * hw + at..][..len]
            } else {
                &shift[ch..ch + 1]
            };
            let k = if pk {
                &scale[ch * hw + at..][..len]
            } else {
                &scale[ch..ch + 1]
            };
            // One loop per case, so that each vectorizes.
            let xo = o.iter_mut().zip(x);
            match (ps, pk) {
                (true, true) => xo.zip(s.iter().zip(k)).for_each(|((o, &x), (&s, &k))| {
                    o.write((x - s) * k);
                }),
                (true, false) => xo.zip(s).for_each(|((o, &x), &s)| {
                    o.write((x - s) * k[0]);
                }),
                (false, true) => xo.zip(k).for_each(|((o, &x), &k)| {
                    o.write((x - s[0]) * k);
                }),
                (false, false) => xo.for_each(|(o, &x)| {
                    o.write((x - s[0]) * k[0]);
                }),
            }
        });
    // SAFETY: the chunks cover all n * c * hw elements, each written above.
    unsafe { out.set_len(n * c * hw) };
    Tensor::from_data(TensorData::new(out, [n, c, h, w]), &device)
}

/// True when `x` lives on the plain flex CPU device.
pub fn is_plain_flex<const D: usize>(x: &Tensor<D>) -> bool {
    let d = x.device();
    !d.is_autodiff() && d == Device::flex()
}

/// The sum of `xs` (in order) through a ReLU (NaN stays NaN, as Burn's), in one pass over
/// memory on plain Flex tensors of one shape, written in place into an input that nothing else
/// holds (a residual branch's output) when there is one: a residual block's addition and ReLU
/// as Burn ops read and write every activation twice more. Elsewhere, Burn's ops.
pub fn add_relu(xs: Vec<Tensor<4>>) -> Tensor<4> {
    let dims = xs[0].dims();
    if xs.len() < 2 || !xs.iter().all(|x| is_plain_flex(x) && x.dims() == dims) {
        let mut it = xs.into_iter();
        let first = it.next().expect("an addition has inputs");
        return burn::tensor::activation::relu(it.fold(first, |a, b| a + b));
    }
    use burn::backend::Flex;
    let total: usize = dims.iter().product();
    // d = relu(d + others...), in parallel chunks.
    let sum_relu = |d: &mut [f32], others: &[Values]| {
        const CHUNK: usize = 1 << 14;
        d.par_chunks_mut(CHUNK).enumerate().for_each(|(i, d)| {
            let at = i * CHUNK;
            for v in others {
                for (d, &s) in d.iter_mut().zip(&v[at..]) {
                    *d += s;
                }
            }
            for d in d.iter_mut() {
                // `|`, not `||`: no branch, so the loop vectorizes.
                *d = if d.is_nan() | (*d > 0.0) { *d } else { 0.0 };
            }
        });
    };
    let mut xs = xs;
    // With two inputs either may take the sum (a + b = b + a exactly); with more, the first,
    // to keep the order of the additions.
    let candidates = if xs.len() == 2 { 2 } else { 1 };
    for k in 0..candidates {
        let x = xs.remove(k);
        let Ok(mut t) = x.try_into_primitive::<Flex>() else {
            unreachable!("a plain Flex tensor converts to Flex's primitive");
        };
        if t.is_contiguous()
            && t.layout().start_offset() == 0
            && let Some(d) = t.try_storage_mut::<f32>()
            && d.len() >= total
        {
            let others: Vec<Values> = xs.into_iter().map(Values::of).collect();
            sum_relu(&mut d[..total], &others);
            return Tensor::from_primitive::<Flex>(t);
        }
        xs.insert(k, Tensor::from_primitive::<Flex>(t));
    }
    // Every input is shared: the sum goes into a copy of the first.
    let device = xs[0].device();
    let vals: Vec<Values> = xs.into_iter().map(Values::of).collect();
    let mut out = vals[0].to_vec();
    sum_relu(&mut out, &vals[1..]);
    Tensor::from_data(TensorData::new(out, dims), &device)
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

/// Zeroes `s` and returns it as floats (a chunk of a vector's spare capacity, zeroed by the
/// thread that then fills it).
pub(crate) fn zeroed(s: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    s.fill(std::mem::MaybeUninit::new(0.0));
    // SAFETY: every element was just initialised, and f32 has MaybeUninit<f32>'s layout.
    unsafe { &mut *(s as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
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

/// Concatenation of `[N, C_i, H, W]` tensors along the channels: each image's block of each
/// input is one contiguous copy.
pub fn concat_channels(xs: Vec<Tensor<4>>) -> Tensor<4> {
    let [n, _, h, w] = xs[0].dims();
    let device = xs[0].device();
    let chans: Vec<usize> = xs.iter().map(|t| t.dims()[1]).collect();
    if xs.iter().any(|t| {
        let [tn, _, th, tw] = t.dims();
        (tn, th, tw) != (n, h, w)
    }) {
        // Shapes that do not line up: Burn's op reports it.
        return Tensor::cat(xs, 1);
    }
    let ctot: usize = chans.iter().sum();
    let datas: Vec<Values> = xs.into_iter().map(Values::of).collect();
    let hw = h * w;
    let mut out = vec![0f32; n * ctot * hw];
    out.par_chunks_mut(ctot * hw)
        .enumerate()
        .for_each(|(img, o)| {
            let mut at = 0;
            for (d, &c) in datas.iter().zip(&chans) {
                o[at..at + c * hw].copy_from_slice(&d[img * c * hw..(img + 1) * c * hw]);
                at += c * hw;
            }
        });
    Tensor::from_data(TensorData::new(out, [n, ctot, h, w]), &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::PaddingConfig2d;
    use burn::nn::pool::MaxPool2dConfig;

    /// The largest `|a - b|` over two equally long slices.
    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    }

    /// The input normalization equals Burn's `(x - shift) * scale`, bit for bit, per pixel and
    /// per channel, NaN and infinities included.
    #[test]
    fn normalize_equals_burns() {
        let dev = Device::flex();
        let mut rng = crate::train::Rng::new(4);
        let mut mk = |dims: [usize; 4]| {
            let mut v: Vec<f32> = (0..dims.iter().product::<usize>())
                .map(|_| (rng.uniform() * 20.0 - 10.0) as f32)
                .collect();
            if v.len() > 5 {
                v[3] = f32::NAN;
                v[5] = f32::INFINITY;
            }
            Tensor::<4>::from_data(TensorData::new(v, dims), &dev)
        };
        // Whole planes as tasks, and (one image of 3 planes) pieces of planes, the last short.
        for [n, c, h, w] in [[3, 4, 5, 6], [1, 3, 37, 41]] {
            let x = mk([n, c, h, w]);
            for (shift, scale) in [
                ([1, c, h, w], [1, c, h, w]),
                ([1, c, 1, 1], [1, c, 1, 1]),
                ([1, c, h, w], [1, c, 1, 1]),
                ([1, c, 1, 1], [1, c, h, w]),
            ] {
                let (shift, scale) = (mk(shift), mk(scale));
                let want = (x.clone() - shift.clone()) * scale.clone();
                let got = normalize(x.clone(), shift, scale);
                assert_eq!(got.dims(), want.dims());
                let bits = |t: Tensor<4>| -> Vec<u32> {
                    let v = t.into_data().try_to_vec::<f32>().expect("f32");
                    v.iter()
                        .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
                        .collect()
                };
                assert_eq!(bits(got), bits(want));
            }
        }
    }

    #[test]
    fn concat_equals_burns() {
        let dev = Device::flex();
        let mk = |c: usize, seed: u64| {
            let mut rng = crate::train::Rng::new(seed);
            let v: Vec<f32> = (0..2 * c * 3 * 4).map(|_| rng.uniform() as f32).collect();
            Tensor::<4>::from_data(TensorData::new(v, [2, c, 3, 4]), &dev)
        };
        let xs = vec![mk(2, 1), mk(5, 2), mk(1, 3)];
        let want = Tensor::cat(xs.clone(), 1);
        let got = concat_channels(xs);
        assert_eq!(got.dims(), want.dims());
        let (got, want) = (got.into_data(), want.into_data());
        assert_eq!(got.try_to_vec::<f32>().ok(), want.try_to_vec::<f32>().ok());
    }

    /// Turns off the Winograd kernel's forcing when a test that set it ends, panicking or not
    /// (a harness with one thread runs the next test on the same thread).
    #[cfg(target_arch = "x86_64")]
    struct Unforce;

    #[cfg(target_arch = "x86_64")]
    impl Drop for Unforce {
        fn drop(&mut self) {
            super::super::winograd::FORCE.set(false);
        }
    }

    /// Uniform noise in [-1, 1) from `rng`.
    fn noise(rng: &mut crate::train::Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
    }

    /// `conv` with noise for weights (and bias, when `bias`), and a noise input of `dims`.
    fn randomized(
        mut conv: burn::nn::conv::Conv2d,
        bias: bool,
        dims: [usize; 4],
        rng: &mut crate::train::Rng,
        dev: &Device,
    ) -> (burn::nn::conv::Conv2d, Tensor<4>) {
        let wd = conv.weight.val().dims();
        conv.weight = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(noise(rng, wd.iter().product()), wd),
            dev,
        ));
        if bias {
            conv.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
                TensorData::new(noise(rng, wd[0]), [wd[0]]),
                dev,
            )));
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(noise(rng, dims.iter().product()), dims),
            dev,
        );
        (conv, x)
    }

    /// A max pooling fused into the convolution before it equals the convolution, its ReLU and
    /// Burn's max pooling one after the other: strides 1 and 2, 1x1 (read in place), 3x3 and
    /// 7x7 kernels, symmetric and asymmetric pooling padding, partial sums over 300 input
    /// channels, batch 1 (runs of bands, rows carried from band to band) and 3, bands of a
    /// few rows and of whole images; and where Winograd computes the convolution, the
    /// pooling after it.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn fused_max_pool_equals_conv_then_pool() {
        use burn::nn::conv::Conv2dConfig;
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                FUSE_ALWAYS.set(false);
                super::super::direct::BAND_BYTES.set(None);
                super::super::winograd::FORCE.set(false);
            }
        }
        let _reset = Reset;
        let dev = Device::flex();
        let mut rng = crate::train::Rng::new(33);
        // (n, cin, h, w, cout, k, stride, conv padding, groups, pool k, pool s, pool [t, b, l,
        // r])
        #[rustfmt::skip]
        let cases = [
            (1, 3, 47, 45, 8, 3, 2, [0, 0, 0, 0], 1, 3, 2, [0, 0, 0, 0]),
            (3, 3, 31, 29, 13, 7, 2, [3, 3, 3, 3], 1, 3, 2, [1, 1, 1, 1]),
            (1, 5, 30, 26, 7, 1, 1, [0, 0, 0, 0], 1, 2, 2, [0, 0, 0, 0]),
            (2, 6, 27, 28, 9, 3, 1, [1, 1, 1, 1], 1, 3, 2, [0, 1, 0, 1]),
            (1, 300, 13, 11, 4, 3, 1, [1, 1, 1, 1], 1, 3, 1, [1, 1, 1, 1]),
            (1, 4, 40, 9, 6, 3, 2, [1, 0, 1, 0], 1, 2, 3, [1, 0, 0, 1]),
            // Two groups of 3 input and 7 output channels each.
            (2, 6, 23, 21, 14, 3, 2, [1, 1, 1, 1], 2, 3, 2, [0, 1, 0, 1]),
        ];
        for (n, cin, h, w, cout, k, st, [t, b, l, r], groups, pk, ps, [pt, pb, pl, pr]) in cases {
            let conv = Conv2dConfig::new([cin, cout], [k, k])
                .with_groups(groups)
                .with_stride([st, st])
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .init(&dev);
            let (conv, x) = randomized(conv, true, [n, cin, h, w], &mut rng, &dev);
            let pool = MaxPool2dConfig::new([pk, pk])
                .with_strides([ps, ps])
                .with_padding(PaddingConfig2d::Explicit(pt, pl, pb, pr))
                .init();
            for (relu, band, wino) in [
                (true, Some(1), false),
                (false, Some(3000), false),
                (true, None, false),
                (true, None, true),
            ] {
                let y = conv.forward(x.clone());
                let y = if relu {
                    burn::tensor::activation::relu(y)
                } else {
                    y
                };
                let want: Vec<f32> = pool.forward(y).into_data().try_to_vec().expect("f32");
                let mut f = FastConv::new(conv.clone()).expect("supported");
                f.relu = relu;
                f.pool = Some((
                    Pool {
                        k: [pk, pk],
                        s: [ps, ps],
                        pad: [pt, pb, pl, pr],
                    },
                    pool.clone(),
                ));
                FUSE_ALWAYS.set(true);
                super::super::direct::BAND_BYTES.set(band);
                super::super::winograd::FORCE.set(wino);
                let got = conv2d(x.clone(), &f);
                let got: Vec<f32> = got.into_data().try_to_vec().expect("f32");
                assert_eq!(got.len(), want.len(), "case {cin} {k} {st}");
                let err = max_diff(&got, &want);
                assert!(
                    err < 1e-4,
                    "case n {n} cin {cin} k {k} stride {st} pool {pk}/{ps} relu {relu} band {band:?}: {err}"
                );
            }
        }
    }

    /// An unpadded stride-1 input is read in place, the last image's last blocks under the
    /// valid lanes' masks: with the input ending right before an inaccessible page, a full
    /// vector read past its end would fault. The results equal Burn's.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn in_place_reads_stay_inside_the_input() {
        use burn::nn::conv::Conv2dConfig;
        if !super::super::direct::available() {
            return;
        }
        let dev = Device::flex();
        let mut rng = crate::train::Rng::new(21);
        // (n, cin, h, w, cout, k): a 1x1 kernel over 3025 positions (a last block of one
        // vector); 3x3 over 8 x 13 positions (the last block's vectors pass the end); 3x3
        // over 5 x 13 = 65 positions, where the first block's last vector, of invalid
        // positions only, would also read one float past the end.
        let cases = [
            (1, 3, 55, 55, 7, 1),
            (2, 4, 10, 13, 5, 3),
            (1, 2, 7, 13, 3, 3),
            (3, 130, 7, 13, 4, 3),
        ];
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        for (n, cin, h, w, cout, k) in cases {
            let conv = Conv2dConfig::new([cin, cout], [k, k])
                .with_padding(PaddingConfig2d::Explicit(0, 0, 0, 0))
                .init(&dev);
            let (conv, x) = randomized(conv, true, [n, cin, h, w], &mut rng, &dev);
            let want: Vec<f32> = conv
                .forward(x.clone())
                .into_data()
                .try_to_vec()
                .expect("f32");
            let xv: Vec<f32> = x.into_data().try_to_vec().expect("f32");
            // The input at the very end of readable pages, an inaccessible page after them.
            let bytes = xv.len() * 4;
            let len = bytes.next_multiple_of(page) + page;
            // SAFETY: an anonymous private mapping of `len` bytes, checked below; its last
            // page made inaccessible; the slice lies inside the readable pages; unmapped at
            // the end.
            unsafe {
                let base = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(base, libc::MAP_FAILED);
                let guard = base.cast::<u8>().add(len - page);
                assert_eq!(libc::mprotect(guard.cast(), page, libc::PROT_NONE), 0);
                let at = guard.sub(bytes).cast::<f32>();
                std::ptr::copy_nonoverlapping(xv.as_ptr(), at, xv.len());
                let xs = std::slice::from_raw_parts(at, xv.len());
                let f = FastConv::new(conv.clone()).expect("supported");
                let geo = f.geometry([n, cin, h, w]);
                let [oh, ow] = geo.output();
                let packed = super::super::direct::Packed::new(
                    &conv
                        .weight
                        .val()
                        .into_data()
                        .try_to_vec::<f32>()
                        .expect("f32"),
                    cout,
                    cin,
                    k * k,
                    1,
                );
                let bias: Vec<f32> = conv
                    .bias
                    .as_ref()
                    .expect("bias")
                    .val()
                    .into_data()
                    .try_to_vec()
                    .expect("f32");
                let mut got = vec![0f32; n * cout * oh * ow];
                super::super::direct::conv2d_into(
                    xs,
                    &geo,
                    &packed,
                    Some(&bias),
                    false,
                    None,
                    None,
                    super::super::direct::Out {
                        ptr: got.as_mut_ptr(),
                        channels: cout,
                        offset: 0,
                    },
                );
                libc::munmap(base, len);
                let err = max_diff(&got, &want);
                assert!(err < 1e-4, "case {n} {cin} {h} {w} {k}: {err}");
            }
        }
    }

    /// The convolution kernel equals Burn's, over strides, asymmetric and large paddings,
    /// dilations, groups, 1x1 and whole-input kernels, with and without bias, batch 1 to 5, and
    /// tile sizes.
    #[test]
    fn conv_equals_burns() {
        use burn::nn::conv::Conv2dConfig;
        let dev = Device::flex();
        let mut rng = crate::train::Rng::new(9);
        // (n, cin, h, w, cout, k, stride, [t, b, l, r], dilation, groups, bias)
        #[rustfmt::skip]
        let cases = [
            // Several position blocks and channel blocks with a remainder (13 = 6 + 6 + 1).
            (2, 5, 20, 23, 13, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
            (1, 16, 9, 14, 7, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
            // Stride 2 and 3 with dilation, asymmetric padding and groups (stride phases).
            (3, 6, 17, 15, 8, [5, 3], [2, 3], [2, 1, 0, 3], [2, 1], 2, true),
            (2, 4, 31, 29, 70, [7, 7], [2, 2], [3, 3, 3, 3], [1, 1], 1, true),
            // Unpadded stride 1: the input read in place, but for the last images.
            (6, 40, 9, 11, 7, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
            (5, 8, 7, 9, 6, [3, 2], [1, 1], [0, 0, 0, 0], [1, 1], 2, false),
            // Rows wide enough for the vectorised stride-2 split (32 columns at a time plus
            // a tail), with even and odd left padding.
            (2, 3, 9, 71, 8, [3, 3], [2, 2], [0, 0, 0, 0], [1, 1], 1, true),
            (1, 3, 7, 66, 5, [3, 3], [2, 2], [1, 2, 1, 0], [1, 1], 1, true),
            // 1x1 with stride 2: one stride phase stored, the row's even columns (no left
            // padding) or odd ones (left padding 1), 32 at a time plus tails of 6, 2 and 0.
            (2, 3, 5, 70, 4, [1, 1], [2, 2], [0, 0, 0, 0], [1, 1], 1, true),
            (1, 2, 6, 66, 3, [1, 1], [2, 2], [1, 0, 1, 0], [1, 1], 1, true),
            (1, 2, 4, 64, 3, [1, 1], [2, 2], [0, 1, 1, 0], [1, 1], 1, false),
            // 1x1 over exactly 64 positions: every image, the last included, read in place.
            (3, 5, 8, 8, 7, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
            // More input channels than one pass of the direct kernel takes (partial sums).
            (2, 300, 6, 7, 9, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
            (1, 3, 9, 8, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
            (
                5,
                4,
                7,
                9,
                6,
                [3, 2],
                [2, 1],
                [0, 1, 1, 0],
                [1, 1],
                2,
                false,
            ),
            (2, 2, 2, 2, 3, [7, 7], [1, 1], [3, 3, 3, 3], [1, 1], 1, true),
            (1, 6, 5, 5, 4, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
            (2, 3, 4, 4, 5, [4, 4], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
            // Whole-input kernels at batch 1 (the AVX-512 gemv): 105 and 50 inputs (tails of
            // 9 and 18 after the 32-float steps), 10 and 6 outputs (a last group of 2).
            (1, 3, 5, 7, 10, [5, 7], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
            (1, 2, 5, 5, 6, [5, 5], [1, 1], [0, 0, 0, 0], [1, 1], 1, false),
            (1, 2, 9, 9, 2, [3, 3], [1, 2], [2, 2, 2, 2], [2, 2], 1, true),
            (5, 4, 6, 6, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 4, true),
            (
                3,
                5,
                11,
                13,
                7,
                [3, 3],
                [2, 2],
                [1, 1, 1, 1],
                [1, 1],
                1,
                true,
            ),
            (
                1,
                3,
                12,
                10,
                5,
                [1, 1],
                [2, 2],
                [0, 0, 0, 0],
                [1, 1],
                1,
                false,
            ),
            (
                4,
                3,
                3,
                3,
                9,
                [3, 3],
                [1, 1],
                [0, 0, 0, 0],
                [1, 1],
                1,
                false,
            ),
        ];
        for (n, cin, h, w, cout, k, s, [t, b, l, r], d, g, bias) in cases {
            let conv = Conv2dConfig::new([cin, cout], k)
                .with_stride(s)
                .with_dilation(d)
                .with_groups(g)
                .with_bias(bias)
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .init(&dev);
            let (conv, x) = randomized(conv, bias, [n, cin, h, w], &mut rng, &dev);
            let want = conv.forward(x.clone());
            // Tiles of the chosen size, of one pixel, and of sizes that cut output rows; one
            // kernel for all, so that its weights change form (packed, rows) between calls.
            let mut f = FastConv::new(conv.clone()).expect("supported");
            for (relu, tile) in [
                (false, None),
                (true, None),
                (true, Some(1)),
                (false, None),
                (false, Some(7)),
            ] {
                f.relu = relu;
                let got = conv2d_tiled(x.clone(), &f, tile, None);
                assert_eq!(got.dims(), want.dims(), "case {cin} {k:?} {s:?}");
                let want = if relu {
                    burn::tensor::activation::relu(want.clone())
                } else {
                    want.clone()
                };
                let (a, b) = (
                    got.into_data().try_to_vec::<f32>().unwrap_or_default(),
                    want.into_data().try_to_vec::<f32>().unwrap_or_default(),
                );
                let diff = a
                    .iter()
                    .zip(&b)
                    .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                // Relative to the largest output: sums of up to 200 terms differ in rounding.
                let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
                assert!(!a.is_empty() && a.len() == b.len());
                assert!(
                    diff < 1e-6 * scale * 10.0,
                    "case {cin} {k:?} {s:?} {d:?} g{g} tile {tile:?}: {diff}"
                );
            }
        }
    }

    /// The Winograd kernel equals Burn's convolution: odd and even output sizes (tiles half
    /// outside), asymmetric and no padding, blocks of tiles across rows and images, input
    /// channels over one chunk, output channels over one run (and a remainder block), with and
    /// without bias and ReLU, into a concatenation at a channel offset.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn winograd_equals_burns() {
        use burn::nn::conv::Conv2dConfig;
        if !super::super::direct::available() {
            return;
        }
        let dev = Device::flex();
        // Small shapes: the kernel is forced on them (the rule measured for speed would leave
        // most of them to the direct kernel).
        super::super::winograd::FORCE.set(true);
        let _unforce = Unforce;
        let mut rng = crate::train::Rng::new(17);
        // (n, cin, h, w, cout, [t, b, l, r], bias)
        let cases = [
            // Enough blocks for every thread: each task transforms its block's inputs.
            (4, 8, 20, 23, 13, [1, 1, 1, 1], true),
            // Few blocks: the inputs transformed once, shared by the tasks of a block (one
            // with two chunks of input channels and two runs of output channels).
            (3, 16, 7, 7, 8, [1, 1, 1, 1], false),
            (1, 9, 11, 38, 7, [0, 2, 1, 0], true),
            (3, 12, 14, 11, 20, [0, 0, 0, 0], true),
            (3, 150, 9, 10, 140, [1, 1, 1, 1], true),
            (4, 32, 14, 14, 64, [1, 1, 1, 1], false),
            (1, 8, 5, 40, 6, [2, 0, 0, 2], true),
            // Rows of more than 16 tiles: the first vector's 32 columns are all stored.
            (2, 16, 6, 56, 9, [1, 1, 1, 1], true),
            (1, 8, 5, 67, 7, [1, 1, 0, 0], false),
        ];
        for (n, cin, h, w, cout, [t, b, l, r], bias) in cases {
            let conv = Conv2dConfig::new([cin, cout], [3, 3])
                .with_bias(bias)
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .init(&dev);
            let (conv, x) = randomized(conv, bias, [n, cin, h, w], &mut rng, &dev);
            let mut f = FastConv::new(conv.clone()).expect("supported");
            let geo = f.geometry([n, cin, h, w]);
            assert!(
                super::super::winograd::applies(&geo),
                "case {n} {cin} {h}x{w}"
            );
            let case = format!("case {n} {cin} {h}x{w} {cout} pad {t} {b} {l} {r}");
            for relu in [false, true] {
                f.relu = relu;
                let want = conv.forward(x.clone());
                let want = if relu {
                    burn::tensor::activation::relu(want)
                } else {
                    want
                };
                let want = want.into_data().try_to_vec::<f32>().unwrap_or_default();
                let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
                let close = |got: &[f32], what: &str| {
                    assert_eq!(got.len(), want.len(), "{case} {what}");
                    let diff = got
                        .iter()
                        .zip(&want)
                        .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                    assert!(diff < 1e-5 * scale, "{case} relu {relu} {what}: {diff}");
                };
                let got = conv2d(x.clone(), &f);
                close(
                    &got.into_data().try_to_vec::<f32>().unwrap_or_default(),
                    "alone",
                );
                // Into channels 3.. of a concatenation with 3 + cout + 2 channels, between two
                // other parts (the direct kernel's, an unpadded 1x1 of the same output size
                // where the padding allows).
                let mut buf = None;
                let [oh, ow] = geo.output();
                let filler = |c: usize, v: f32| {
                    Tensor::<4>::from_data(
                        TensorData::new(vec![v; n * c * oh * ow], [n, c, oh, ow]),
                        &dev,
                    )
                };
                let one = |c: usize| {
                    let mut k = Conv2dConfig::new([c, c], [1, 1])
                        .with_bias(false)
                        .init(&dev);
                    let mut eye = vec![0f32; c * c];
                    (0..c).for_each(|i| eye[i * c + i] = 1.0);
                    k.weight = burn::module::Param::from_tensor(Tensor::from_data(
                        TensorData::new(eye, [c, c, 1, 1]),
                        &dev,
                    ));
                    FastConv::new(k).expect("supported")
                };
                conv2d_part(filler(3, 7.0), &one(3), &mut buf, 0, 3 + cout + 2);
                conv2d_part(x.clone(), &f, &mut buf, 3, 3 + cout + 2);
                conv2d_part(filler(2, -4.0), &one(2), &mut buf, 3 + cout, 3 + cout + 2);
                let all = buf
                    .expect("filled")
                    .into_tensor(&dev)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
                let plane = oh * ow;
                let mut mid = Vec::new();
                for img in all.chunks_exact((3 + cout + 2) * plane) {
                    assert!(img[..3 * plane].iter().all(|&v| v == 7.0), "{case}");
                    assert!(
                        img[(3 + cout) * plane..].iter().all(|&v| v == -4.0),
                        "{case}"
                    );
                    mid.extend_from_slice(&img[3 * plane..(3 + cout) * plane]);
                }
                close(&mid, "concatenated");
            }
        }
    }

    /// A convolution plus a residual (added by the kernels as they store) equals the
    /// convolution, then the addition, then the ReLU: on the Winograd kernel, the direct one
    /// (3x3 stride 2; more input channels than one chunk, where the residual must enter once;
    /// 1x1 read in place), and the fallbacks (a whole-input kernel; a residual of another
    /// shape, broadcast by Burn).
    #[test]
    fn conv_add_equals_conv_then_add() {
        use burn::nn::conv::Conv2dConfig;
        let dev = Device::flex();
        let mut rng = crate::train::Rng::new(23);
        // (n, cin, h, w, cout, k, stride, pad)
        let cases = [
            (4, 16, 18, 17, 20, 3, 1, 1),
            (2, 6, 11, 13, 9, 3, 2, 1),
            (2, 300, 5, 6, 8, 3, 1, 1),
            (3, 8, 8, 8, 7, 1, 1, 0),
            (2, 3, 4, 5, 6, 0, 1, 0),
        ];
        #[cfg(target_arch = "x86_64")]
        let _unforce = Unforce;
        for (i, (n, cin, h, w, cout, k, s, p)) in cases.into_iter().enumerate() {
            // The first on the Winograd kernel, the others on the direct one.
            #[cfg(target_arch = "x86_64")]
            super::super::winograd::FORCE.set(i == 0);
            // k == 0: a kernel over the whole input.
            let kk = if k == 0 { [h, w] } else { [k, k] };
            let conv = Conv2dConfig::new([cin, cout], kk)
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init(&dev);
            let (conv, x) = randomized(conv, true, [n, cin, h, w], &mut rng, &dev);
            let [_, _, oh, ow] = conv.forward(x.clone()).dims();
            let mut res = noise(&mut rng, n * cout * oh * ow);
            res[3] = f32::NAN;
            let r = Tensor::<4>::from_data(TensorData::new(res, [n, cout, oh, ow]), &dev);
            // The same residual, one value per channel, broadcast over the planes.
            let rc = Tensor::<4>::from_data(
                TensorData::new(noise(&mut rng, cout), [1, cout, 1, 1]),
                &dev,
            );
            for (relu, r) in [(true, r.clone()), (false, r), (true, rc)] {
                let mut f = FastConv::new(conv.clone()).expect("supported");
                f.relu = relu;
                let sum = conv.forward(x.clone()) + r.clone();
                let want = if relu {
                    burn::tensor::activation::relu(sum)
                } else {
                    sum
                };
                let want = want.into_data().try_to_vec::<f32>().unwrap_or_default();
                let got = conv2d_add(x.clone(), r, &f)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
                assert_eq!(got.len(), want.len());
                let scale = want
                    .iter()
                    .fold(1f32, |m, v| if v.is_nan() { m } else { m.max(v.abs()) });
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-5 * scale,
                        "case {cin} {kk:?} s{s} relu {relu}, element {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// A fully connected layer stored as the import stores it (`[out, in]` rows seen through a
    /// transposed view) equals Burn's matmul plus bias: batch 1 (the AVX-512 gemv, with 105 and
    /// 50 inputs for its tails), runs of images (10 outputs at batch 32: fewer output runs than
    /// threads), many outputs, one input, one output; weights stored `[in, out]`, mismatched
    /// shapes and batches over few inputs are left to Burn (`None`).
    #[test]
    fn linear_equals_burns() {
        let dev = Device::flex();
        let mut rng = crate::train::Rng::new(8);
        let mut mk = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
                .collect()
        };
        for (n, kk, cout) in [
            (1, 105, 37),
            (1, 50, 10),
            (3, 260, 17),
            (32, 3136, 10),
            (1, 1, 5),
            (5, 300, 1),
            (2, 300, 200),
        ] {
            let rows = Tensor::<2>::from_data(TensorData::new(mk(cout * kk), [cout, kk]), &dev);
            let w = rows.transpose();
            let x = Tensor::<2>::from_data(TensorData::new(mk(n * kk), [n, kk]), &dev);
            let b = Tensor::<1>::from_data(TensorData::new(mk(cout), [cout]), &dev);
            for bias in [None, Some(&b)] {
                let mut want = x.clone().matmul(w.clone());
                if let Some(b) = bias {
                    want = want + b.clone().unsqueeze_dim(0);
                }
                let want: Vec<f32> = want.into_data().try_to_vec().expect("f32");
                let got = linear(&x, &w, bias).expect("rows: our kernel");
                assert_eq!(got.dims(), [n, cout]);
                let got: Vec<f32> = got.into_data().try_to_vec().expect("f32");
                let err = max_diff(&got, &want);
                assert!(err < 1e-4, "{n} {kk} {cout}: {err}");
            }
            // Stored [in, out] (contiguous): Burn's op.
            let contiguous = Tensor::<2>::from_data(w.clone().into_data(), &dev);
            if kk > 1 && cout > 1 {
                assert!(linear(&x, &contiguous, Some(&b)).is_none());
            }
            // Shapes that disagree: Burn's op (which reports them).
            let wider =
                Tensor::<2>::from_data(TensorData::new(mk(cout * (kk + 1)), [cout, kk + 1]), &dev);
            assert!(linear(&x, &wider.transpose(), Some(&b)).is_none());
        }
        // A batch over few inputs (a sequence network's per-step layer): Burn's op.
        let w = Tensor::<2>::from_data(TensorData::new(mk(5 * 100), [5, 100]), &dev).transpose();
        let x = Tensor::<2>::from_data(TensorData::new(mk(7 * 100), [7, 100]), &dev);
        assert!(linear(&x, &w, None).is_none());
    }

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
            let mut rng = crate::train::Rng::new(3);
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
