//! The 1-D layer family (issue 19, item 1) on the real `adamhrvth-conv1d` networks: a v7
//! classifier (causal `convolution1dLayer`, `layerNormalizationLayer` on sequences,
//! `globalAveragePooling1dLayer`) and a v7.3 autoencoder (`convolution1dLayer` 'same' stride 2,
//! `transposedConv1dLayer` with 'same' cropping). Each runs through `matcnn predict` (CLI) and
//! the library, equals the conformance harness's independent scalar reference, exports to ONNX
//! that onnxruntime runs to the same outputs, and is timed by `matcnn bench`. The layer kinds in
//! all their variants are rows of `tests/conformance.rs`.

mod common;
#[allow(dead_code)]
#[path = "conformance/reference.rs"]
mod reference;

use common::{fixture, matcnn as run_cli, matcnn_ok, python, result_line, run_py, scratch};
use matcnn::data;
use matcnn::mat::MatFile;
use matcnn::model::{MatNet, Sequence};
use matcnn::net::{self, LayerKind, Network, Padding1d};
use std::path::Path;

const CLASSIFIER: &str =
    "adamhrvth-conv1d/CONVnet_sys1_minmax_c1_0_5_c3_0_5_1_5_IC_0_7_2_1600samples.mat";
const AUTOENCODER: &str = "adamhrvth-conv1d/conv_autoencoder_system1_after.mat";

fn load(rel: &str) -> Network {
    let f = MatFile::read(fixture(rel)).unwrap();
    net::import(&f, None).unwrap()
}

fn path(rel: &str) -> String {
    fixture(rel).display().to_string()
}

/// `n` damped oscillations of `t` steps in [-1, 1] (the fixtures were trained on displacements
/// scaled to [-1, 1]), one channel, row-major `[n, 1, t]`.
fn signals(n: usize, t: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let f = 0.01 + 0.007 * i as f64;
            (0..t).map(move |k| {
                let k = k as f64;
                ((2.0 * std::f64::consts::PI * f * k).cos() * (-k / (t as f64)).exp()) as f32
            })
        })
        .collect()
}

fn write_npy(p: &Path, shape: &[usize], v: &[f32]) {
    std::fs::write(p, data::npy_bytes(v, shape)).unwrap();
}

