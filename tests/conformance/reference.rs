//! The independent scalar reference: every layer kind in plain f64 loops, written from MATLAB's
//! documented semantics (../shared/docs/CONVERSION.md), never calling matcnn's code. It reads
//! only the description's hyperparameters and canonical tensors (`net::layer` documents the
//! layouts), and resolves 'same' padding and cropping itself, from the network as built (before
//! matcnn's shape inference touched it).

use matcnn::net::layer::{
    Activation, Conv2d, ConvTranspose2d, LayerKind, Network, Normalization, Padding, PaddingMode,
    Param, Pool2d, Recurrent, Tensor,
};
use matcnn::net::layer::{Conv1d, ConvTranspose1d, LayerNorm, Padding1d, Pool1d};

/// One observation's activation, `C x H x W` row-major. A sequence is `C x 1 x T` (matcnn's
/// `[N, C, 1, T]` layout and the exports' `[N, C, T]`); features are `C x 1 x 1`.
#[derive(Debug, Clone)]
pub struct Act {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Time steps along `w`.
    pub seq: bool,
    pub v: Vec<f64>,
}

impl Act {
    pub fn new(c: usize, h: usize, w: usize, seq: bool) -> Act {
        Act {
            c,
            h,
            w,
            seq,
            v: vec![0.0; c * h * w],
        }
    }
    fn like(x: &Act) -> Act {
        Act::new(x.c, x.h, x.w, x.seq)
    }
    pub fn at(&self, c: usize, h: usize, w: usize) -> f64 {
        self.v[(c * self.h + h) * self.w + w]
    }
    fn idx(&self, c: usize, h: usize, w: usize) -> usize {
        (c * self.h + h) * self.w + w
    }
    /// The value at a possibly padded position (`None` outside the input).
    fn get(&self, c: usize, h: isize, w: isize) -> Option<f64> {
        if h < 0 || w < 0 || h as usize >= self.h || w as usize >= self.w {
            None
        } else {
            Some(self.at(c, h as usize, w as usize))
        }
    }
    fn map(&self, f: impl Fn(f64) -> f64) -> Act {
        Act {
            v: self.v.iter().map(|&x| f(x)).collect(),
            ..self.clone()
        }
    }
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.data.iter().map(|&v| v as f64).collect()
}

fn pvals(p: &Option<Param>) -> Vec<f64> {
    p.as_ref().map(|p| vals(&p.value)).unwrap_or_default()
}

/// Runs `net` (as built, layers in topological order) on one observation.
pub fn network(net: &Network, x: &Act) -> Act {
    let mut acts: Vec<Option<Act>> = vec![None; net.layers.len()];
    for (i, l) in net.layers.iter().enumerate() {
        let ins: Vec<&Act> = l
            .inputs
            .iter()
            .map(|&j| acts[j].as_ref().expect("inputs come first"))
            .collect();
        acts[i] = Some(if ins.is_empty() {
            layer(&l.kind, &[x])
        } else {
            layer(&l.kind, &ins)
        });
    }
    acts[net.outputs[0]].take().expect("output computed")
}

