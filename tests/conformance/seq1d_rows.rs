//! Conformance rows of the 1-D layers over time (`Conv1d`, `ConvTranspose1d`, `MaxPool1d`,
//! `AvgPool1d`, global pooling over time) and of layer normalization on sequences, features and
//! images, appended at the end of the table by `rows()`.

use super::{In, Rng, Row, chain, fc, features, image, row, sequence};
use matcnn::net::layer::{self as L, LayerKind as K, Network, Normalization, Shape};

pub fn rows() -> Vec<Row> {
    use In::{Features, Image, Sequence};
    let img = |h, w, c| Image { h, w, c };
    let si = Shape::image;
    let sf = Shape::features;
    vec![
        row("conv1d-causal", Sequence { c: 3, t: 9 }, sf(4), || {
            seq1d_conv_net(3, 4, 3, 1, 1, L::Padding1d::Causal)
        }),
        row("conv1d-same-even", Sequence { c: 3, t: 9 }, sf(4), || {
            seq1d_conv_net(3, 4, 4, 1, 1, L::Padding1d::Same)
        }),
        row(
            "conv1d-same-stride2",
            Sequence { c: 3, t: 9 },
            sf(2),
            || seq1d_conv_net(3, 2, 4, 2, 1, L::Padding1d::Same),
        ),
        row("conv1d-explicit", Sequence { c: 2, t: 7 }, sf(3), || {
            seq1d_conv_net(2, 3, 3, 1, 1, L::Padding1d::Manual([2, 1]))
        }),
        row("conv1d-stride2", Sequence { c: 2, t: 8 }, sf(3), || {
            seq1d_conv_net(2, 3, 3, 2, 1, L::Padding1d::Manual([0, 0]))
        }),
        row(
            "conv1d-dilation2-causal",
            Sequence { c: 2, t: 9 },
            sf(3),
            || seq1d_conv_net(2, 3, 3, 1, 2, L::Padding1d::Causal),
        ),
        row(
            "conv1d-dilation2-same",
            Sequence { c: 2, t: 9 },
            sf(3),
            || seq1d_conv_net(2, 3, 3, 1, 2, L::Padding1d::Same),
        ),
        row(
            "conv1d-same-stride2-dilation2",
            Sequence { c: 2, t: 10 },
            sf(3),
            || seq1d_conv_net(2, 3, 3, 2, 2, L::Padding1d::Same),
        ),
        row(
            "conv1d-same-stride3-dilation2-odd",
            Sequence { c: 2, t: 11 },
            sf(3),
            || seq1d_conv_net(2, 3, 4, 3, 2, L::Padding1d::Same),
        ),
        row(
            "tconv1d-same-stride2",
            Sequence { c: 3, t: 5 },
            sf(2),
            || seq1d_tconv_net(3, 2, 4, 2, [1, 1], true),
        ),
        row(
            "tconv1d-same-stride1",
            Sequence { c: 3, t: 5 },
            sf(2),
            || seq1d_tconv_net(3, 2, 4, 1, [1, 2], true),
        ),
        row("tconv1d-explicit", Sequence { c: 2, t: 5 }, sf(3), || {
            seq1d_tconv_net(2, 3, 3, 2, [1, 0], false)
        }),
        row(
            "tconv1d-stride3-uncropped",
            Sequence { c: 2, t: 4 },
            sf(2),
            || seq1d_tconv_net(2, 2, 2, 3, [0, 0], false),
        ),
        row(
            "maxpool1d-same-stride2",
            Sequence { c: 3, t: 9 },
            sf(3),
            || seq1d_pool_net(true, 3, 2, L::Padding1d::Same, true),
        ),
        row("maxpool1d-explicit", Sequence { c: 3, t: 8 }, sf(3), || {
            seq1d_pool_net(true, 2, 1, L::Padding1d::Manual([1, 0]), true)
        }),
        row("maxpool1d-causal", Sequence { c: 3, t: 8 }, sf(3), || {
            seq1d_pool_net(true, 3, 1, L::Padding1d::Causal, true)
        }),
        row(
            "avgpool1d-causal-stride2",
            Sequence { c: 3, t: 8 },
            sf(3),
            || seq1d_pool_net(false, 3, 2, L::Padding1d::Causal, true),
        ),
        row("avgpool1d-same", Sequence { c: 3, t: 9 }, sf(3), || {
            seq1d_pool_net(false, 4, 2, L::Padding1d::Same, true)
        }),
        row(
            "avgpool1d-explicit-mean-padding",
            Sequence { c: 3, t: 8 },
            sf(3),
            || seq1d_pool_net(false, 3, 2, L::Padding1d::Manual([1, 1]), false),
        ),
        row("gap1d-classifier", Sequence { c: 2, t: 7 }, sf(2), || {
            // The adamhrvth-conv1d classifier's shape: conv, GAP over time, fc, softmax.
            let r = &mut Rng(61);
            let classes = vec!["a".to_string(), "b".to_string()];
            chain(
                sequence(2, Normalization::None),
                vec![
                    seq1d_conv(r, 2, 4, 3, 1, 1, L::Padding1d::Causal),
                    K::GlobalAvgPool1d,
                    fc(r, 4, 2),
                    K::Softmax,
                    K::ClassificationOutput { classes },
                ],
            )
        }),
        row("gmp1d", Sequence { c: 3, t: 6 }, sf(3), || {
            chain(sequence(3, Normalization::None), vec![K::GlobalMaxPool1d])
        }),
        row(
            "layernorm-sequence-no-opdim",
            Sequence { c: 3, t: 5 },
            sf(3),
            || seq1d_ln_net(Some((3, 5)), None, ""),
        ),
        row(
            "layernorm-sequence-auto",
            Sequence { c: 3, t: 5 },
            sf(3),
            || seq1d_ln_net(Some((3, 5)), None, "auto"),
        ),
        row(
            "layernorm-sequence-batch-excluded",
            Sequence { c: 3, t: 5 },
            sf(3),
            || seq1d_ln_net(Some((3, 5)), None, "batch-excluded"),
        ),
        row("layernorm-features", Features(5), sf(5), || {
            seq1d_ln_net(None, None, "auto")
        }),
        row("layernorm-image-auto", img(3, 4, 3), si(3, 4, 3), || {
            seq1d_ln_net(None, Some((3, 4, 3)), "auto")
        }),
        row(
            "layernorm-image-channel-only",
            img(3, 4, 3),
            si(3, 4, 3),
            || seq1d_ln_net(None, Some((3, 4, 3)), "channel-only"),
        ),
    ]
}