fn read_npy(p: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(p).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

/// The network on one sequence through the scalar reference of the conformance harness.
fn reference_output(net: &Network, x: &[f32], t: usize) -> Vec<f64> {
    let mut a = reference::Act::new(1, 1, t, true);
    a.v = x.iter().map(|&v| v as f64).collect();
    reference::network(net, &a).v
}

fn max_rel(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn classifier_imports_every_layer_with_sequence_sizes() {
    let net = load(CLASSIFIER);
    assert!(net.unsupported().is_empty(), "{:?}", net.unsupported());
    match &net.layers[1].kind {
        LayerKind::Conv1d(c) => {
            assert_eq!((c.filter, c.in_channels, c.filters), (20, 1, 32));
            assert_eq!(c.padding, Padding1d::Causal);
            assert_eq!(c.weights.as_ref().unwrap().value.shape, vec![32, 1, 20]);
        }
        k => panic!("{k:?}"),
    }
    match &net.layers[3].kind {
        // Saved without OperationDimension: normalizes over channels and time.
        LayerKind::LayerNorm(n) => {
            assert_eq!(n.operation_dimension, "");
            assert!(!n.channel_only(true));
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(net.layers[7].kind, LayerKind::GlobalAvgPool1d));
    assert!(!net.outputs_sequence());
    let seq = net.sequence_outputs();
    assert_eq!(
        &seq[..9],
        &[true, true, true, true, true, true, true, false, false]
    );

    let o = matcnn_ok(&["inspect", "--model", &path(CLASSIFIER)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Unsupported layers: none"), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    assert!(line("conv1d_1").contains("32 x T"), "{text}");
    assert!(line("conv1d_1").contains("'causal'"), "{text}");
    assert!(line("layernorm_2").contains("64 x T"), "{text}");
    let gap = line("globalavgpool1d");
    assert!(
        gap.trim_end().ends_with('0') && !gap.contains(" x T"),
        "{gap}"
    );
    assert!(text.contains("Outputs: classoutput (2)"), "{text}");
}

#[test]
fn autoencoder_imports_every_layer() {
    let net = load(AUTOENCODER);
    assert!(net.unsupported().is_empty(), "{:?}", net.unsupported());
    match &net.layers[1].kind {
        LayerKind::Conv1d(c) => {
            assert_eq!((c.filter, c.stride, c.filters), (20, 2, 128));
            assert_eq!(c.padding, Padding1d::Same);
        }
        k => panic!("{k:?}"),
    }
    let crops: Vec<[usize; 2]> = net
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::ConvTranspose1d(c) => Some(c.cropping),
            _ => None,
        })
        .collect();
    // MATLAB's stored CroppingSize: k 20, stride 2 → [9 9]; stride 1 → [9 10].
    assert_eq!(crops, vec![[9, 9], [9, 9], [9, 10]]);
    assert!(net.outputs_sequence());
}

/// Both networks, in the library, equal the scalar reference on a few signal lengths (odd
/// lengths exercise 'same' padding with an uneven split).
#[test]
fn fixtures_equal_the_scalar_reference() {
    let dev = burn::prelude::Device::flex();
    for (rel, lengths) in [(CLASSIFIER, [57, 200]), (AUTOENCODER, [101, 400])] {
        let net = load(rel);
        let model = MatNet::from_network(&net, &dev).unwrap();
        for t in lengths {
            let x = signals(1, t);
            let seq = Sequence {
                data: x.clone(),
                channels: 1,
                steps: t,
            };
            let out = model.predict_sequences(&[seq], 1, &dev, |_| {}).unwrap();
            // [T_out, K] → the reference's K x T_out.
            let (k, steps) = (out[0].k, out[0].steps);
            let got: Vec<f32> = (0..k)
                .flat_map(|kk| (0..steps).map(move |s| (kk, s)))
                .map(|(kk, s)| out[0].data[s * k + kk])
                .collect();
            let want = reference_output(&net, &x, t);
            let d = max_rel(&got, &want);
            eprintln!("{rel} T={t}: {steps} steps x {k}, max rel diff {d:.2e}");
            assert!(d <= 1e-5, "{rel} T={t}: {d}");
        }
    }
}

/// Runs `predict` on `[n, 1, t]` signals; returns the output's shape and values.
fn cli_predict(dir: &Path, rel: &str, n: usize, t: usize) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let x = signals(n, t);
    let input = dir.join("input.npy");
    write_npy(&input, &[n, 1, t], &x);
    let out = dir.join("out.npy");
    matcnn_ok(&[
        "predict",
        "--model",
        &path(rel),
        "--input",
        &input.display().to_string(),
        "--output",
        &out.display().to_string(),
        "--batch-size",
        "3",
    ]);
    let (shape, y) = read_npy(&out);
    (shape, y, x)
}

/// `export --format onnx` of `rel`, run by onnxruntime on `input.npy` in `dir`, equals
/// `expected` (any shape with the same values in order) within `max_abs`.
fn onnx_matches(dir: &Path, rel: &str, expected: &[f32], shape: &[usize], classes: usize) {
    let onnx = dir.join("model.onnx");
    matcnn_ok(&[
        "export",
        "--model",
        &path(rel),
        "--format",
        "onnx",
        "--output",
        &onnx.display().to_string(),
    ]);
    let Some(py) = python() else {
        return;
    };
    write_npy(&dir.join("expected.npy"), shape, expected);
    let d = |f: &str| dir.join(f).display().to_string();
    let mut args = vec![
        d("model.onnx"),
        d("input.npy"),
        d("expected.npy"),
        "--max-abs".into(),
        "1e-5".into(),
    ];
    if classes > 0 {
        args.extend(["--classes".into(), classes.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let r = result_line(&run_py(&py, "onnx_check.py", &args));
    eprintln!("{rel}: ONNX {r}");
    assert!(!r.is_empty());
}

#[test]
fn classifier_predicts_through_the_cli_and_its_onnx_export_agrees() {
    let dir = scratch("seq1d", "classifier");
    let (n, t) = (5, 400);
    let (shape, y, _) = cli_predict(&dir, CLASSIFIER, n, t);
    assert_eq!(shape, vec![n, 2]);
    let net = load(CLASSIFIER);
    for (i, row) in y.chunks(2).enumerate() {
        assert!((row[0] + row[1] - 1.0).abs() < 1e-5, "{row:?}");
        let label = if row[0] >= row[1] { 0 } else { 1 };
        eprintln!(
            "signal {i}: P = [{:.4} {:.4}] → '{}'",
            row[0], row[1], net.classes[label]
        );
    }
    onnx_matches(&dir, CLASSIFIER, &y, &[n, 2], 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn autoencoder_reconstructs_through_the_cli_and_its_onnx_export_agrees() {
    let dir = scratch("seq1d", "autoencoder");
    let (n, t) = (3, 1000);
    let (shape, y, x) = cli_predict(&dir, AUTOENCODER, n, t);
    // [N, T, K] with K = 1: the same order as the exports' [N, K, T].
    assert_eq!(shape, vec![n, t, 1]);
    let rmse = (y
        .iter()
        .zip(&x)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / (n * t) as f64)
        .sqrt();
    let rms = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / (n * t) as f64).sqrt();
    eprintln!("autoencoder: reconstruction RMSE {rmse:.4} (signal RMS {rms:.4})");
    assert!(rmse.is_finite());
    onnx_matches(&dir, AUTOENCODER, &y, &[n, 1, t], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_channel_count_is_an_error_and_writes_nothing() {
    let dir = scratch("seq1d", "channels");
    let input = dir.join("input.npy");
    write_npy(&input, &[2, 3, 50], &vec![0.5; 300]);
    let out = dir.join("out.npy");
    let o = run_cli(&[
        "predict",
        "--model",
        &path(CLASSIFIER),
        "--input",
        &input.display().to_string(),
        "--output",
        &out.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains('3') && err.contains('1'), "{err}");
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_times_both_networks() {
    for rel in [CLASSIFIER, AUTOENCODER] {
        let o = matcnn_ok(&[
            "bench",
            "--model",
            &path(rel),
            "--batch",
            "1,2",
            "--repeat",
            "1",
            "--warmup",
            "0",
            "--steps",
            "256",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let f = v["forward"].as_array().unwrap();
        assert_eq!(f.len(), 2);
        for r in f {
            assert!(r["median_ms"].as_f64().unwrap() > 0.0, "{r}");
        }
        eprintln!(
            "{rel}: batch 1 {:.2} ms, batch 2 {:.2} ms (256 steps)",
            f[0]["median_ms"], f[1]["median_ms"]
        );
    }
}

/// A sequence shorter than a 1-D window is a typed error naming the length needed (MATLAB
/// refuses sequences shorter than the network's MinLength), not a panic.
#[test]
fn too_short_sequences_are_an_error() {
    use matcnn::net::layer::{Conv1d, Layer, Normalization, Param, SourceKind, Tensor};
    let p = |shape: Vec<usize>| {
        let n = shape.iter().product();
        Some(Param {
            value: Tensor::new(shape, vec![0.1; n]),
            lr_factor: 1.0,
            l2_factor: 1.0,
        })
    };
    let layer = |name: &str, kind: LayerKind, inputs: Vec<usize>| Layer {
        name: name.into(),
        class: format!("test.{name}"),
        kind,
        inputs,
        output: None,
    };
    let mut net = Network {
        variable: "net".into(),
        source: SourceKind::LayerArray,
        layers: vec![
            layer(
                "in",
                LayerKind::SequenceInput {
                    size: 2,
                    normalization: Normalization::None,
                    frame: None,
                },
                vec![],
            ),
            layer(
                "conv",
                LayerKind::Conv1d(Conv1d {
                    filter: 3,
                    in_channels: 2,
                    filters: 1,
                    stride: 1,
                    dilation: 2,
                    padding: Padding1d::Manual([0, 0]),
                    weights: p(vec![1, 2, 3]),
                    bias: p(vec![1]),
                }),
                vec![0],
            ),
        ],
        outputs: vec![1],
        classes: vec![],
        detector: None,
        notes: vec![],
        same_padding: Vec::new(),
    };
    net::shape::infer(&mut net, &[]).unwrap();
    let dev = burn::prelude::Device::flex();
    let model = MatNet::from_network(&net, &dev).unwrap();
    let seq = |t: usize| Sequence {
        data: vec![1.0; 2 * t],
        channels: 2,
        steps: t,
    };
    let e = model
        .predict_sequences(&[seq(4)], 1, &dev, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 5 time steps"), "{e}");
    let ok = model.predict_sequences(&[seq(5)], 1, &dev, |_| {}).unwrap();
    assert_eq!(ok[0].steps, 1);
}

/// The Rust source export: layer normalization over a whole image is Burn's one-group
/// `GroupNorm` (the generated source parses); per-position statistics and sequence networks are
/// refused with the reason.
#[test]
fn rust_source_export_of_layer_normalization() {
    use matcnn::export::{self, ExportOptions};
    use matcnn::net::layer::{Layer, LayerNorm, Normalization, Param, Shape, SourceKind, Tensor};
    let net = |operation_dimension: &str| {
        let p = |v: f32| {
            Some(Param {
                value: Tensor::new(vec![3], vec![v; 3]),
                lr_factor: 1.0,
                l2_factor: 1.0,
            })
        };
        let mut n = Network {
            variable: "net".into(),
            source: SourceKind::LayerArray,
            layers: vec![
                Layer {
                    name: "in".into(),
                    class: "test.in".into(),
                    kind: LayerKind::ImageInput {
                        size: Shape::image(4, 4, 3),
                        normalization: Normalization::None,
                    },
                    inputs: vec![],
                    output: None,
                },
                Layer {
                    name: "ln".into(),
                    class: "nnet.cnn.layer.LayerNormalizationLayer".into(),
                    kind: LayerKind::LayerNorm(LayerNorm {
                        channels: 3,
                        epsilon: 1e-5,
                        operation_dimension: operation_dimension.into(),
                        scale: p(1.5),
                        offset: p(0.25),
                    }),
                    inputs: vec![0],
                    output: None,
                },
            ],
            outputs: vec![1],
            classes: vec![],
            detector: None,
            notes: vec![],
            same_padding: Vec::new(),
        };
        net::shape::infer(&mut n, &[]).unwrap();
        n
    };
    let opts = ExportOptions::default();
    let files = export::rust_source(&net("auto"), &opts).unwrap();
    let src = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(src.contains("GroupNormConfig::new(1, 3)"), "{src}");
    syn::parse_file(&src).unwrap();
    let e = export::rust_source(&net("channel-only"), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'ln'") && e.contains("channel-only"), "{e}");
    let e = export::rust_source(&load(CLASSIFIER), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sequence networks"), "{e}");
}

/// Fine-tuning support: on an autodiff device, the gradients of the classifier's 1-D
/// convolution weights and layer normalization scales equal central finite differences.
#[test]
fn gradients_of_conv1d_and_layer_norm_equal_finite_differences() {
    use burn::prelude::*;
    use matcnn::model::Op;
    let net = load(CLASSIFIER);
    let dev = Device::flex().autodiff();
    let model = MatNet::from_network(&net, &dev).unwrap();
    let (n, t) = (3, 60);
    let x = Tensor::<4>::from_data(TensorData::new(signals(n, t), [n, 1, 1, t]), &dev);
    // -log P(first class), averaged.
    let loss = |m: &MatNet| -> Tensor<1> {
        let p = m.forward(x.clone()).reshape([n, 2]);
        p.slice([0..n, 0..1]).log().sum().neg().div_scalar(n as f64)
    };
    let grads = loss(&model).backward();
    let mut checked = 0;
    for (i, node) in model.nodes.iter().enumerate() {
        let (g, dims): (Vec<f32>, Vec<usize>) = match &node.op {
            Op::Conv1d(c) => (
                c.weight
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_to_vec()
                    .unwrap(),
                c.weight.val().dims().to_vec(),
            ),
            Op::LayerNorm(l) => (
                l.gamma
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_to_vec()
                    .unwrap(),
                l.gamma.val().dims().to_vec(),
            ),
            _ => continue,
        };
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|a, b| g[*b].abs().total_cmp(&g[*a].abs()));
        for &j in &idx[..2] {
            let h = 1e-2f32;
            let mut fd = [0f32; 2];
            for (s, sign) in [1f32, -1.0].into_iter().enumerate() {
                let mut m = model.clone();
                let mut d = vec![0f32; g.len()];
                d[j] = sign * h;
                match &mut m.nodes[i].op {
                    Op::Conv1d(c) => {
                        let d = Tensor::<4>::from_data(TensorData::new(d, dims.clone()), &dev);
                        c.weight = c.weight.clone().map(|w| w + d);
                    }
                    Op::LayerNorm(l) => {
                        let d = Tensor::<1>::from_data(TensorData::new(d, dims.clone()), &dev);
                        l.gamma = l.gamma.clone().map(|w| w + d);
                    }
                    _ => unreachable!(),
                }
                fd[s] = loss(&m).into_scalar::<f32>();
            }
            let fd = (fd[0] - fd[1]) / (2.0 * h);
            assert!(
                (fd - g[j]).abs() <= 0.1 * g[j].abs() + 1e-4,
                "{} parameter {j}: autodiff {} finite differences {fd}",
                node.name,
                g[j]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}

/// 'same' padding that depends on the input length (stride above 1) with a dilation above 1:
/// onnxruntime refuses auto_pad with a dilation, so the ONNX graph computes the pads from T
/// (checked in onnxruntime by the conformance rows); PyTorch pads per input length too.
#[test]
fn same_padding_with_stride_and_dilation_exports() {
    use matcnn::export::{self, ExportOptions};
    use matcnn::net::layer::{Conv1d, Layer, Normalization, Param, SourceKind, Tensor};
    let p = |shape: Vec<usize>| {
        let n = shape.iter().product();
        Some(Param {
            value: Tensor::new(shape, vec![0.1; n]),
            lr_factor: 1.0,
            l2_factor: 1.0,
        })
    };
    let mut net = Network {
        variable: "net".into(),
        source: SourceKind::LayerArray,
        layers: vec![
            Layer {
                name: "in".into(),
                class: "test.in".into(),
                kind: LayerKind::SequenceInput {
                    size: 2,
                    normalization: Normalization::None,
                    frame: None,
                },
                inputs: vec![],
                output: None,
            },
            Layer {
                name: "conv".into(),
                class: "nnet.cnn.layer.Convolution1DLayer".into(),
                kind: LayerKind::Conv1d(Conv1d {
                    filter: 3,
                    in_channels: 2,
                    filters: 1,
                    stride: 2,
                    dilation: 2,
                    padding: Padding1d::Same,
                    weights: p(vec![1, 2, 3]),
                    bias: p(vec![1]),
                }),
                inputs: vec![0],
                output: None,
            },
        ],
        outputs: vec![1],
        classes: vec![],
        detector: None,
        notes: vec![],
        same_padding: Vec::new(),
    };
    net::shape::infer(&mut net, &[]).unwrap();
    let opts = ExportOptions::default();
    let onnx = export::onnx(&net, &opts).unwrap();
    assert!(!onnx.is_empty());
    let files = export::pytorch(&net, &opts).unwrap();
    let py = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(py.contains("matlab_same_pad1d(x, 3, 2, 2)"), "{py}");
}

/// `predict` reads a 1-D signal stored in a `.mat` as one `C x T` matrix (here 1 x 300) and
/// gives the same probabilities as the `.npy` `[1, 1, 300]` form of it.
#[test]
fn classifier_reads_a_mat_signal() {
    let dir = scratch("seq1d", "mat-input");
    let t = 300;
    let x = signals(1, t);
    let mat = dir.join("signal.mat");
    std::fs::write(&mat, data::mat_bytes("X", &x, 1, t)).unwrap();
    let npy = dir.join("signal.npy");
    write_npy(&npy, &[1, 1, t], &x);
    let mut outs = Vec::new();
    for (input, out) in [
        (format!("{}:X", mat.display()), dir.join("a.npy")),
        (npy.display().to_string(), dir.join("b.npy")),
    ] {
        matcnn_ok(&[
            "predict",
            "--model",
            &path(CLASSIFIER),
            "--input",
            &input,
            "--output",
            &out.display().to_string(),
        ]);
        outs.push(read_npy(&out));
    }
    assert_eq!(outs[0].0, vec![1, 2]);
    assert_eq!(outs[0], outs[1]);
    let _ = std::fs::remove_dir_all(&dir);
}