/// One layer on its inputs (in port order).
pub fn layer(kind: &LayerKind, ins: &[&Act]) -> Act {
    let x = ins[0];
    match kind {
        LayerKind::ImageInput { normalization, .. }
        | LayerKind::FeatureInput { normalization, .. }
        | LayerKind::SequenceInput { normalization, .. } => normalize(normalization, x),
        LayerKind::Conv2d(c) => conv2d(c, x),
        LayerKind::ConvTranspose2d(c) => conv_transpose(c, x),
        LayerKind::FullyConnected(f) => {
            let w = pvals(&f.weights);
            let b = pvals(&f.bias);
            let bias = |k: usize| b.get(k).copied().unwrap_or(0.0);
            let k = f.outputs;
            if x.seq {
                // One product per time step.
                let mut y = Act::new(k, 1, x.w, true);
                for t in 0..x.w {
                    for o in 0..k {
                        let s: f64 = (0..x.c).map(|c| w[o * x.c + c] * x.at(c, 0, t)).sum();
                        y.v[o * x.w + t] = s + bias(o);
                    }
                }
                y
            } else {
                // Canonical columns follow C x H x W, the activation's own order.
                let n = x.v.len();
                let mut y = Act::new(k, 1, 1, false);
                for o in 0..k {
                    y.v[o] = (0..n).map(|i| w[o * n + i] * x.v[i]).sum::<f64>() + bias(o);
                }
                y
            }
        }
        LayerKind::BatchNorm(b) => {
            let mean = vals(b.mean.as_ref().expect("mean"));
            let var = vals(b.variance.as_ref().expect("variance"));
            let g = pvals(&b.scale);
            let beta = pvals(&b.offset);
            let mut y = x.clone();
            for c in 0..x.c {
                for i in 0..x.h * x.w {
                    let k = c * x.h * x.w + i;
                    y.v[k] = g[c] * (x.v[k] - mean[c]) / (var[c] + b.epsilon).sqrt() + beta[c];
                }
            }
            y
        }
        LayerKind::GroupNorm(gn) => {
            let groups = if gn.groups == 0 { x.c } else { gn.groups };
            let per = x.c / groups;
            let g = pvals(&gn.scale);
            let beta = pvals(&gn.offset);
            let hw = x.h * x.w;
            let mut y = x.clone();
            for grp in 0..groups {
                let r = grp * per * hw..(grp + 1) * per * hw;
                let n = r.len() as f64;
                let mean = x.v[r.clone()].iter().sum::<f64>() / n;
                let var = x.v[r.clone()]
                    .iter()
                    .map(|v| (v - mean) * (v - mean))
                    .sum::<f64>()
                    / n;
                for k in r {
                    let c = k / hw;
                    y.v[k] = (x.v[k] - mean) / (var + gn.epsilon).sqrt() * g[c] + beta[c];
                }
            }
            y
        }
        LayerKind::Lrn(l) => {
            // MATLAB: floor((n-1)/2) channels before, floor(n/2) after; the sum is divided by n.
            let (before, after) = ((l.window - 1) / 2, l.window / 2);
            let mut y = Act::like(x);
            for c in 0..x.c {
                let lo = c.saturating_sub(before);
                let hi = (c + after).min(x.c - 1);
                for h in 0..x.h {
                    for w in 0..x.w {
                        let ss: f64 = (lo..=hi).map(|j| x.at(j, h, w).powi(2)).sum();
                        let d = (l.k + l.alpha * ss / l.window as f64).powf(l.beta);
                        y.v[x.idx(c, h, w)] = x.at(c, h, w) / d;
                    }
                }
            }
            y
        }
        LayerKind::Activation(a) => x.map(|v| activation(*a, v)),
        LayerKind::MaxPool2d(p) => pool(p, x, true),
        LayerKind::AvgPool2d(p) => pool(p, x, false),
        LayerKind::GlobalAvgPool | LayerKind::GlobalMaxPool => {
            let avg = matches!(kind, LayerKind::GlobalAvgPool);
            let hw = x.h * x.w;
            let mut y = Act::new(x.c, 1, 1, false);
            for c in 0..x.c {
                let s = &x.v[c * hw..(c + 1) * hw];
                y.v[c] = if avg {
                    s.iter().sum::<f64>() / hw as f64
                } else {
                    s.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                };
            }
            y
        }
        LayerKind::Addition { .. } | LayerKind::Multiplication { .. } => {
            let add = matches!(kind, LayerKind::Addition { .. });
            let mut y = x.clone();
            for other in &ins[1..] {
                assert_eq!(
                    other.v.len(),
                    y.v.len(),
                    "element-wise inputs differ in size"
                );
                for (a, b) in y.v.iter_mut().zip(&other.v) {
                    *a = if add { *a + b } else { *a * b };
                }
            }
            y
        }
        LayerKind::DepthConcat { .. } => concat(ins, 3),
        LayerKind::Concat { dim, .. } => concat(ins, *dim),
        LayerKind::Dropout { .. }
        | LayerKind::ClassificationOutput { .. }
        | LayerKind::RegressionOutput => x.clone(),
        LayerKind::Flatten => {
            // MATLAB flattens H x W x C column-major: h fastest, then w, then c.
            let mut y = Act::new(x.v.len(), 1, 1, false);
            for c in 0..x.c {
                for h in 0..x.h {
                    for w in 0..x.w {
                        y.v[h + x.h * w + x.h * x.w * c] = x.at(c, h, w);
                    }
                }
            }
            y
        }
        LayerKind::Softmax => {
            // Over the channels, at each position (time step).
            let mut y = Act::like(x);
            for h in 0..x.h {
                for w in 0..x.w {
                    let m = (0..x.c)
                        .map(|c| x.at(c, h, w))
                        .fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = (0..x.c).map(|c| (x.at(c, h, w) - m).exp()).sum();
                    for c in 0..x.c {
                        y.v[x.idx(c, h, w)] = (x.at(c, h, w) - m).exp() / z;
                    }
                }
            }
            y
        }
        LayerKind::Lstm(r) => recurrent(r, false, x),
        LayerKind::Gru(r) => recurrent(r, true, x),
        LayerKind::Conv1d(c) => seq1d_conv(c, x),
        LayerKind::ConvTranspose1d(c) => seq1d_conv_transpose(c, x),
        LayerKind::MaxPool1d(p) => seq1d_pool(p, x, true),
        LayerKind::AvgPool1d(p) => seq1d_pool(p, x, false),
        LayerKind::GlobalAvgPool1d => seq1d_global(x, false),
        LayerKind::GlobalMaxPool1d => seq1d_global(x, true),
        LayerKind::LayerNorm(n) => seq1d_layer_norm(n, x),
        LayerKind::LstmProjected(p) => projected(p, false, x),
        LayerKind::GruProjected(p) => projected(p, true, x),
        LayerKind::Transformer(t) => transformer(t, x),
        LayerKind::Resize2d { .. } => {
            panic!("no reference for resize2d: matcnn refuses it (the row expects the refusal)")
        }
        LayerKind::SequenceFolding | LayerKind::SequenceUnfolding => {
            panic!("image sequences run through reference::image_sequences")
        }
        LayerKind::MaxUnpool2d(u) => max_unpool(&u.window, x, ins[1]),
        LayerKind::Yolov2Transform { anchors } => yolov2_transform(*anchors, x),
        LayerKind::Yolov2Output { .. } => x.clone(),
        LayerKind::Unsupported { reason } => panic!("unsupported layer: {reason}"),
    }
}

fn normalize(n: &Normalization, x: &Act) -> Act {
    // Statistics `[C, H, W]`, `[C, 1, 1]` or `[1, 1, 1]`, broadcast over the input.
    let stat = |t: &Tensor, c: usize, h: usize, w: usize| -> f64 {
        let s = &t.shape;
        let (sc, sh, sw) = (s[0], s[1], s[2]);
        let i = ((if sc == 1 { 0 } else { c }) * sh + if sh == 1 { 0 } else { h }) * sw
            + if sw == 1 { 0 } else { w };
        t.data[i] as f64
    };
    let mut y = x.clone();
    for c in 0..x.c {
        for h in 0..x.h {
            for w in 0..x.w {
                let v = x.at(c, h, w);
                y.v[x.idx(c, h, w)] = match n {
                    Normalization::None => v,
                    Normalization::ZeroCenter { mean } => v - stat(mean, c, h, w),
                    Normalization::ZScore { mean, std } => {
                        (v - stat(mean, c, h, w)) / stat(std, c, h, w)
                    }
                    Normalization::RescaleSymmetric { min, max } => {
                        let (lo, hi) = (stat(min, c, h, w), stat(max, c, h, w));
                        2.0 * (v - lo) / (hi - lo) - 1.0
                    }
                    Normalization::RescaleZeroOne { min, max } => {
                        let (lo, hi) = (stat(min, c, h, w), stat(max, c, h, w));
                        (v - lo) / (hi - lo)
                    }
                };
            }
        }
    }
    y
}

