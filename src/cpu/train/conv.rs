//! 2-D convolution with its own backward pass.

use super::{AdTensor, dense, flex, plain, tracked, unplain, values, wrap};
use crate::cpu::conv::{FastConv, Geometry, im2col_strided};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;

/// A convolution's configuration and the sizes of one call (`pad` is `[top, bottom, left,
/// right]`).
pub(super) type Spec = Geometry;

impl Spec {
    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }

    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }

    /// Rows of the column matrix of one group: `Cin/groups * kh * kw`.
    fn kk(&self) -> usize {
        self.cin_g() * self.k[0] * self.k[1]
    }

    /// The inference engine's convolution with these weights.
    fn fast(&self, weight: Vec<f32>, bias: Option<Vec<f32>>) -> FastConv {
        FastConv::from_rows(
            weight,
            bias,
            self.cout,
            self.cin_g(),
            self.k,
            self.stride,
            self.pad,
            self.dilation,
            self.groups,
        )
    }

    /// A 1x1 kernel at stride 1 without padding: the input is its own column matrix.
    fn pointwise(&self) -> bool {
        self.k == [1, 1] && self.stride == [1, 1] && self.pad == [0; 4]
    }
}

/// `c` applied to `x` on the autodiff Flex device with this module's backward; `None` where
/// that does not apply: another device, 'same' padding (resolved per input by Burn), no bias,
/// or an input too small for the kernel (Burn's op then reports it).
pub fn conv2d(c: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    conv(c, x, false)
}

/// [`conv2d`] followed by a ReLU, fused into the kernel's output; the backward pass masks the
/// output gradient with the output it kept.
pub fn conv2d_relu(c: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    conv(c, x, true)
}

fn conv(c: &Conv2d, x: &Tensor<4>, relu: bool) -> Option<Tensor<4>> {
    let pad = match c.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => [t, b, l, r],
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => return None,
    };
    let bias = c.bias.as_ref()?;
    let x = tracked(x)?;
    let w = tracked(&c.weight.val())?;
    let b = tracked(&bias.val())?;
    let [n, cin, h, wd] = x.primitive().shape().dims();
    let [cout, cin_g, kh, kw] = w.primitive().shape().dims();
    let spec = Spec {
        n,
        cin,
        h,
        w: wd,
        cout,
        groups: c.groups,
        k: [kh, kw],
        stride: c.stride,
        pad,
        dilation: c.dilation,
    };
    let [t, bo, l, r] = pad;
    if c.groups == 0
        || cin != cin_g * c.groups
        || !cout.is_multiple_of(c.groups)
        || c.stride.contains(&0)
        || c.dilation.contains(&0)
        || h + t + bo < c.dilation[0] * (kh - 1) + 1
        || wd + l + r < c.dilation[1] * (kw - 1) + 1
    {
        return None;
    }
    Some(wrap(forward(x, w, b, spec, relu)))
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    /// The input, the weights, the sizes and, with a ReLU, the output.
    type State = (FlexTensor, FlexTensor, Spec, Option<FlexTensor>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (x, w, spec, relu_out) = ops.state;
        // Through the ReLU: the gradient where the output is positive. Without an input
        // gradient to compute (a first layer), the weight gradient masks as it reads.
        let (dy, gate) = match relu_out {
            Some(y) if node_x.is_some() => (
                flex(mask(values(&dy), values(&y)), &y.shape().dims::<4>()),
                None,
            ),
            gate => (dy, gate),
        };
        if let Some(node) = node_x {
            let dx = input_grad(&dy, values(&w), &spec);
            grads.register::<Flex>(node.id, dx);
        }
        if node_w.is_some() || node_b.is_some() {
            let (dw, db) = weight_grad(
                values(&x),
                values(&dy),
                gate.as_ref().map(values),
                &spec,
                node_w.is_some(),
            );
            if let Some(node) = node_w {
                let [kh, kw] = spec.k;
                grads.register::<Flex>(node.id, flex(dw, &[spec.cout, spec.cin_g(), kh, kw]));
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, flex(db, &[spec.cout]));
            }
        }
    }
}

