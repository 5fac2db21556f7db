//! The conformance table: one row per layer kind and variant. Adding a layer (or a variant) is
//! adding a row here: a name, the network (built in code from `LayerKind` values), the input,
//! the output shape shape inference must give, the reference (`reference::network`, the scalar
//! interpreter, unless the row needs its own) and the tolerance.

#[path = "seq1d_rows.rs"]
mod seq1d_rows;

use super::reference::{self, Act};
use matcnn::net::layer::{
    self as L, Activation as A, Layer, LayerKind as K, Network, Normalization, PaddingMode, Shape,
};
use matcnn::net::layers::transformer as TR;

/// The input of a row's network (one observation, without the batch).
#[derive(Debug, Clone, Copy)]
pub enum In {
    Image { h: usize, w: usize, c: usize },
    Features(usize),
    Sequence { c: usize, t: usize },
}

/// What matcnn is expected to do with the row.
#[derive(Debug, Clone, Copy)]
pub enum Support {
    /// Every stage runs and matches the reference.
    All,
    /// The PyTorch export refuses it with a message holding this text and the layer's name
    /// (torch cannot compute it); every other stage runs.
    NoPytorch(&'static str),
    /// The Burn module and the exporters refuse it, naming the layer and this text; only the
    /// description's round trip and shape inference are checked.
    Refused(&'static str),
}

pub struct Row {
    pub name: &'static str,
    /// The network, as a MATLAB file would describe it (before shape inference).
    pub net: fn() -> Network,
    pub input: In,
    /// The output shape shape inference must give (a sequence output: features per step).
    pub expect: Shape,
    /// The reference output for one observation.
    pub reference: fn(&Network, &Act) -> Act,
    /// Max |difference| allowed, relative to max(1, max |reference|).
    pub tol: f64,
    pub support: Support,
    /// A known disagreement: `(stage, reason)`. That stage's failure is reported, not fatal;
    /// once it passes the test fails until the mark is removed.
    pub known_failure: Option<(&'static str, &'static str)>,
}

fn row(name: &'static str, input: In, expect: Shape, net: fn() -> Network) -> Row {
    Row {
        name,
        net,
        input,
        expect,
        reference: reference::network,
        tol: 1e-5,
        support: Support::All,
        known_failure: None,
    }
}

impl Row {
    fn support(self, support: Support) -> Row {
        Row { support, ..self }
    }
}

// ---- Building blocks ----

/// xorshift values in [-1, 1).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0
    }
    pub fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
    fn tensor(&mut self, shape: &[usize], scale: f32) -> L::Tensor {
        let n = shape.iter().product();
        L::Tensor::new(shape.to_vec(), self.values(n, scale))
    }
    fn param(&mut self, shape: &[usize], scale: f32) -> Option<L::Param> {
        Some(L::Param {
            value: self.tensor(shape, scale),
            lr_factor: 1.0,
            l2_factor: 1.0,
        })
    }
    /// Values in [lo, hi).
    fn range(&mut self, shape: &[usize], lo: f32, hi: f32) -> L::Tensor {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| lo + (self.next() + 1.0) / 2.0 * (hi - lo))
            .collect();
        L::Tensor::new(shape.to_vec(), v)
    }
}

fn pad(top: usize, bottom: usize, left: usize, right: usize) -> PaddingMode {
    PaddingMode::Manual(L::Padding {
        top,
        bottom,
        left,
        right,
    })
}

/// A network from its input layer and the layers after it: each `(name, kind, inputs)` takes
/// its inputs by index (0 = the input layer); `None` means the layer before it.
fn graph(input: K, layers: Vec<(&str, K, Option<Vec<usize>>)>) -> Network {
    let mut all = vec![Layer {
        name: "input".into(),
        class: "synthetic.input".into(),
        kind: input,
        inputs: vec![],
        output: None,
    }];
    for (name, kind, inputs) in layers {
        let inputs = inputs.unwrap_or(vec![all.len() - 1]);
        all.push(Layer {
            name: name.into(),
            class: format!("synthetic.{name}"),
            kind,
            inputs,
            output: None,
        });
    }
    let classes = match &all.last().map(|l| &l.kind) {
        Some(K::ClassificationOutput { classes }) => classes.clone(),
        _ => vec![],
    };
    Network {
        variable: "conformance".into(),
        source: L::SourceKind::DAGNetwork,
        outputs: vec![all.len() - 1],
        layers: all,
        classes,
        detector: None,
        notes: Vec::new(),
        same_padding: Vec::new(),
    }
}

/// A chain: the input layer, then `layers` one after the other.
fn chain(input: K, layers: Vec<K>) -> Network {
    let named = layers
        .into_iter()
        .enumerate()
        .map(|(i, k)| (["a", "b", "c", "d", "e"][i.min(4)], k, None))
        .collect();
    graph(input, named)
}

fn image(h: usize, w: usize, c: usize) -> K {
    image_norm(h, w, c, Normalization::None)
}

fn image_norm(h: usize, w: usize, c: usize, normalization: Normalization) -> K {
    K::ImageInput {
        size: Shape::image(h, w, c),
        normalization,
    }
}

fn features(c: usize, normalization: Normalization) -> K {
    K::FeatureInput {
        size: c,
        normalization,
    }
}

fn sequence(c: usize, normalization: Normalization) -> K {
    K::SequenceInput {
        size: c,
        normalization,
        frame: None,
    }
}