/// The error function (Taylor series; `|erf(x) - 1| < 2e-8` beyond |x| = 4).
fn erf(x: f64) -> f64 {
    if x.abs() >= 4.0 {
        return x.signum();
    }
    let mut term = x;
    let mut sum = x;
    for n in 1..200 {
        term *= -x * x / n as f64;
        let t = term / (2 * n + 1) as f64;
        sum += t;
        if t.abs() < 1e-17 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

pub fn activation(a: Activation, v: f64) -> f64 {
    match a {
        Activation::Relu => v.max(0.0),
        Activation::LeakyRelu { scale } => {
            if v >= 0.0 {
                v
            } else {
                scale * v
            }
        }
        Activation::ClippedRelu { ceiling } => v.max(0.0).min(ceiling),
        Activation::Elu { alpha } => {
            if v >= 0.0 {
                v
            } else {
                alpha * (v.exp() - 1.0)
            }
        }
        Activation::Tanh => v.tanh(),
        Activation::Sigmoid => sigmoid(v),
        Activation::Swish => v * sigmoid(v),
        Activation::Gelu { tanh: false } => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
        Activation::Gelu { tanh: true } => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * v * (1.0 + (k * (v + 0.044715 * v.powi(3))).tanh())
        }
    }
}

/// MATLAB's 'same' padding along one axis: output `ceil(in / s)`, total
/// `max((out - 1) s + (k - 1) d + 1 - in, 0)`, the odd one at the bottom/right.
fn same(input: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    let out = input.div_ceil(s);
    let need = (out - 1) * s + (k - 1) * d + 1;
    let total = need.saturating_sub(input);
    (total / 2, total - total / 2)
}

fn pads(mode: &PaddingMode, x: &Act, k: [usize; 2], s: [usize; 2], d: [usize; 2]) -> Padding {
    match mode {
        PaddingMode::Manual(p) => *p,
        PaddingMode::Same => {
            let (top, bottom) = same(x.h, k[0], s[0], d[0]);
            let (left, right) = same(x.w, k[1], s[1], d[1]);
            Padding {
                top,
                bottom,
                left,
                right,
            }
        }
    }
}

fn out_len(input: usize, before: usize, after: usize, k: usize, s: usize, d: usize) -> usize {
    (input + before + after - ((k - 1) * d + 1)) / s + 1
}

fn conv2d(c: &Conv2d, x: &Act) -> Act {
    let p = pads(&c.padding, x, c.filter, c.stride, c.dilation);
    let [kh, kw] = c.filter;
    let [sh, sw] = c.stride;
    let [dh, dw] = c.dilation;
    let groups = if c.groups == 0 { x.c } else { c.groups };
    let (cin_g, cout_g) = (x.c / groups, c.filters / groups);
    let oh = out_len(x.h, p.top, p.bottom, kh, sh, dh);
    let ow = out_len(x.w, p.left, p.right, kw, sw, dw);
    let w = pvals(&c.weights);
    let b = pvals(&c.bias);
    let mut y = Act::new(c.filters, oh, ow, false);
    for o in 0..c.filters {
        let g = o / cout_g;
        for i in 0..oh {
            for j in 0..ow {
                // Cross-correlation (no kernel flip), zero padding.
                let mut s = b.get(o).copied().unwrap_or(0.0);
                for ci in 0..cin_g {
                    for a in 0..kh {
                        for bb in 0..kw {
                            let hh = (i * sh + a * dh) as isize - p.top as isize;
                            let ww = (j * sw + bb * dw) as isize - p.left as isize;
                            if let Some(v) = x.get(g * cin_g + ci, hh, ww) {
                                s += w[((o * cin_g + ci) * kh + a) * kw + bb] * v;
                            }
                        }
                    }
                }
                let ix = y.idx(o, i, j);
                y.v[ix] = s;
            }
        }
    }
    y
}

fn conv_transpose(c: &ConvTranspose2d, x: &Act) -> Act {
    let [kh, kw] = c.filter;
    let [sh, sw] = c.stride;
    let groups = c.groups.max(1);
    let (cin_g, cout_g) = (x.c / groups, c.filters / groups);
    // The full output, before cropping.
    let (fh, fw) = ((x.h - 1) * sh + kh, (x.w - 1) * sw + kw);
    let mut full = Act::new(c.filters, fh, fw, false);
    let w = pvals(&c.weights);
    for ci in 0..x.c {
        let g = ci / cin_g;
        for ol in 0..cout_g {
            let o = g * cout_g + ol;
            for i in 0..x.h {
                for j in 0..x.w {
                    let v = x.at(ci, i, j);
                    for a in 0..kh {
                        for bb in 0..kw {
                            let k = full.idx(o, i * sh + a, j * sw + bb);
                            full.v[k] += v * w[((ci * cout_g + ol) * kh + a) * kw + bb];
                        }
                    }
                }
            }
        }
    }
    // 'same' cropping: output `in * s`, total `k - s` per axis, split like 'same' padding (the
    // odd one at the bottom/right: CONVERSION.md marks that side unverified for MATLAB).
    let crop = match c.cropping {
        PaddingMode::Manual(p) => p,
        PaddingMode::Same => {
            let split = |k: usize, s: usize| {
                let t = k - s;
                (t / 2, t - t / 2)
            };
            let (top, bottom) = split(kh, sh);
            let (left, right) = split(kw, sw);
            Padding {
                top,
                bottom,
                left,
                right,
            }
        }
    };
    let (oh, ow) = (fh - crop.top - crop.bottom, fw - crop.left - crop.right);
    let b = pvals(&c.bias);
    let mut y = Act::new(c.filters, oh, ow, false);
    for o in 0..c.filters {
        for i in 0..oh {
            for j in 0..ow {
                let ix = y.idx(o, i, j);
                y.v[ix] =
                    full.at(o, i + crop.top, j + crop.left) + b.get(o).copied().unwrap_or(0.0);
            }
        }
    }
    y
}

fn pool(p: &Pool2d, x: &Act, max: bool) -> Act {
    let pd = pads(&p.padding, x, p.size, p.stride, [1, 1]);
    let [kh, kw] = p.size;
    let [sh, sw] = p.stride;
    let oh = out_len(x.h, pd.top, pd.bottom, kh, sh, 1);
    let ow = out_len(x.w, pd.left, pd.right, kw, sw, 1);
    let mut y = Act::new(x.c, oh, ow, false);
    for c in 0..x.c {
        for i in 0..oh {
            for j in 0..ow {
                let mut best = f64::NEG_INFINITY;
                let (mut sum, mut count) = (0.0, 0usize);
                for a in 0..kh {
                    for b in 0..kw {
                        let hh = (i * sh + a) as isize - pd.top as isize;
                        let ww = (j * sw + b) as isize - pd.left as isize;
                        if let Some(v) = x.get(c, hh, ww) {
                            best = best.max(v);
                            sum += v;
                            count += 1;
                        }
                    }
                }
                // Max pooling pads with -inf; average pooling with zeros that count in the
                // mean unless `count_include_pad` is false (MATLAB's PaddingValue "mean").
                let ix = y.idx(c, i, j);
                y.v[ix] = if max {
                    best
                } else if p.count_include_pad {
                    sum / (kh * kw) as f64
                } else {
                    sum / count as f64
                };
            }
        }
    }
    y
}

fn concat(ins: &[&Act], dim: usize) -> Act {
    let x = ins[0];
    let sum = |f: fn(&Act) -> usize| ins.iter().map(|a| f(a)).sum::<usize>();
    let (c, h, w) = match dim {
        1 => (x.c, sum(|a| a.h), x.w),
        2 => (x.c, x.h, sum(|a| a.w)),
        _ => (sum(|a| a.c), x.h, x.w),
    };
    let mut y = Act::new(c, h, w, x.seq);
    let mut off = 0;
    for a in ins {
        for cc in 0..a.c {
            for hh in 0..a.h {
                for ww in 0..a.w {
                    let k = match dim {
                        1 => y.idx(cc, hh + off, ww),
                        2 => y.idx(cc, hh, ww + off),
                        _ => y.idx(cc + off, hh, ww),
                    };
                    y.v[k] = a.at(cc, hh, ww);
                }
            }
        }
        off += match dim {
            1 => a.h,
            2 => a.w,
            _ => a.c,
        };
    }
    y
}

fn gate(name: &str, x: f64) -> f64 {
    match name {
        "tanh" => x.tanh(),
        "softsign" => x / (1.0 + x.abs()),
        "sigmoid" => sigmoid(x),
        "hard-sigmoid" => (0.2 * x + 0.5).clamp(0.0, 1.0),
        other => panic!("activation {other}"),
    }
}

/// `m` `[rows, cols]` times `v`, rows `r0..r0 + n`.
fn mv(m: &[f64], cols: usize, r0: usize, n: usize, v: &[f64]) -> Vec<f64> {
    (r0..r0 + n)
        .map(|r| (0..cols).map(|j| m[r * cols + j] * v[j]).sum())
        .collect()
}

/// LSTM (gates i, f, g, o) or GRU (reset, update, candidate) over a `C x 1 x T` sequence;
/// a BiLSTM runs the second block set backwards and outputs `[h_forward; h_backward]`.
fn recurrent(r: &Recurrent, gru: bool, x: &Act) -> Act {
    let (c, t, h) = (x.c, x.w, r.hidden);
    let g = if gru { 3 * h } else { 4 * h };
    let w = pvals(&r.input_weights);
    let rw = pvals(&r.recurrent_weights);
    let b = pvals(&r.bias);
    let dirs = if r.bidirectional { 2 } else { 1 };
    let h0 = r
        .hidden_state
        .as_ref()
        .map(vals)
        .unwrap_or(vec![0.0; h * dirs]);
    let c0 = r
        .cell_state
        .as_ref()
        .map(vals)
        .unwrap_or(vec![0.0; h * dirs]);
    let mut ys = vec![vec![0.0f64; h * dirs]; t];
    for d in 0..dirs {
        let mut hs = h0[d * h..(d + 1) * h].to_vec();
        let mut cs = c0[d * h..(d + 1) * h].to_vec();
        let order: Vec<usize> = if d == 0 {
            (0..t).collect()
        } else {
            (0..t).rev().collect()
        };
        for tt in order {
            let xt: Vec<f64> = (0..c).map(|ch| x.at(ch, 0, tt)).collect();
            let wx = mv(&w, c, d * g, g, &xt);
            let rh = mv(&rw, h, d * g, g, &hs);
            let bias = |k: usize| b[d * g + k];
            if !gru {
                for u in 0..h {
                    let z = |blk: usize| wx[blk * h + u] + rh[blk * h + u] + bias(blk * h + u);
                    let i = gate(&r.gate_activation, z(0));
                    let f = gate(&r.gate_activation, z(1));
                    let cand = gate(&r.state_activation, z(2));
                    let o = gate(&r.gate_activation, z(3));
                    cs[u] = f * cs[u] + i * cand;
                    hs[u] = o * gate(&r.state_activation, cs[u]);
                }
            } else {
                // 'recurrent-bias-after-multiplication' stores the recurrent biases after the
                // input biases.
                let rb = |k: usize| {
                    if r.reset_gate_mode == "recurrent-bias-after-multiplication" {
                        b[g + k]
                    } else {
                        0.0
                    }
                };
                let reset: Vec<f64> = (0..h)
                    .map(|u| gate(&r.gate_activation, wx[u] + bias(u) + rh[u] + rb(u)))
                    .collect();
                let update: Vec<f64> = (0..h)
                    .map(|u| {
                        let z = wx[h + u] + bias(h + u) + rh[h + u] + rb(h + u);
                        gate(&r.gate_activation, z)
                    })
                    .collect();
                let reset_h: Vec<f64> = (0..h).map(|u| reset[u] * hs[u]).collect();
                let r_of_reset_h = mv(&rw, h, 2 * h, h, &reset_h);
                hs = (0..h)
                    .map(|u| {
                        let recur = if r.reset_gate_mode == "before-multiplication" {
                            r_of_reset_h[u]
                        } else {
                            reset[u] * (rh[2 * h + u] + rb(2 * h + u))
                        };
                        let z = wx[2 * h + u] + bias(2 * h + u) + recur;
                        let cand = gate(&r.state_activation, z);
                        (1.0 - update[u]) * cand + update[u] * hs[u]
                    })
                    .collect();
            }
            ys[tt][d * h..(d + 1) * h].copy_from_slice(&hs);
        }
    }
    let k = h * dirs;
    if r.return_sequence {
        let mut y = Act::new(k, 1, t, true);
        for (tt, yt) in ys.iter().enumerate() {
            for (u, v) in yt.iter().enumerate() {
                y.v[u * t + tt] = *v;
            }
        }
        y
    } else {
        let mut y = Act::new(k, 1, 1, false);
        y.v.copy_from_slice(&ys[t - 1]);
        y
    }
}

// --- fold ---

/// An activation of an image-sequence network: one `C x H x W` frame per time step (`folded`
/// between sequence folding and unfolding), or an ordinary one.
enum SeqAct {
    Frames { frames: Vec<Act>, folded: bool },
    Plain(Act),
}

/// Runs an image-sequence network on one observation: `x` is `F x 1 x T`, each time step's
/// frame in `[C, H, W]` row-major order. Written from MATLAB's documentation: folding turns the
/// sequence into independent images, unfolding back, and `flattenLayer` makes each `H x W x C`
/// frame `H*W*C` features in column-major order (h fastest).
pub fn image_sequences(net: &Network, x: &Act) -> Act {
    let mut acts: Vec<Option<SeqAct>> = (0..net.layers.len()).map(|_| None).collect();
    for (i, l) in net.layers.iter().enumerate() {
        let get = |k: usize| acts[l.inputs[k]].as_ref().expect("inputs come first");
        let y = match &l.kind {
            LayerKind::SequenceInput {
                frame: Some(f),
                normalization,
                ..
            } => {
                let frames = (0..x.w)
                    .map(|t| {
                        let mut a = Act::new(f.c, f.h, f.w, false);
                        for (k, v) in a.v.iter_mut().enumerate() {
                            *v = x.at(k, 0, t);
                        }
                        normalize(normalization, &a)
                    })
                    .collect();
                SeqAct::Frames {
                    frames,
                    folded: false,
                }
            }
            LayerKind::SequenceFolding | LayerKind::SequenceUnfolding => match get(0) {
                SeqAct::Frames { frames, .. } => SeqAct::Frames {
                    frames: frames.clone(),
                    folded: matches!(l.kind, LayerKind::SequenceFolding),
                },
                SeqAct::Plain(_) => panic!("folding needs an image sequence"),
            },
            LayerKind::Flatten if matches!(get(0), SeqAct::Frames { folded: false, .. }) => {
                let SeqAct::Frames { frames, .. } = get(0) else {
                    unreachable!()
                };
                let (c, h, w) = (frames[0].c, frames[0].h, frames[0].w);
                let mut y = Act::new(c * h * w, 1, frames.len(), true);
                for (t, f) in frames.iter().enumerate() {
                    for ch in 0..c {
                        for hh in 0..h {
                            for ww in 0..w {
                                let k = hh + h * ww + h * w * ch;
                                y.v[k * frames.len() + t] = f.at(ch, hh, ww);
                            }
                        }
                    }
                }
                SeqAct::Plain(y)
            }
            kind => match get(0) {
                SeqAct::Frames { frames, folded } => SeqAct::Frames {
                    frames: frames.iter().map(|f| layer(kind, &[f])).collect(),
                    folded: *folded,
                },
                SeqAct::Plain(a) => SeqAct::Plain(layer(kind, &[a])),
            },
        };
        acts[i] = Some(y);
    }
    match acts[net.outputs[0]].take().expect("output computed") {
        SeqAct::Plain(a) => a,
        SeqAct::Frames { .. } => panic!("the rows end on ordinary sequence data"),
    }
}

// --- seq1d: 1-D layers over time and layer normalization ---

/// `[left, right]` time pads of a 1-D window layer on `t` steps, from MATLAB's documented rules:
/// 'causal' pads `(k - 1) d` on the left; 'same' gives `ceil(t / s)` outputs with the padding
/// split evenly, the odd step on the right.
fn seq1d_pads(p: &Padding1d, t: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    match p {
        Padding1d::Manual([a, b]) => (*a, *b),
        Padding1d::Causal => ((k - 1) * d, 0),
        Padding1d::Same => {
            let out = t.div_ceil(s);
            let need = (out - 1) * s + (k - 1) * d + 1;
            let total = need.saturating_sub(t);
            (total / 2, total - total / 2)
        }
    }
}

/// Cross-correlation along time: `y[f, t] = b[f] + sum_{c,j} W[f, c, j] x[c, t s + j d - left]`.
fn seq1d_conv(c: &Conv1d, x: &Act) -> Act {
    let w = pvals(&c.weights);
    let b = pvals(&c.bias);
    let (k, s, d) = (c.filter, c.stride, c.dilation);
    let (left, right) = seq1d_pads(&c.padding, x.w, k, s, d);
    let span = (k - 1) * d + 1;
    let t_out = (x.w + left + right - span) / s + 1;
    let mut y = Act::new(c.filters, 1, t_out, true);
    for f in 0..c.filters {
        for t in 0..t_out {
            let mut acc = b.get(f).copied().unwrap_or(0.0);
            for ch in 0..x.c {
                for j in 0..k {
                    let pos = (t * s + j * d) as isize - left as isize;
                    if let Some(v) = x.get(ch, 0, pos) {
                        acc += w[(f * x.c + ch) * k + j] * v;
                    }
                }
            }
            y.v[f * t_out + t] = acc;
        }
    }
    y
}

/// Each input step scatters `W[c, f, :] x[c, t]` from output step `t s`; the full output
/// `(T - 1) s + K` is cropped at both ends.
fn seq1d_conv_transpose(c: &ConvTranspose1d, x: &Act) -> Act {
    let w = pvals(&c.weights);
    let b = pvals(&c.bias);
    let (k, s) = (c.filter, c.stride);
    let full = (x.w - 1) * s + k;
    let mut y_full = vec![0.0; c.filters * full];
    for ch in 0..x.c {
        for f in 0..c.filters {
            for t in 0..x.w {
                for j in 0..k {
                    y_full[f * full + t * s + j] +=
                        w[(ch * c.filters + f) * k + j] * x.at(ch, 0, t);
                }
            }
        }
    }
    let [a, e] = c.cropping;
    let t_out = full - a - e;
    let mut y = Act::new(c.filters, 1, t_out, true);
    for f in 0..c.filters {
        for t in 0..t_out {
            y.v[f * t_out + t] = y_full[f * full + a + t] + b.get(f).copied().unwrap_or(0.0);
        }
    }
    y
}

/// Max or average over each window of time steps; padded steps never win a max, and count in
/// an average only with `count_include_pad` (MATLAB's PaddingValue 0).
fn seq1d_pool(p: &Pool1d, x: &Act, max: bool) -> Act {
    let (k, s) = (p.size, p.stride);
    let (left, right) = seq1d_pads(&p.padding, x.w, k, s, 1);
    let t_out = (x.w + left + right - k) / s + 1;
    let mut y = Act::new(x.c, 1, t_out, true);
    for ch in 0..x.c {
        for t in 0..t_out {
            let vals: Vec<f64> = (0..k)
                .filter_map(|j| x.get(ch, 0, (t * s + j) as isize - left as isize))
                .collect();
            y.v[ch * t_out + t] = if max {
                vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            } else {
                let n = if p.count_include_pad { k } else { vals.len() };
                vals.iter().sum::<f64>() / n as f64
            };
        }
    }
    y
}

/// Mean or max over all time steps: `C x T` → `C`.
fn seq1d_global(x: &Act, max: bool) -> Act {
    let mut y = Act::new(x.c, 1, 1, false);
    for ch in 0..x.c {
        let vals = (0..x.h * x.w).map(|i| x.v[ch * x.h * x.w + i]);
        y.v[ch] = if max {
            vals.fold(f64::NEG_INFINITY, f64::max)
        } else {
            vals.sum::<f64>() / (x.h * x.w) as f64
        };
    }
    y
}

/// Layer normalization. OperationDimension 'channel-only' normalizes the channels at each
/// position; 'spatial-channel' (and 'auto') the channels and spatial dimensions, which for a
/// sequence is the channels at each time step; 'batch-excluded' and files without the property
/// (MATLAB before R2023a) everything of one observation. Then `Scale[c] * x + Offset[c]`.
fn seq1d_layer_norm(n: &LayerNorm, x: &Act) -> Act {
    let per_position = match n.operation_dimension.as_str() {
        "channel-only" => true,
        "spatial-channel" | "auto" => x.seq,
        _ => false,
    };
    let g = pvals(&n.scale);
    let beta = pvals(&n.offset);
    let hw = x.h * x.w;
    let groups: Vec<Vec<usize>> = if per_position {
        (0..hw)
            .map(|p| (0..x.c).map(|ch| ch * hw + p).collect())
            .collect()
    } else {
        vec![(0..x.v.len()).collect()]
    };
    let mut y = x.clone();
    for idx in groups {
        let m = idx.iter().map(|&i| x.v[i]).sum::<f64>() / idx.len() as f64;
        let var = idx.iter().map(|&i| (x.v[i] - m).powi(2)).sum::<f64>() / idx.len() as f64;
        for &i in &idx {
            let ch = i / hw;
            y.v[i] = g[ch] * (x.v[i] - m) / (var + n.epsilon).sqrt() + beta[ch];
        }
    }
    y
}

// --- rnnproj ---

/// A projected LSTM/GRU, in its factored form as MATLAB documents it (each `W x` computed as
/// `W' (Qᵀ x)` with the stored `W' = W Q`): the input through `InputWeights · (InputProjectorᵀ x)`,
/// the hidden state through `RecurrentWeights · (OutputProjectorᵀ h)`; gates and states as the
/// plain layer (LSTM i, f, g, o; GRU reset, update, candidate with its ResetGateMode).
fn projected(p: &matcnn::net::layer::Projected, gru: bool, x: &Act) -> Act {
    let r = &p.rnn;
    let (c, t, h) = (x.c, x.w, r.hidden);
    let (ips, ops) = (p.input_projector_size, p.output_projector_size);
    let g = if gru { 3 * h } else { 4 * h };
    let w = pvals(&r.input_weights);
    let rw = pvals(&r.recurrent_weights);
    let b = pvals(&r.bias);
    let qi = pvals(&p.input_projector);
    let qo = pvals(&p.output_projector);
    // Qᵀ v for Q [n, k] row-major.
    let qt = |q: &[f64], k: usize, v: &[f64]| -> Vec<f64> {
        (0..k)
            .map(|j| (0..v.len()).map(|i| q[i * k + j] * v[i]).sum())
            .collect()
    };
    let mut hs = r.hidden_state.as_ref().map(vals).unwrap_or(vec![0.0; h]);
    let mut cs = r.cell_state.as_ref().map(vals).unwrap_or(vec![0.0; h]);
    let two_bias = r.reset_gate_mode == "recurrent-bias-after-multiplication";
    let rb = |k: usize| if two_bias { b[g + k] } else { 0.0 };
    let mut ys = vec![vec![0.0f64; h]; t];
    for (tt, yt) in ys.iter_mut().enumerate() {
        let xt: Vec<f64> = (0..c).map(|ch| x.at(ch, 0, tt)).collect();
        let wx = mv(&w, ips, 0, g, &qt(&qi, ips, &xt));
        let rh = mv(&rw, ops, 0, g, &qt(&qo, ops, &hs));
        if !gru {
            for u in 0..h {
                let z = |blk: usize| wx[blk * h + u] + rh[blk * h + u] + b[blk * h + u];
                let i = gate(&r.gate_activation, z(0));
                let f = gate(&r.gate_activation, z(1));
                let cand = gate(&r.state_activation, z(2));
                let o = gate(&r.gate_activation, z(3));
                cs[u] = f * cs[u] + i * cand;
                hs[u] = o * gate(&r.state_activation, cs[u]);
            }
        } else {
            let reset: Vec<f64> = (0..h)
                .map(|u| gate(&r.gate_activation, wx[u] + b[u] + rh[u] + rb(u)))
                .collect();
            let update: Vec<f64> = (0..h)
                .map(|u| {
                    gate(
                        &r.gate_activation,
                        wx[h + u] + b[h + u] + rh[h + u] + rb(h + u),
                    )
                })
                .collect();
            let reset_h: Vec<f64> = (0..h).map(|u| reset[u] * hs[u]).collect();
            let r_reset_h = mv(&rw, ops, 2 * h, h, &qt(&qo, ops, &reset_h));
            hs = (0..h)
                .map(|u| {
                    let recur = if r.reset_gate_mode == "before-multiplication" {
                        r_reset_h[u]
                    } else {
                        reset[u] * (rh[2 * h + u] + rb(2 * h + u))
                    };
                    let cand = gate(&r.state_activation, wx[2 * h + u] + b[2 * h + u] + recur);
                    (1.0 - update[u]) * cand + update[u] * hs[u]
                })
                .collect();
        }
        yt.copy_from_slice(&hs);
    }
    if r.return_sequence {
        let mut y = Act::new(h, 1, t, true);
        for (tt, yt) in ys.iter().enumerate() {
            for (u, v) in yt.iter().enumerate() {
                y.v[u * t + tt] = *v;
            }
        }
        y
    } else {
        let mut y = Act::new(h, 1, 1, false);
        y.v.copy_from_slice(&ys[t - 1]);
        y
    }
}

// --- attn ---

/// The transformer layers, from MATLAB's documentation (net/layers/transformer.rs states the
/// semantics): learned and sinusoidal position encodings, multi-head self-attention with an
/// optional causal mask, 1-D indexing, embedding concatenation, word embedding (ids rounded,
/// out-of-range ids to the last word).
fn transformer(t: &matcnn::net::layer::Transformer, x: &Act) -> Act {
    use matcnn::net::layer::Transformer as T;
    let steps = x.w;
    match t {
        T::PositionEmbedding(p) => {
            let w = pvals(&p.weights);
            let m = p.max_position;
            let mut y = Act::new(p.output_size, 1, steps, true);
            for c in 0..p.output_size {
                for s in 0..steps {
                    y.v[c * steps + s] = w[c * m + s];
                }
            }
            y
        }
        T::SinusoidalEncoding(e) => {
            let d = e.output_size;
            let mut y = Act::new(d, 1, steps, true);
            for c in 0..d {
                let k = (c / 2) as f64;
                let denom = 10000f64.powf(2.0 * k / d as f64);
                for s in 0..steps {
                    let a = s as f64 / denom;
                    y.v[c * steps + s] = if c % 2 == 0 { a.sin() } else { a.cos() };
                }
            }
            y
        }
        T::Indexing1d { last } => {
            let s = if *last { steps - 1 } else { 0 };
            let mut y = Act::new(x.c, 1, 1, false);
            for c in 0..x.c {
                y.v[c] = x.at(c, 0, s);
            }
            y
        }
        T::EmbeddingConcat(e) => {
            let w = pvals(&e.weights);
            let mut y = Act::new(x.c, 1, steps + 1, true);
            for (c, wc) in w.iter().enumerate().take(x.c) {
                y.v[c * (steps + 1)] = *wc;
                for s in 0..steps {
                    y.v[c * (steps + 1) + s + 1] = x.at(c, 0, s);
                }
            }
            y
        }
        T::WordEmbedding(we) => {
            let w = pvals(&we.weights);
            let (d, n) = (we.dimension, we.num_words);
            let mut y = Act::new(d, 1, steps, true);
            for s in 0..steps {
                let r = x.at(0, 0, s).round_ties_even();
                let id = if r >= 1.0 && r <= n as f64 {
                    r as usize
                } else {
                    n
                };
                for c in 0..d {
                    y.v[c * steps + s] = w[c * n + id - 1];
                }
            }
            y
        }
        T::SelfAttention(a) => {
            let c = x.c;
            let (kc, vc, o, heads) = (
                a.num_key_channels,
                a.num_value_channels,
                a.output_size,
                a.num_heads,
            );
            // Per time step: W x + b, weights [rows, c].
            let proj = |w: &[f64], b: &[f64], rows: usize| -> Vec<Vec<f64>> {
                (0..steps)
                    .map(|s| {
                        (0..rows)
                            .map(|r| {
                                b[r] + (0..c).map(|j| w[r * c + j] * x.at(j, 0, s)).sum::<f64>()
                            })
                            .collect()
                    })
                    .collect()
            };
            let q = proj(&pvals(&a.query_weights), &pvals(&a.query_bias), kc);
            let k = proj(&pvals(&a.key_weights), &pvals(&a.key_bias), kc);
            let v = proj(&pvals(&a.value_weights), &pvals(&a.value_bias), vc);
            let (dk, dv) = (kc / heads, vc / heads);
            let scale = 1.0 / (dk as f64).sqrt();
            // merged[s][h * dv + e]
            let mut merged = vec![vec![0.0; vc]; steps];
            for h in 0..heads {
                for (i, row) in merged.iter_mut().enumerate() {
                    let keys = if a.causal { i + 1 } else { steps };
                    let scores: Vec<f64> = (0..keys)
                        .map(|j| {
                            scale
                                * (0..dk)
                                    .map(|e| q[i][h * dk + e] * k[j][h * dk + e])
                                    .sum::<f64>()
                        })
                        .collect();
                    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let ex: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                    let z: f64 = ex.iter().sum();
                    for e in 0..dv {
                        row[h * dv + e] =
                            (0..keys).map(|j| ex[j] / z * v[j][h * dv + e]).sum::<f64>();
                    }
                }
            }
            let wo = pvals(&a.output_weights);
            let bo = pvals(&a.output_bias);
            let mut y = Act::new(o, 1, steps, true);
            for (s, row) in merged.iter().enumerate() {
                for r in 0..o {
                    y.v[r * steps + s] =
                        bo[r] + (0..vc).map(|e| wo[r * vc + e] * row[e]).sum::<f64>();
                }
            }
            y
        }
    }
}

// --- yolo ---

/// MATLAB's max unpooling by hand: for each window of the max pooling of `p` (the pooling layer's
/// input; padded positions never win), the position of its first maximum in row-major window
/// order gets x's value for that window (values of windows that pick the same element add up);
/// everything else is 0. The output has p's size and x's channels.
fn max_unpool(window: &Pool2d, x: &Act, p: &Act) -> Act {
    let pd = pads(&window.padding, p, window.size, window.stride, [1, 1]);
    let [kh, kw] = window.size;
    let [sh, sw] = window.stride;
    let oh = out_len(p.h, pd.top, pd.bottom, kh, sh, 1);
    let ow = out_len(p.w, pd.left, pd.right, kw, sw, 1);
    assert_eq!((oh, ow, p.c), (x.h, x.w, x.c), "unpooling input size");
    let mut y = Act::new(x.c, p.h, p.w, false);
    for c in 0..x.c {
        for i in 0..oh {
            for j in 0..ow {
                let mut best: Option<(f64, usize, usize)> = None;
                for a in 0..kh {
                    for b in 0..kw {
                        let hh = (i * sh + a) as isize - pd.top as isize;
                        let ww = (j * sw + b) as isize - pd.left as isize;
                        if let Some(v) = p.get(c, hh, ww)
                            && best.is_none_or(|(m, _, _)| v > m)
                        {
                            best = Some((v, hh as usize, ww as usize));
                        }
                    }
                }
                let (_, bh, bw) = best.expect("every window holds an input element");
                let ix = y.idx(c, bh, bw);
                y.v[ix] += x.at(c, i, j);
            }
        }
    }
    y
}

/// MATLAB's YOLOv2TransformHostStrategy by hand: channel `k * A + a` is prediction k of anchor a;
/// sigmoid for k < 3, exp for k = 3, 4, softmax over k >= 5 for each anchor and position.
pub fn yolov2_transform(anchors: usize, x: &Act) -> Act {
    let k = x.c / anchors;
    let mut y = Act::like(x);
    for h in 0..x.h {
        for w in 0..x.w {
            for a in 0..anchors {
                let ch = |kk: usize| kk * anchors + a;
                for kk in 0..5 {
                    let v = x.at(ch(kk), h, w);
                    y.v[x.idx(ch(kk), h, w)] = if kk < 3 { sigmoid(v) } else { v.exp() };
                }
                let m = (5..k)
                    .map(|kk| x.at(ch(kk), h, w))
                    .fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = (5..k).map(|kk| (x.at(ch(kk), h, w) - m).exp()).sum();
                for kk in 5..k {
                    y.v[x.idx(ch(kk), h, w)] = (x.at(ch(kk), h, w) - m).exp() / z;
                }
            }
        }
    }
    y
}