fn forward(x: AdTensor, w: AdTensor, b: AdTensor, spec: Spec, relu: bool) -> AdTensor {
    let prep = ConvBackward
        .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
        .compute_bound()
        .stateful();
    let xv = dense(x.into_primitive());
    let wv = dense(w.into_primitive());
    let bv = values(&dense(b.into_primitive())).to_vec();
    let mut f = spec.fast(values(&wv).to_vec(), Some(bv));
    f.relu = relu;
    let y = unplain(crate::cpu::conv2d(plain(xv.clone()), &f));
    match prep {
        OpsKind::Tracked(prep) => {
            let kept = relu.then(|| y.clone());
            prep.finish((xv, wv, spec, kept), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// `dy` where `y > 0`, else 0 (a ReLU's backward pass given its output).
pub(super) fn mask(dy: &[f32], y: &[f32]) -> Vec<f32> {
    const CHUNK: usize = 1 << 14;
    super::written(dy.len(), |out| {
        out.par_chunks_mut(CHUNK)
            .zip(dy.par_chunks(CHUNK))
            .zip(y.par_chunks(CHUNK))
            .for_each(|((o, g), y)| {
                let n = o.len();
                let (g, y) = (&g[..n], &y[..n]);
                for i in 0..n {
                    o[i].write(if y[i] > 0.0 { g[i] } else { 0.0 });
                }
            })
    })
}

/// The gradient of the input, `[N, Cin, H, W]`.
fn input_grad(dy: &FlexTensor, w: &[f32], s: &Spec) -> FlexTensor {
    let [kh, kw] = s.k;
    let [t, b, l, r] = s.pad;
    if s.stride == [1, 1] && s.dilation == [1, 1] && t < kh && b < kh && l < kw && r < kw {
        // At stride 1 the input gradient is a convolution of the output gradient ("full"
        // padding less the forward's) with the weights flipped in space and their channel axes
        // swapped within each group: the inference kernels compute it.
        let (g, cin_g, cout_g) = (s.groups, s.cin_g(), s.cout_g());
        let taps = kh * kw;
        let mut flipped = vec![0f32; w.len()];
        for gi in 0..g {
            for co in 0..cout_g {
                for ci in 0..cin_g {
                    let src = &w[((gi * cout_g + co) * cin_g + ci) * taps..][..taps];
                    let dst = &mut flipped[((gi * cin_g + ci) * cout_g + co) * taps..][..taps];
                    for (d, v) in dst.iter_mut().zip(src.iter().rev()) {
                        *d = *v;
                    }
                }
            }
        }
        let [oh, ow] = s.output();
        let back = Spec {
            n: s.n,
            cin: s.cout,
            h: oh,
            w: ow,
            cout: s.cin,
            groups: g,
            k: s.k,
            stride: [1, 1],
            pad: [kh - 1 - t, kh - 1 - b, kw - 1 - l, kw - 1 - r],
            dilation: [1, 1],
        };
        debug_assert_eq!(back.output(), [s.h, s.w]);
        let f = back.fast(flipped, None);
        return unplain(crate::cpu::conv2d(plain(dy.clone()), &f));
    }
    flex(input_grad_col2im(values(dy), w, s), &[s.n, s.cin, s.h, s.w])
}

/// The input gradient of any convolution: for each image and group the column matrix's
/// gradient `W_gᵀ dY_g` (one gemm), added back onto the input positions it was read from.
pub(super) fn input_grad_col2im(dy: &[f32], w: &[f32], s: &Spec) -> Vec<f32> {
    let [oh, ow] = s.output();
    let npix = oh * ow;
    let (g, cin_g, cout_g, kk) = (s.groups, s.cin_g(), s.cout_g(), s.kk());
    let plane = s.h * s.w;
    let mut dx = vec![0f32; s.n * s.cin * plane];
    dx.par_chunks_mut(s.cin * plane).enumerate().for_each_init(
        Vec::new,
        |col: &mut Vec<f32>, (img, dxi)| {
            col.resize(kk * npix, 0.0);
            for gi in 0..g {
                let wg = &w[gi * cout_g * kk..(gi + 1) * cout_g * kk];
                let dyg = &dy[(img * s.cout + gi * cout_g) * npix..][..cout_g * npix];
                // SAFETY: col is [kk, npix] row-major; wgᵀ is [kk, cout_g] (wg is [cout_g, kk]
                // row-major: column stride kk, row stride 1); dyg is [cout_g, npix] row-major.
                unsafe {
                    gemm::gemm(
                        kk,
                        npix,
                        cout_g,
                        col.as_mut_ptr(),
                        1,
                        npix as isize,
                        false,
                        wg.as_ptr(),
                        kk as isize,
                        1,
                        dyg.as_ptr(),
                        1,
                        npix as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                col2im_add(
                    col,
                    &mut dxi[gi * cin_g * plane..(gi + 1) * cin_g * plane],
                    s,
                );
            }
        },
    );
    dx
}

/// Adds the column matrix `col` (`[cin_g * kh * kw, oh * ow]`) onto the positions of one
/// group's input planes (`[cin_g, h, w]`) that im2col reads each entry from.
fn col2im_add(col: &[f32], dx: &mut [f32], s: &Spec) {
    let [kh, kw] = s.k;
    let [t, _, l, _] = s.pad;
    let [sh, sw] = s.stride;
    let [dh, dw] = s.dilation;
    let [oh, ow] = s.output();
    let (h, w) = (s.h, s.w);
    for (row, src) in col.chunks_exact(oh * ow).enumerate() {
        let c = row / (kh * kw);
        let ky = (row / kw) % kh;
        let kx = row % kw;
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for oy in 0..oh {
            let iy = (oy * sh + ky * dh) as isize - t as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
            let srow = &src[oy * ow..(oy + 1) * ow];
            for (ox, v) in srow.iter().enumerate() {
                let ix = (ox * sw + kx * dw) as isize - l as isize;
                if ix >= 0 && (ix as usize) < w {
                    dst[ix as usize] += v;
                }
            }
        }
    }
}

/// Floats of the column matrices one weight-gradient gemm takes: several images side by side
/// (a deeper gemm: on 7x7 outputs, one image per gemm spent more time reading and writing the
/// gradient than multiplying), within a core's L2 cache.
const COL_FLOATS: usize = 256 * 1024;

/// The gradients of the weights (`[Cout, Cin/groups * kh * kw]`, empty unless `weights`) and
/// of the bias, from the output gradient `dy` (zero where `gate`, a ReLU's output, is not
/// positive): `dW_g += dY_g colᵀ` for each group, over blocks of images whose column matrices
/// (and output gradients) are put side by side, runs of images in parallel (one accumulator per
/// run, summed at the end).
pub(super) fn weight_grad(
    x: &[f32],
    dy: &[f32],
    gate: Option<&[f32]>,
    s: &Spec,
    weights: bool,
) -> (Vec<f32>, Vec<f32>) {
    let [oh, ow] = s.output();
    let npix = oh * ow;
    let (g, cin_g, cout_g, kk) = (s.groups, s.cin_g(), s.cout_g(), s.kk());
    let plane = s.h * s.w;
    let runs = rayon::current_num_threads().max(1).min(s.n.max(1));
    let wlen = if weights { s.cout * kk } else { 0 };
    let pointwise = s.pointwise();
    let fconv = s.fast(Vec::new(), None);
    let block = (COL_FLOATS / (kk * npix).max(1)).clamp(1, s.n.div_ceil(runs).max(1));
    let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..runs)
        .into_par_iter()
        .map(|run| {
            let mut dw = vec![0f32; wlen];
            let mut db = vec![0f32; s.cout];
            let mut col = if weights {
                vec![0f32; kk * block * npix]
            } else {
                Vec::new()
            };
            let mut dyb = vec![0f32; cout_g * block * npix];
            let (i0, i1) = (run * s.n / runs, (run + 1) * s.n / runs);
            for b0 in (i0..i1).step_by(block) {
                let b1 = (b0 + block).min(i1);
                let cols = (b1 - b0) * npix;
                for gi in 0..g {
                    for (j, img) in (b0..b1).enumerate() {
                        // This image's output gradient rows of the group, side by side with
                        // the block's other images (masked by the gate), and their sums.
                        let at = (img * s.cout + gi * cout_g) * npix;
                        let dyg = &dy[at..at + cout_g * npix];
                        for co in 0..cout_g {
                            let src = &dyg[co * npix..(co + 1) * npix];
                            let dst = &mut dyb[co * cols + j * npix..][..npix];
                            match gate {
                                Some(y) => {
                                    let y = &y[at + co * npix..][..npix];
                                    for i in 0..npix {
                                        dst[i] = if y[i] > 0.0 { src[i] } else { 0.0 };
                                    }
                                }
                                None => dst.copy_from_slice(src),
                            }
                            db[gi * cout_g + co] += sum(dst);
                        }
                        if !weights {
                            continue;
                        }
                        let xg = &x[(img * s.cin + gi * cin_g) * plane..][..cin_g * plane];
                        if pointwise {
                            for (r, src) in xg.chunks_exact(npix).enumerate() {
                                col[r * cols + j * npix..][..npix].copy_from_slice(src);
                            }
                        } else {
                            im2col_strided(
                                xg,
                                &mut col[j * npix..],
                                kk,
                                cols,
                                s.h,
                                s.w,
                                &fconv,
                                ow,
                                0,
                                npix,
                            );
                        }
                    }
                    if !weights {
                        continue;
                    }
                    let dwg = &mut dw[gi * cout_g * kk..(gi + 1) * cout_g * kk];
                    // SAFETY: dwg is [cout_g, kk] row-major; dyb holds [cout_g, cols] with row
                    // stride cols; col holds the column matrices [kk, cols] (row stride cols),
                    // read as their transpose [cols, kk] (column stride cols, row stride 1).
                    unsafe {
                        gemm::gemm(
                            cout_g,
                            kk,
                            cols,
                            dwg.as_mut_ptr(),
                            1,
                            kk as isize,
                            true,
                            dyb.as_ptr(),
                            1,
                            cols as isize,
                            col.as_ptr(),
                            cols as isize,
                            1,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                }
            }
            (dw, db)
        })
        .collect();
    let mut parts = parts.into_iter();
    let (mut dw, mut db) = parts.next().unwrap_or_default();
    for (w2, b2) in parts {
        dw.iter_mut().zip(&w2).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&b2).for_each(|(a, b)| *a += b);
    }
    (dw, db)
}

/// `Σ v`, over 16 partial sums (a plain `iter().sum()` adds one value at a time).
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}