/// `[kh, kw]`, stride, dilation, groups (0: channel-wise).
#[allow(clippy::too_many_arguments)]
fn conv(
    r: &mut Rng,
    cin: usize,
    cout: usize,
    filter: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    padding: PaddingMode,
) -> K {
    let per = cin.checked_div(groups).unwrap_or(1); // 0 groups: channel-wise
    K::Conv2d(L::Conv2d {
        filter,
        in_channels: cin,
        filters: cout,
        stride,
        dilation,
        groups,
        padding,
        weights: r.param(&[cout, per, filter[0], filter[1]], 0.5),
        bias: r.param(&[cout], 0.2),
    })
}

fn convt(
    r: &mut Rng,
    cin: usize,
    cout: usize,
    filter: [usize; 2],
    stride: [usize; 2],
    groups: usize,
    cropping: PaddingMode,
) -> K {
    K::ConvTranspose2d(L::ConvTranspose2d {
        filter,
        in_channels: cin,
        filters: cout,
        stride,
        groups,
        cropping,
        weights: r.param(&[cin, cout / groups, filter[0], filter[1]], 0.5),
        bias: r.param(&[cout], 0.2),
    })
}

fn fc(r: &mut Rng, inputs: usize, outputs: usize) -> K {
    K::FullyConnected(L::FullyConnected {
        outputs,
        weights: r.param(&[outputs, inputs], 0.5),
        bias: r.param(&[outputs], 0.2),
    })
}

fn bn(r: &mut Rng, c: usize) -> K {
    K::BatchNorm(L::BatchNorm {
        channels: c,
        epsilon: 1e-3,
        mean: Some(r.tensor(&[c], 0.5)),
        variance: Some(r.range(&[c], 0.2, 2.0)),
        scale: r.param(&[c], 1.0),
        offset: r.param(&[c], 0.5),
        mean_decay: 0.1,
        variance_decay: 0.1,
    })
}

fn gn(r: &mut Rng, groups: usize, c: usize) -> K {
    K::GroupNorm(L::GroupNorm {
        groups,
        channels: c,
        epsilon: 1e-5,
        scale: r.param(&[c], 1.0),
        offset: r.param(&[c], 0.5),
    })
}

fn lrn(window: usize) -> K {
    K::Lrn(L::Lrn {
        window,
        alpha: 0.3,
        beta: 0.75,
        k: 1.5,
    })
}

fn pool(size: [usize; 2], stride: [usize; 2], padding: PaddingMode, include: bool) -> L::Pool2d {
    L::Pool2d {
        size,
        stride,
        padding,
        count_include_pad: include,
    }
}

fn act(a: A) -> K {
    K::Activation(a)
}

/// A recurrent layer with random weights and initial states.
#[allow(clippy::too_many_arguments)]
fn rnn(
    r: &mut Rng,
    gru: bool,
    bidirectional: bool,
    sequence: bool,
    c: usize,
    h: usize,
    reset: &str,
    [state, gate]: [&str; 2],
) -> K {
    let d = if bidirectional { 2 } else { 1 };
    let rows = if gru { 3 } else { 4 } * h * d;
    let nbias = if reset == "recurrent-bias-after-multiplication" {
        2 * rows
    } else {
        rows
    };
    let rec = L::Recurrent {
        hidden: h,
        input_size: c,
        return_sequence: sequence,
        bidirectional,
        state_activation: state.into(),
        gate_activation: gate.into(),
        input_weights: r.param(&[rows, c], 1.0),
        recurrent_weights: r.param(&[rows, h], 0.8),
        bias: r.param(&[nbias], 0.8),
        reset_gate_mode: reset.into(),
        hidden_state: Some(r.tensor(&[h * d], 0.5)),
        cell_state: if gru {
            None
        } else {
            Some(r.tensor(&[h * d], 0.5))
        },
    };
    if gru { K::Gru(rec) } else { K::Lstm(rec) }
}

/// Unit stride or dilation.
const S1: [usize; 2] = [1, 1];

const TANH_SIGMOID: [&str; 2] = ["tanh", "sigmoid"];

/// An image input with `kind` taking the input, tanh(input) and sigmoid(input) (the first
/// `inputs` of them), in that port order.
fn three_way(kind: K, inputs: usize) -> Network {
    let ports = vec![0, 1, 2][..inputs].to_vec();
    graph(
        image(4, 5, 3),
        vec![
            ("tanh", act(A::Tanh), Some(vec![0])),
            ("sigmoid", act(A::Sigmoid), Some(vec![0])),
            ("combine", kind, Some(ports)),
        ],
    )
}

fn resize(scale: Option<[f64; 2]>, size: Option<[usize; 2]>, method: &str, tf: &str) -> Network {
    graph(
        image(4, 6, 2),
        vec![(
            "resize",
            K::Resize2d {
                scale,
                output_size: size,
                method: method.into(),
                transform: tf.into(),
            },
            None,
        )],
    )
}

/// The five normalizations, statistics `[C, h, w]` (random, max > min, std > 0).
fn norms(r: &mut Rng, shape: [usize; 3]) -> [Normalization; 5] {
    [
        Normalization::None,
        Normalization::ZeroCenter {
            mean: r.tensor(&shape, 1.0),
        },
        Normalization::ZScore {
            mean: r.tensor(&shape, 1.0),
            std: r.range(&shape, 0.5, 3.0),
        },
        Normalization::RescaleSymmetric {
            min: r.range(&shape, -2.0, -0.5),
            max: r.range(&shape, 0.5, 2.0),
        },
        Normalization::RescaleZeroOne {
            min: r.range(&shape, -2.0, -0.5),
            max: r.range(&shape, 0.5, 2.0),
        },
    ]
}

