//! The independent scalar reference: every layer kind in plain f64 loops, written from MATLAB's
//! documented semantics (../shared/docs/CONVERSION.md), never calling matcnn's code. It reads
//! only the description's hyperparameters and canonical tensors (`net::layer` documents the
//! layouts), and resolves 'same' padding and cropping itself, from the network as built (before
//! matcnn's shape inference touched it).

use matcnn::net::layer::{
    Activation, Conv2d, ConvTranspose2d, LayerKind, Network, Normalization, Padding, PaddingMode,
    Param, Pool2d, Recurrent, Tensor,
};

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
        LayerKind::Resize2d { .. } => {
            panic!("no reference for resize2d: matcnn refuses it (the row expects the refusal)")
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