fn seq1d_conv(
    r: &mut Rng,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: L::Padding1d,
) -> K {
    K::Conv1d(L::Conv1d {
        filter: k,
        in_channels: cin,
        filters: cout,
        stride,
        dilation,
        padding,
        weights: r.param(&[cout, cin, k], 0.5),
        bias: r.param(&[cout], 0.2),
    })
}

fn seq1d_conv_net(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: L::Padding1d,
) -> Network {
    let r = &mut Rng(50 + k as u64 * 7 + stride as u64 * 3 + dilation as u64);
    let c = seq1d_conv(r, cin, cout, k, stride, dilation, padding);
    chain(sequence(cin, Normalization::None), vec![c])
}

fn seq1d_tconv_net(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    cropping: [usize; 2],
    same: bool,
) -> Network {
    let r = &mut Rng(70 + k as u64 * 5 + stride as u64);
    let c = K::ConvTranspose1d(L::ConvTranspose1d {
        filter: k,
        in_channels: cin,
        filters: cout,
        stride,
        cropping,
        same,
        weights: r.param(&[cin, cout, k], 0.5),
        bias: r.param(&[cout], 0.2),
    });
    chain(sequence(cin, Normalization::None), vec![c])
}

fn seq1d_pool_net(
    max: bool,
    size: usize,
    stride: usize,
    padding: L::Padding1d,
    count_include_pad: bool,
) -> Network {
    let p = L::Pool1d {
        size,
        stride,
        padding,
        count_include_pad,
    };
    let k = if max {
        K::MaxPool1d(p)
    } else {
        K::AvgPool1d(p)
    };
    chain(sequence(3, Normalization::None), vec![k])
}

/// Layer normalization on a sequence `(C, T)`, an image `(H, W, C)` or 5 features.
fn seq1d_ln_net(
    seq: Option<(usize, usize)>,
    img: Option<(usize, usize, usize)>,
    operation_dimension: &str,
) -> Network {
    let r = &mut Rng(90 + operation_dimension.len() as u64);
    let (input, c) = match (seq, img) {
        (Some((c, _)), _) => (sequence(c, Normalization::None), c),
        (None, Some((h, w, c))) => (image(h, w, c), c),
        _ => (features(5, Normalization::None), 5),
    };
    let n = K::LayerNorm(L::LayerNorm {
        channels: c,
        epsilon: 1e-5,
        operation_dimension: operation_dimension.into(),
        scale: r.param(&[c], 1.0),
        offset: r.param(&[c], 0.5),
    });
    chain(input, vec![n])
}