fn norm(i: usize, shape: [usize; 3]) -> Normalization {
    let all = norms(&mut Rng(40 + i as u64), shape);
    all.into_iter().nth(i).expect("five normalizations")
}

fn image_input_row(i: usize, per_element: bool) -> Network {
    let shape = if per_element { [3, 4, 5] } else { [3, 1, 1] };
    chain(
        image_norm(4, 5, 3, norm(i, shape)),
        vec![K::RegressionOutput],
    )
}

fn feature_input_row(i: usize) -> Network {
    chain(features(5, norm(i, [5, 1, 1])), vec![K::RegressionOutput])
}

/// A sequence input, then a fully connected layer (applied per time step).
fn sequence_input_row(i: usize) -> Network {
    let r = &mut Rng(77);
    chain(sequence(3, norm(i, [3, 1, 1])), vec![fc(r, 3, 4)])
}

fn image_act(a: A) -> Network {
    chain(image(3, 4, 2), vec![act(a)])
}

pub fn rows() -> Vec<Row> {
    let mut rows = table();
    // --- seq1d --- (the 1-D layers and layer normalization: conformance/seq1d_rows.rs)
    rows.extend(seq1d_rows::rows());
    rows
}

fn table() -> Vec<Row> {
    use In::{Features, Image, Sequence};
    let img = |h, w, c| Image { h, w, c };
    let si = Shape::image;
    let sf = Shape::features;
    vec![
        // ---- io: input normalization on images, features and sequences ----
        row("image-none", img(4, 5, 3), si(4, 5, 3), || {
            image_input_row(0, false)
        }),
        row(
            "image-zerocenter-channel",
            img(4, 5, 3),
            si(4, 5, 3),
            || image_input_row(1, false),
        ),
        row(
            "image-zerocenter-element",
            img(4, 5, 3),
            si(4, 5, 3),
            || image_input_row(1, true),
        ),
        row("image-zscore-channel", img(4, 5, 3), si(4, 5, 3), || {
            image_input_row(2, false)
        }),
        row("image-zscore-element", img(4, 5, 3), si(4, 5, 3), || {
            image_input_row(2, true)
        }),
        row("image-zscore-scalar", img(4, 5, 3), si(4, 5, 3), || {
            let n = Normalization::ZScore {
                mean: L::Tensor::new(vec![1, 1, 1], vec![0.25]),
                std: L::Tensor::new(vec![1, 1, 1], vec![1.5]),
            };
            chain(image_norm(4, 5, 3, n), vec![K::RegressionOutput])
        }),
        row("image-rescale-symmetric", img(4, 5, 3), si(4, 5, 3), || {
            image_input_row(3, true)
        }),
        row("image-rescale-zero-one", img(4, 5, 3), si(4, 5, 3), || {
            image_input_row(4, false)
        }),
        row("features-none", Features(5), sf(5), || feature_input_row(0)),
        row("features-zerocenter", Features(5), sf(5), || {
            feature_input_row(1)
        }),
        row("features-zscore", Features(5), sf(5), || {
            feature_input_row(2)
        }),
        row("features-rescale-symmetric", Features(5), sf(5), || {
            feature_input_row(3)
        }),
        row("features-rescale-zero-one", Features(5), sf(5), || {
            feature_input_row(4)
        }),
        row("sequence-none-fc", Sequence { c: 3, t: 4 }, sf(4), || {
            sequence_input_row(0)
        }),
        row(
            "sequence-zerocenter-fc",
            Sequence { c: 3, t: 4 },
            sf(4),
            || sequence_input_row(1),
        ),
        row("sequence-zscore-fc", Sequence { c: 3, t: 4 }, sf(4), || {
            sequence_input_row(2)
        }),
        row(
            "sequence-rescale-symmetric-fc",
            Sequence { c: 3, t: 4 },
            sf(4),
            || sequence_input_row(3),
        ),
        row(
            "sequence-rescale-zero-one-fc",
            Sequence { c: 3, t: 4 },
            sf(4),
            || sequence_input_row(4),
        ),
        // ---- conv ----
        row("conv-pad-symmetric", img(5, 6, 3), si(5, 6, 4), || {
            let r = &mut Rng(1);
            chain(
                image(5, 6, 3),
                vec![conv(r, 3, 4, [3, 3], S1, S1, 1, pad(1, 1, 1, 1))],
            )
        }),
        row("conv-pad-asymmetric", img(5, 6, 3), si(6, 5, 4), || {
            let r = &mut Rng(2);
            chain(
                image(5, 6, 3),
                vec![conv(r, 3, 4, [3, 3], S1, S1, 1, pad(0, 3, 1, 0))],
            )
        }),
        row("conv-same-stride1", img(5, 6, 3), si(5, 6, 4), || {
            let r = &mut Rng(3);
            chain(
                image(5, 6, 3),
                vec![conv(r, 3, 4, [3, 2], S1, S1, 1, PaddingMode::Same)],
            )
        }),
        row("conv-same-stride2", img(7, 8, 2), si(4, 4, 3), || {
            let r = &mut Rng(4);
            chain(
                image(7, 8, 2),
                vec![conv(r, 2, 3, [4, 3], [2, 2], S1, 1, PaddingMode::Same)],
            )
        }),
        row("conv-stride-2x3-rect", img(7, 8, 2), si(3, 3, 3), || {
            let r = &mut Rng(5);
            chain(
                image(7, 8, 2),
                vec![conv(r, 2, 3, [2, 3], [2, 3], S1, 1, pad(0, 0, 1, 1))],
            )
        }),
        row("conv-dilation", img(7, 8, 2), si(6, 6, 3), || {
            let r = &mut Rng(6);
            chain(
                image(7, 8, 2),
                vec![conv(r, 2, 3, [3, 3], S1, [2, 3], 1, pad(1, 2, 2, 2))],
            )
        }),
        row("conv-dilation-same", img(7, 8, 2), si(7, 8, 3), || {
            let r = &mut Rng(7);
            chain(
                image(7, 8, 2),
                vec![conv(r, 2, 3, [3, 2], S1, [2, 2], 1, PaddingMode::Same)],
            )
        }),
        row("conv-groups", img(4, 5, 4), si(4, 5, 6), || {
            let r = &mut Rng(8);
            chain(
                image(4, 5, 4),
                vec![conv(r, 4, 6, [3, 3], S1, S1, 2, pad(1, 1, 1, 1))],
            )
        }),
        row("conv-channel-wise", img(4, 5, 3), si(3, 4, 6), || {
            let r = &mut Rng(9);
            chain(
                image(4, 5, 3),
                vec![conv(r, 3, 6, [2, 2], S1, S1, 0, pad(0, 0, 0, 0))],
            )
        }),
        row("conv-no-bias", img(4, 5, 3), si(4, 5, 2), || {
            let r = &mut Rng(10);
            let mut k = conv(r, 3, 2, [1, 1], S1, S1, 1, pad(0, 0, 0, 0));
            if let K::Conv2d(c) = &mut k {
                c.bias = None;
            }
            chain(image(4, 5, 3), vec![k])
        }),
        row("convt-stride2", img(3, 4, 3), si(7, 9, 2), || {
            let r = &mut Rng(11);
            chain(
                image(3, 4, 3),
                vec![convt(r, 3, 2, [3, 3], [2, 2], 1, pad(0, 0, 0, 0))],
            )
        }),
        row("convt-crop-manual", img(3, 4, 3), si(6, 7, 2), || {
            let r = &mut Rng(12);
            chain(
                image(3, 4, 3),
                vec![convt(r, 3, 2, [3, 3], [2, 2], 1, pad(1, 0, 0, 2))],
            )
        }),
        row("convt-crop-same-even", img(3, 4, 3), si(6, 8, 2), || {
            let r = &mut Rng(13);
            chain(
                image(3, 4, 3),
                vec![convt(r, 3, 2, [4, 4], [2, 2], 1, PaddingMode::Same)],
            )
        }),
        row("convt-crop-same-odd", img(3, 4, 3), si(6, 12, 2), || {
            let r = &mut Rng(14);
            chain(
                image(3, 4, 3),
                vec![convt(r, 3, 2, [3, 4], [2, 3], 1, PaddingMode::Same)],
            )
        }),
        row("convt-groups-stride-2x1", img(3, 4, 4), si(7, 5, 6), || {
            let r = &mut Rng(15);
            chain(
                image(3, 4, 4),
                vec![convt(r, 4, 6, [3, 2], [2, 1], 2, pad(0, 0, 0, 0))],
            )
        }),
        row("fc-image", img(3, 4, 2), si(1, 1, 5), || {
            let r = &mut Rng(16);
            chain(image(3, 4, 2), vec![fc(r, 24, 5)])
        }),
        row("fc-features", Features(6), sf(4), || {
            let r = &mut Rng(17);
            chain(features(6, Normalization::None), vec![fc(r, 6, 4)])
        }),
        // ---- norm ----
        row("batchnorm-image", img(3, 4, 3), si(3, 4, 3), || {
            chain(image(3, 4, 3), vec![bn(&mut Rng(18), 3)])
        }),
        row("batchnorm-after-conv", img(4, 4, 2), si(4, 4, 3), || {
            // The CLI folds this one into the convolution.
            let r = &mut Rng(19);
            let c = conv(r, 2, 3, [3, 3], S1, S1, 1, PaddingMode::Same);
            chain(image(4, 4, 2), vec![c, bn(r, 3)])
        }),
        row("batchnorm-features", Features(5), sf(5), || {
            chain(features(5, Normalization::None), vec![bn(&mut Rng(20), 5)])
        }),
        row("groupnorm-3-groups", img(3, 4, 6), si(3, 4, 6), || {
            chain(image(3, 4, 6), vec![gn(&mut Rng(21), 3, 6)])
        }),
        row(
            "groupnorm-1-group-layernorm",
            img(3, 4, 6),
            si(3, 4, 6),
            || chain(image(3, 4, 6), vec![gn(&mut Rng(22), 1, 6)]),
        ),
        row("groupnorm-channel-wise", img(3, 4, 6), si(3, 4, 6), || {
            chain(image(3, 4, 6), vec![gn(&mut Rng(23), 0, 6)])
        }),
        row("lrn-window-5", img(3, 4, 7), si(3, 4, 7), || {
            chain(image(3, 4, 7), vec![lrn(5)])
        }),
        row("lrn-window-4", img(3, 4, 7), si(3, 4, 7), || {
            chain(image(3, 4, 7), vec![lrn(4)])
        }),
        row("lrn-window-2", img(3, 4, 5), si(3, 4, 5), || {
            chain(image(3, 4, 5), vec![lrn(2)])
        }),
        // ---- activation ----
        row("relu", img(3, 4, 2), si(3, 4, 2), || image_act(A::Relu)),
        row("leaky-relu", img(3, 4, 2), si(3, 4, 2), || {
            image_act(A::LeakyRelu { scale: 0.1 })
        }),
        row("clipped-relu", img(3, 4, 2), si(3, 4, 2), || {
            image_act(A::ClippedRelu { ceiling: 0.7 })
        }),
        row("elu", img(3, 4, 2), si(3, 4, 2), || {
            image_act(A::Elu { alpha: 0.8 })
        }),
        row("tanh", img(3, 4, 2), si(3, 4, 2), || image_act(A::Tanh)),
        row("sigmoid", img(3, 4, 2), si(3, 4, 2), || {
            image_act(A::Sigmoid)
        }),
        row("swish", img(3, 4, 2), si(3, 4, 2), || image_act(A::Swish)),
        row("gelu-erf", img(3, 4, 2), si(3, 4, 2), || {
            image_act(A::Gelu { tanh: false })
        }),
        row("gelu-tanh", img(3, 4, 2), si(3, 4, 2), || {
            image_act(A::Gelu { tanh: true })
        }),
        row("relu-features", Features(5), sf(5), || {
            chain(features(5, Normalization::None), vec![act(A::Relu)])
        }),
        row("softmax-image", img(3, 4, 4), si(3, 4, 4), || {
            chain(image(3, 4, 4), vec![K::Softmax])
        }),
        // ---- pool ----
        row("maxpool-2x2-stride2", img(5, 6, 2), si(2, 3, 2), || {
            chain(
                image(5, 6, 2),
                vec![K::MaxPool2d(pool([2, 2], [2, 2], pad(0, 0, 0, 0), true))],
            )
        }),
        row("maxpool-pad-asymmetric", img(5, 6, 2), si(5, 5, 2), || {
            chain(
                image(5, 6, 2),
                vec![K::MaxPool2d(pool([3, 3], S1, pad(1, 1, 0, 1), true))],
            )
        }),
        row("maxpool-same-stride2", img(5, 6, 2), si(3, 3, 2), || {
            chain(
                image(5, 6, 2),
                vec![K::MaxPool2d(pool([3, 2], [2, 2], PaddingMode::Same, true))],
            )
        }),
        row("avgpool-include-pad", img(5, 6, 2), si(3, 3, 2), || {
            chain(
                image(5, 6, 2),
                vec![K::AvgPool2d(pool([3, 3], [2, 2], pad(1, 1, 0, 1), true))],
            )
        }),
        row("avgpool-exclude-pad", img(5, 6, 2), si(3, 3, 2), || {
            chain(
                image(5, 6, 2),
                vec![K::AvgPool2d(pool([3, 3], [2, 2], pad(1, 1, 0, 1), false))],
            )
        }),
        row("avgpool-same-include", img(5, 6, 2), si(3, 3, 2), || {
            chain(
                image(5, 6, 2),
                vec![K::AvgPool2d(pool([2, 3], [2, 2], PaddingMode::Same, true))],
            )
        }),
        row("avgpool-same-exclude", img(5, 6, 2), si(5, 6, 2), || {
            chain(
                image(5, 6, 2),
                vec![K::AvgPool2d(pool([3, 2], S1, PaddingMode::Same, false))],
            )
        }),
        row("global-avg-pool", img(3, 4, 3), si(1, 1, 3), || {
            chain(image(3, 4, 3), vec![K::GlobalAvgPool])
        }),
        row("global-max-pool", img(3, 4, 3), si(1, 1, 3), || {
            chain(image(3, 4, 3), vec![K::GlobalMaxPool])
        }),
        // ---- combine ----
        row("addition-2", img(4, 5, 3), si(4, 5, 3), || {
            three_way(K::Addition { inputs: 2 }, 2)
        }),
        row("addition-3", img(4, 5, 3), si(4, 5, 3), || {
            three_way(K::Addition { inputs: 3 }, 3)
        }),
        row("multiplication-2", img(4, 5, 3), si(4, 5, 3), || {
            three_way(K::Multiplication { inputs: 2 }, 2)
        }),
        row("multiplication-3", img(4, 5, 3), si(4, 5, 3), || {
            three_way(K::Multiplication { inputs: 3 }, 3)
        }),
        row("concat-dim1", img(4, 5, 3), si(12, 5, 3), || {
            three_way(K::Concat { dim: 1, inputs: 3 }, 3)
        }),
        row("concat-dim2", img(4, 5, 3), si(4, 10, 3), || {
            three_way(K::Concat { dim: 2, inputs: 2 }, 2)
        }),
        row("concat-dim3", img(4, 5, 3), si(4, 5, 9), || {
            three_way(K::Concat { dim: 3, inputs: 3 }, 3)
        }),
        row("depth-concat", img(4, 5, 3), si(4, 5, 6), || {
            three_way(K::DepthConcat { inputs: 2 }, 2)
        }),
        row("depth-concat-features", Features(4), sf(8), || {
            graph(
                features(4, Normalization::None),
                vec![
                    ("tanh", act(A::Tanh), Some(vec![0])),
                    ("cat", K::DepthConcat { inputs: 2 }, Some(vec![1, 0])),
                ],
            )
        }),
        // ---- reshape ----
        row("flatten", img(3, 4, 2), sf(24), || {
            chain(image(3, 4, 2), vec![K::Flatten])
        }),
        row("flatten-fc", img(3, 4, 2), sf(5), || {
            chain(image(3, 4, 2), vec![K::Flatten, fc(&mut Rng(24), 24, 5)])
        }),
        row("dropout", img(3, 4, 2), si(3, 4, 2), || {
            chain(image(3, 4, 2), vec![K::Dropout { probability: 0.3 }])
        }),
        row(
            "resize-scale-nearest-half-pixel",
            img(4, 6, 2),
            si(8, 9, 2),
            || resize(Some([2.0, 1.5]), None, "nearest", "half-pixel"),
        )
        .support(Support::Refused("resize2d is not supported")),
        row(
            "resize-size-bilinear-half-pixel",
            img(4, 6, 2),
            si(5, 3, 2),
            || resize(None, Some([5, 3]), "bilinear", "half-pixel"),
        )
        .support(Support::Refused("resize2d is not supported")),
        row(
            "resize-scale-bilinear-asymmetric",
            img(4, 6, 2),
            si(2, 3, 2),
            || resize(Some([0.5, 0.5]), None, "bilinear", "asymmetric"),
        )
        .support(Support::Refused("resize2d is not supported")),
        // ---- outputs ----
        row("classification-output", img(3, 4, 2), si(1, 1, 3), || {
            let r = &mut Rng(25);
            let classes = vec!["cat".into(), "dog".into(), "emu".into()];
            chain(
                image(3, 4, 2),
                vec![
                    fc(r, 24, 3),
                    K::Softmax,
                    K::ClassificationOutput { classes },
                ],
            )
        }),
        row("classification-features", Features(5), sf(3), || {
            let r = &mut Rng(26);
            let classes = vec!["a".into(), "b".into(), "c".into()];
            chain(
                features(5, Normalization::None),
                vec![fc(r, 5, 3), K::Softmax, K::ClassificationOutput { classes }],
            )
        }),
        row("regression-output", img(4, 4, 2), si(4, 4, 1), || {
            let r = &mut Rng(27);
            let c = conv(r, 2, 1, [3, 3], S1, S1, 1, PaddingMode::Same);
            chain(image(4, 4, 2), vec![c, K::RegressionOutput])
        }),
        // ---- recurrent ----
        row("lstm-last", Sequence { c: 3, t: 5 }, sf(4), || {
            let k = rnn(&mut Rng(30), false, false, false, 3, 4, "", TANH_SIGMOID);
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row("lstm-sequence", Sequence { c: 3, t: 5 }, sf(4), || {
            let k = rnn(&mut Rng(31), false, false, true, 3, 4, "", TANH_SIGMOID);
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row("bilstm-last", Sequence { c: 3, t: 5 }, sf(6), || {
            let k = rnn(&mut Rng(32), false, true, false, 3, 3, "", TANH_SIGMOID);
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row("bilstm-sequence-fc", Sequence { c: 3, t: 5 }, sf(2), || {
            let r = &mut Rng(33);
            let k = rnn(r, false, true, true, 3, 3, "", TANH_SIGMOID);
            chain(sequence(3, Normalization::None), vec![k, fc(r, 6, 2)])
        }),
        row(
            "lstm-softsign-hard-sigmoid",
            Sequence { c: 3, t: 5 },
            sf(4),
            || {
                let k = rnn(
                    &mut Rng(34),
                    false,
                    false,
                    true,
                    3,
                    4,
                    "",
                    ["softsign", "hard-sigmoid"],
                );
                chain(sequence(3, Normalization::None), vec![k])
            },
        )
        .support(Support::NoPytorch("softsign")),
        row("gru-last", Sequence { c: 3, t: 5 }, sf(4), || {
            let k = rnn(
                &mut Rng(35),
                true,
                false,
                false,
                3,
                4,
                "after-multiplication",
                TANH_SIGMOID,
            );
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row("gru-sequence", Sequence { c: 3, t: 5 }, sf(4), || {
            let k = rnn(
                &mut Rng(36),
                true,
                false,
                true,
                3,
                4,
                "after-multiplication",
                TANH_SIGMOID,
            );
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row(
            "gru-recurrent-bias-after-last",
            Sequence { c: 3, t: 5 },
            sf(4),
            || {
                let mode = "recurrent-bias-after-multiplication";
                let k = rnn(&mut Rng(37), true, false, false, 3, 4, mode, TANH_SIGMOID);
                chain(sequence(3, Normalization::None), vec![k])
            },
        ),
        row(
            "gru-recurrent-bias-after-sequence",
            Sequence { c: 3, t: 5 },
            sf(4),
            || {
                let mode = "recurrent-bias-after-multiplication";
                let k = rnn(&mut Rng(38), true, false, true, 3, 4, mode, TANH_SIGMOID);
                chain(sequence(3, Normalization::None), vec![k])
            },
        ),
        row(
            "gru-before-multiplication",
            Sequence { c: 3, t: 5 },
            sf(4),
            || {
                let mode = "before-multiplication";
                let k = rnn(&mut Rng(39), true, false, true, 3, 4, mode, TANH_SIGMOID);
                chain(sequence(3, Normalization::None), vec![k])
            },
        )
        .support(Support::NoPytorch("before-multiplication")),
        // --- fold ---
        // Image sequences (CNN-LSTM): 3x4x2 frames as [N, 24, 1, T], features in [C, H, W] order.
        Row {
            reference: reference::image_sequences,
            ..row("fold-conv-unfold-flatten", IMAGE_SEQ, sf(3 * 3 * 4), || {
                fold_row(Normalization::None, false)
            })
        },
        Row {
            reference: reference::image_sequences,
            ..row(
                "fold-zscore-conv-unfold-flatten",
                IMAGE_SEQ,
                sf(3 * 3 * 4),
                || fold_row(norm(2, [2, 3, 4]), false),
            )
        },
        Row {
            reference: reference::image_sequences,
            ..row(
                "fold-zscore-ch-conv-unfold-flatten",
                IMAGE_SEQ,
                sf(3 * 3 * 4),
                || fold_row(norm(2, [2, 1, 1]), false),
            )
        },
        Row {
            reference: reference::image_sequences,
            ..row("fold-conv-fc-unfold-flatten-lstm", IMAGE_SEQ, sf(4), || {
                fold_row(Normalization::None, true)
            })
        },
        // --- rnnproj ---
        row(
            "lstm-projected-last",
            Sequence { c: 3, t: 5 },
            sf(5),
            || {
                let k = projected(&mut Rng(60), false, false, 3, 5, [2, 3], "");
                chain(sequence(3, Normalization::None), vec![k])
            },
        ),
        row(
            "lstm-projected-sequence",
            Sequence { c: 3, t: 5 },
            sf(5),
            || {
                let k = projected(&mut Rng(61), false, true, 3, 5, [2, 3], "");
                chain(sequence(3, Normalization::None), vec![k])
            },
        ),
        row(
            "lstm-projected-stacked-fc",
            Sequence { c: 4, t: 6 },
            sf(2),
            || {
                let r = &mut Rng(62);
                let a = projected(r, false, true, 4, 6, [3, 2], "");
                let b = projected(r, false, false, 6, 4, [2, 3], "");
                chain(sequence(4, Normalization::None), vec![a, b, fc(r, 4, 2)])
            },
        ),
        row("gru-projected-last", Sequence { c: 3, t: 5 }, sf(5), || {
            let mode = "after-multiplication";
            let k = projected(&mut Rng(63), true, false, 3, 5, [2, 3], mode);
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row(
            "gru-projected-sequence",
            Sequence { c: 3, t: 5 },
            sf(5),
            || {
                let mode = "recurrent-bias-after-multiplication";
                let k = projected(&mut Rng(64), true, true, 3, 5, [2, 3], mode);
                chain(sequence(3, Normalization::None), vec![k])
            },
        ),
        // --- attn ---
        row("attention-causal", Sequence { c: 3, t: 5 }, sf(3), || {
            let k = attention(&mut Rng(60), 3, 3, 12, 12, 3, true);
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row("attention-none", Sequence { c: 3, t: 5 }, sf(3), || {
            let k = attention(&mut Rng(61), 3, 3, 12, 12, 3, false);
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row(
            "attention-channels-differ",
            Sequence { c: 4, t: 6 },
            sf(5),
            || {
                // Key and value channels other than the input's, one head and two heads.
                let r = &mut Rng(62);
                let a = attention(r, 1, 4, 6, 2, 3, false);
                let b = attention(r, 2, 3, 8, 10, 5, true);
                chain(sequence(4, Normalization::None), vec![a, b])
            },
        ),
        row("indexing1d-first", Sequence { c: 3, t: 4 }, sf(3), || {
            let k = K::Transformer(L::Transformer::Indexing1d { last: false });
            chain(sequence(3, Normalization::None), vec![k])
        }),
        row("indexing1d-last-fc", Sequence { c: 3, t: 4 }, sf(2), || {
            let r = &mut Rng(63);
            let k = K::Transformer(L::Transformer::Indexing1d { last: true });
            chain(sequence(3, Normalization::None), vec![k, fc(r, 3, 2)])
        }),
        row(
            "position-embedding-add",
            Sequence { c: 3, t: 5 },
            sf(3),
            || {
                // The fixture's pattern: the embedding added to the input (addition of sequences).
                let r = &mut Rng(64);
                let e = K::Transformer(L::Transformer::PositionEmbedding(TR::PositionEmbedding {
                    output_size: 3,
                    max_position: 8,
                    weights: r.param(&[3, 8], 0.5),
                }));
                graph(
                    sequence(3, Normalization::None),
                    vec![
                        ("pos", e, Some(vec![0])),
                        ("add", K::Addition { inputs: 2 }, Some(vec![1, 0])),
                    ],
                )
            },
        ),
        row("sinusoidal-add", Sequence { c: 4, t: 6 }, sf(4), || {
            let e = K::Transformer(L::Transformer::SinusoidalEncoding(TR::SinusoidalEncoding {
                output_size: 4,
            }));
            graph(
                sequence(4, Normalization::None),
                vec![
                    ("enc", e, Some(vec![0])),
                    ("add", K::Addition { inputs: 2 }, Some(vec![0, 1])),
                ],
            )
        }),
        row("embedding-concat", Sequence { c: 3, t: 4 }, sf(3), || {
            let r = &mut Rng(65);
            let e = K::Transformer(L::Transformer::EmbeddingConcat(TR::EmbeddingConcat {
                input_size: 3,
                weights: r.param(&[3], 0.5),
            }));
            chain(sequence(3, Normalization::None), vec![e])
        }),
        row("word-embedding", Sequence { c: 1, t: 6 }, sf(4), || {
            // Random inputs: ids are rounded and those outside 1..NumWords map to the last word.
            let r = &mut Rng(66);
            let e = K::Transformer(L::Transformer::WordEmbedding(TR::WordEmbedding {
                dimension: 4,
                num_words: 3,
                map_to_last: true,
                weights: r.param(&[4, 3], 0.5),
            }));
            chain(sequence(1, Normalization::None), vec![e])
        }),
        // --- yolo ---
        // Max unpooling: a clipped ReLU makes ties (0 and 0.5) inside the windows; padding on
        // top and left; 8x6 leaves the last row and column outside every window.
        row(
            "maxunpool-ties-padding-odd",
            img(8, 6, 2),
            si(8, 6, 2),
            || {
                let window = pool([2, 2], [2, 2], pad(1, 0, 1, 0), false);
                let unpool = L::Unpool2d {
                    pool: "pool".into(),
                    window: window.clone(),
                };
                graph(
                    image(8, 6, 2),
                    vec![
                        ("clip", act(A::ClippedRelu { ceiling: 0.5 }), None),
                        ("pool", K::MaxPool2d(window), None),
                        ("mid", act(A::Tanh), None),
                        ("unpool", K::MaxUnpool2d(unpool), Some(vec![3, 1])),
                    ],
                )
            },
        ),
        row("maxunpool-3x3", img(7, 7, 3), si(7, 7, 3), || {
            let window = pool([3, 3], [3, 3], pad(0, 0, 0, 0), false);
            let unpool = L::Unpool2d {
                pool: "pool".into(),
                window: window.clone(),
            };
            graph(
                image(7, 7, 3),
                vec![
                    ("pool", K::MaxPool2d(window), None),
                    ("mid", act(A::Sigmoid), None),
                    ("unpool", K::MaxUnpool2d(unpool), Some(vec![2, 0])),
                ],
            )
        }),
        // YOLO v2: 2 anchors x (5 + 2 classes) channels.
        row(
            "yolov2-transform-output",
            img(3, 4, 14),
            si(3, 4, 14),
            || {
                chain(
                    image(3, 4, 14),
                    vec![
                        K::Yolov2Transform { anchors: 2 },
                        K::Yolov2Output {
                            anchor_boxes: vec![[8.0, 16.0], [24.0, 12.0]],
                            classes: vec!["car".into(), "bird".into()],
                        },
                    ],
                )
            },
        ),
    ]
}

// --- fold ---

/// An image sequence of 3x4x2 frames (H x W x C), 5 time steps.
const IMAGE_SEQ: In = In::Sequence { c: 24, t: 5 };

/// sequenceInput (3x4x2 frames) → folding → conv 3x3 (2 → 3 channels, padding 1) → ELU →
/// [fully connected 6 →] unfolding (`miniBatchSize` from the folding) → flatten [→ LSTM 'last'].
fn fold_row(normalization: Normalization, fc_lstm: bool) -> Network {
    let r = &mut Rng(91);
    let input = K::SequenceInput {
        size: 24,
        normalization,
        frame: Some(Shape::image(3, 4, 2)),
    };
    let mut layers = vec![
        ("fold", K::SequenceFolding, None),
        (
            "conv",
            conv(r, 2, 3, [3, 3], S1, S1, 1, pad(1, 1, 1, 1)),
            None,
        ),
        ("elu", act(A::Elu { alpha: 1.0 }), None),
    ];
    if fc_lstm {
        layers.push(("fc", fc(r, 36, 6), None));
    }
    let before = layers.len();
    layers.push(("unfold", K::SequenceUnfolding, Some(vec![before, 1])));
    layers.push(("flatten", K::Flatten, None));
    if fc_lstm {
        layers.push((
            "lstm",
            rnn(r, false, false, false, 6, 4, "", TANH_SIGMOID),
            None,
        ));
    }
    graph(input, layers)
}

// --- rnnproj ---

/// A projected LSTM/GRU with random factors and initial states: `InputWeights`
/// `[G*H, IPS]`, `RecurrentWeights` `[G*H, OPS]`, `InputProjector` `[C, IPS]`,
/// `OutputProjector` `[H, OPS]` (`[ips, ops]`).
fn projected(
    r: &mut Rng,
    gru: bool,
    sequence: bool,
    c: usize,
    h: usize,
    [ips, ops]: [usize; 2],
    reset: &str,
) -> K {
    let rows = if gru { 3 } else { 4 } * h;
    let nbias = if reset == "recurrent-bias-after-multiplication" {
        2 * rows
    } else {
        rows
    };
    let rnn = L::Recurrent {
        hidden: h,
        input_size: c,
        return_sequence: sequence,
        bidirectional: false,
        state_activation: "tanh".into(),
        gate_activation: "sigmoid".into(),
        input_weights: r.param(&[rows, ips], 1.0),
        recurrent_weights: r.param(&[rows, ops], 0.8),
        bias: r.param(&[nbias], 0.8),
        reset_gate_mode: reset.into(),
        hidden_state: Some(r.tensor(&[h], 0.5)),
        cell_state: if gru { None } else { Some(r.tensor(&[h], 0.5)) },
    };
    let p = L::Projected {
        rnn,
        input_projector_size: ips,
        output_projector_size: ops,
        input_projector: r.param(&[c, ips], 0.9),
        output_projector: r.param(&[h, ops], 0.9),
    };
    if gru {
        K::GruProjected(p)
    } else {
        K::LstmProjected(p)
    }
}

// --- attn ---

/// A self-attention layer: `heads`, input channels `c`, key, value and output channels.
fn attention(
    r: &mut Rng,
    heads: usize,
    c: usize,
    kc: usize,
    vc: usize,
    o: usize,
    causal: bool,
) -> K {
    K::Transformer(L::Transformer::SelfAttention(Box::new(TR::SelfAttention {
        input_size: c,
        num_heads: heads,
        num_key_channels: kc,
        num_value_channels: vc,
        output_size: o,
        causal,
        dropout: 0.0,
        query_weights: r.param(&[kc, c], 0.8),
        key_weights: r.param(&[kc, c], 0.8),
        value_weights: r.param(&[vc, c], 0.5),
        output_weights: r.param(&[o, vc], 0.5),
        query_bias: r.param(&[kc], 0.3),
        key_bias: r.param(&[kc], 0.3),
        value_bias: r.param(&[vc], 0.2),
        output_bias: r.param(&[o], 0.2),
    })))
}
