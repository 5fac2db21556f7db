//! Imported networks run as Burn modules and give MATLAB's numbers: MATLAB-made references,
//! numpy references and accuracy on labelled data, on the real fixtures.

use burn::prelude::*;
use matcnn::data;
use matcnn::mat::MatFile;
use matcnn::model::MatNet;
use matcnn::net::{self, LayerKind, Network};

mod common;
use common::fixture;

fn network(rel: &str) -> Network {
    let f = MatFile::read(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    net::import(&f, None).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn device() -> Device {
    Device::flex()
}

/// Reads a float32/float64 .npy file.
fn npy(rel: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(fixture(rel)).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().iter().map(|&d| d as usize).collect();
    let data = match f.dtype() {
        npyz::DType::Plain(t) if t.size_field() == 8 => f
            .into_vec::<f64>()
            .unwrap()
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        _ => f.into_vec::<f32>().unwrap(),
    };
    (data, shape)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap()
}

fn softmax_rows(v: &mut [f32], k: usize) {
    for row in v.chunks_mut(k) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = row.iter().map(|x| (x - m).exp()).sum();
        row.iter_mut().for_each(|x| *x = (*x - m).exp() / s);
    }
}

/// Runs the network as built, and checks that the inference build (batch normalization folded
/// into the layers before it) gives the same outputs.
fn run(net: &Network, data: &[f32], shape: [usize; 4]) -> (Vec<f32>, usize) {
    let dev = device();
    let m = MatNet::from_network(net, &dev).unwrap_or_else(|e| panic!("{e}"));
    let (out, k) = m.predict(data, shape, 100, &dev, |_| {});
    let bn = net
        .layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::BatchNorm(_)))
        .count();
    // The inference build: batch norm folded, and on the CPU matcnn's own convolution kernel
    // with fused ReLU.
    let (folded, n) = m.fold_batch_norm();
    assert!(n <= bn);
    let fast = folded.prepare_cpu();
    let convs = fast.nodes.iter().filter(|n| n.fast.is_some()).count();
    // Concatenations of convolutions are written in place by them (SqueezeNet's fire modules).
    let parts = fast
        .nodes
        .iter()
        .filter(|n| n.concat_into.is_some())
        .count();
    let concats = net
        .layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::DepthConcat { .. }))
        .count();
    assert!(
        concats == 0 || parts >= 2 * concats,
        "{parts} parts for {concats} concatenations"
    );
    let (out2, _) = fast.predict(data, shape, 100, &dev, |_| {});
    let scale = out.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
    let d = out
        .iter()
        .zip(&out2)
        .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
    eprintln!(
        "{n} of {bn} batch norms folded, {convs} convolutions on matcnn's kernel, {parts} writing into concatenations, max |difference| {d:e}"
    );
    assert!(d <= 1e-5 * scale.max(1.0), "inference build differs by {d}");
    (out, k)
}

fn mnist_labels(rel: &str, n: usize) -> Vec<usize> {
    std::fs::read(fixture(rel)).unwrap()[8..8 + n]
        .iter()
        .map(|&b| b as usize)
        .collect()
}

#[test]
fn mnist_workshop_all_test_digits() {
    let net = network("mw-workshop-mnist/MNIST_Network.mat");
    let (raw, labels) = common::mnist_t10k();
    let images: Vec<f32> = raw.iter().map(|&b| b as f32).collect();
    let (out, k) = run(&net, &images, [10000, 1, 28, 28]);
    assert_eq!(k, 10);
    let labels: Vec<usize> = labels.iter().map(|&b| b as usize).collect();
    let correct = out
        .chunks(k)
        .zip(&labels)
        .filter(|(p, l)| argmax(p) == **l)
        .count();
    assert_eq!(correct, 9811, "accuracy {}", correct as f64 / 100.0);
    let (reference, shape) = npy("mw-workshop-mnist/numpy_ref_probs_t10k.npy");
    assert_eq!(shape, [10000, 10]);
    let d = max_abs_diff(&out, &reference);
    assert!(d <= 1e-4, "max |difference| to the numpy reference: {d}");
}

#[test]
fn chandrachapa_matlab_array_input() {
    let net = network("chandrachapa-mnist-bn/net.mat");
    let spec = format!(
        "{}:img_V",
        fixture("chandrachapa-mnist-bn/MNIST_Validation.mat").display()
    );
    let batch = data::load_array(&spec, [28, 28, 1], true).unwrap();
    assert_eq!(batch.shape, [2000, 1, 28, 28]);
    let (mut out, k) = run(&net, &batch.data, batch.shape);
    // The reference holds probabilities (MANIFEST.md says the network has no softmax; it has one).
    if !net
        .layers
        .iter()
        .any(|l| matches!(l.kind, LayerKind::Softmax))
    {
        softmax_rows(&mut out, k);
    }
    let labels = mnist_labels("chandrachapa-mnist-bn/train-labels-idx1-ubyte", 2000);
    let correct = out
        .chunks(k)
        .zip(&labels)
        .filter(|(p, l)| argmax(p) == **l)
        .count();
    assert_eq!(correct, 1960, "accuracy {}", correct as f64 / 20.0);
    let (reference, _) = npy("chandrachapa-mnist-bn/numpy_ref_probs_first2000.npy");
    let d = max_abs_diff(&out, &reference);
    assert!(d <= 1e-4, "max |difference| to the numpy reference: {d}");
}

#[test]
fn vikas_fruit_equals_matlab_test_probs() {
    let net = network("vikas-fruit-tf/net.mat");
    let spec = format!("{}:I", fixture("vikas-fruit-tf/net.mat").display());
    let batch = data::load_array(&spec, [320, 320, 3], true).unwrap();
    let (out, _) = run(&net, &batch.data, batch.shape);
    let f = MatFile::read(fixture("vikas-fruit-tf/net.mat")).unwrap();
    let reference: Vec<f32> = f
        .get("test_probs")
        .unwrap()
        .to_f64_vec()
        .unwrap()
        .iter()
        .map(|&x| x as f32)
        .collect();
    let d = max_abs_diff(&out, &reference);
    assert!(d <= 1e-4, "output {out:?} vs MATLAB {reference:?}");
}

#[test]
fn kwr_equals_matlabs_own_onnx_export_in_onnxruntime() {
    let net = network("kwr-trafficlight-onnx/net.mat");
    let (x, shape) = npy("kwr-trafficlight-onnx/ref_input_nhwc_f32.npy");
    assert_eq!(shape, [4, 50, 20, 3]);
    // NHWC → NCHW
    let (n, h, w, c) = (4, 50, 20, 3);
    let mut nchw = vec![0.0; x.len()];
    for i in 0..n {
        for y in 0..h {
            for xx in 0..w {
                for ch in 0..c {
                    nchw[((i * c + ch) * h + y) * w + xx] = x[((i * h + y) * w + xx) * c + ch];
                }
            }
        }
    }
    let (out, k) = run(&net, &nchw, [n, c, h, w]);
    assert_eq!(k, 5);
    let (reference, _) = npy("kwr-trafficlight-onnx/ref_onnxruntime_output.npy");
    let d = max_abs_diff(&out, &reference);
    assert!(d <= 1e-4, "max |difference| to MATLAB's ONNX export: {d}");
}

fn assert_probabilities(out: &[f32], k: usize) {
    for row in out.chunks(k) {
        let s: f32 = row.iter().sum();
        assert!(
            (s - 1.0).abs() < 1e-4 && row.iter().all(|p| (0.0..=1.0).contains(p)),
            "{row:?}"
        );
    }
}

/// A deterministic pseudo-random image batch in 0..255.
fn noise_batch(shape: [usize; 4], seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..shape.iter().product())
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 256) as f32
        })
        .collect()
}

#[test]
fn dag_dlnetwork_and_feature_networks_run_end_to_end() {
    // gender-audio: SqueezeNet DAG with depth concatenations.
    let net = network("gender-audio/trainedNetwork_1.mat");
    let (out, k) = run(&net, &noise_batch([2, 3, 227, 227], 7), [2, 3, 227, 227]);
    assert_eq!(k, net.classes.len());
    assert_probabilities(&out, k);
    // fuma28: dlnetwork (no output layer; ends in softmax).
    let net = network("fuma28-speech/trainedNet.mat");
    let input = net.input().unwrap().output.unwrap();
    let shape = [2, input.c, input.h, input.w];
    let (out, k) = run(&net, &noise_batch(shape, 9), shape);
    assert_eq!(k, 8);
    assert_probabilities(&out, k);
    // saurabh: feature input MLP.
    let net = network("saurabh-mlp/trainedNet.mat");
    let shape = [3, 784, 1, 1];
    let x: Vec<f32> = noise_batch(shape, 3).iter().map(|v| v / 255.0).collect();
    let (out, k) = run(&net, &x, shape);
    assert_eq!(k, 10);
    assert_probabilities(&out, k);
}

#[test]
fn basheer_photos() {
    let net = network("basheer-digit-bn/net.mat");
    let input = net.input().unwrap().output.unwrap();
    let mut batch = Vec::new();
    let files = [
        "pic1.JPG",
        "pic2.JPG",
        "pic3.JPG",
        "pic13.JPG",
        "image1.png",
    ];
    for f in files {
        batch.extend(
            data::load_image(
                &fixture(&format!("basheer-digit-bn/{f}")),
                input.h,
                input.w,
                input.c,
            )
            .unwrap(),
        );
    }
    let (mut out, k) = run(&net, &batch, [files.len(), input.c, input.h, input.w]);
    if !net
        .layers
        .iter()
        .any(|l| matches!(l.kind, LayerKind::Softmax))
    {
        softmax_rows(&mut out, k);
    }
    assert_eq!(k, 10);
    assert_probabilities(&out, k);
}

/// PSNR in dB of `a` against `b` (both in [0, 1]).
fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (1.0 / mse).log10()
}

/// Seeded Gaussian noise (Box-Muller over xorshift).
fn gaussian(n: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (next(), next());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32 * sigma
        })
        .collect()
}

#[test]
fn dncnn_matconvnet_denoises() {
    let img = image::open(fixture("dncnn-matconvnet/01.png"))
        .unwrap()
        .to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let clean: Vec<f32> = img.as_raw().iter().map(|&p| p as f32 / 255.0).collect();
    let noise = gaussian(clean.len(), 25.0 / 255.0, 0x5eed);
    let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(c, n)| c + n).collect();
    for (file, residual) in [
        ("dncnn-matconvnet/sigma=25.mat", true),
        ("dncnn-matconvnet/DnCNN-epoch-50.mat", false),
    ] {
        let mut net = network(file);
        // Fully convolutional: size the input to this image.
        if let Some(LayerKind::ImageInput { size, .. }) =
            net.layers.first_mut().map(|l| &mut l.kind)
        {
            size.h = h;
            size.w = w;
        }
        let (out, k) = run(&net, &noisy, [1, 1, h, w]);
        assert_eq!(k, h * w, "{file}");
        let denoised: Vec<f32> = if residual {
            noisy.iter().zip(&out).map(|(x, r)| x - r).collect()
        } else {
            out
        };
        let p = psnr(&denoised, &clean);
        let p_noisy = psnr(&noisy, &clean);
        eprintln!("{file}: PSNR {p:.2} dB (noisy input {p_noisy:.2} dB)");
        assert!(p >= 29.5, "{file}: PSNR {p:.2} dB");
    }
}

#[test]
fn unconvertible_networks_name_each_unsupported_layer() {
    for (file, expected) in [
        ("pac48-dlnet/dlnet.mat", vec!["FunctionLayer"]),
        ("pac48-dlnet/TFNetPretrained.mat", vec!["FunctionLayer"]),
        ("mimo-detect/trainedNet_test.mat", vec!["sigmoidLayer"]),
        ("mw-eegnet/eegNet.mat", vec!["identityLayer"]),
    ] {
        let net = network(file);
        let unsupported: Vec<String> = net.unsupported().iter().map(|l| l.name.clone()).collect();
        assert!(!unsupported.is_empty(), "{file}");
        let e = MatNet::from_network(&net, &device())
            .err()
            .unwrap_or_else(|| panic!("{file} converted"));
        let msg = e.to_string();
        for name in &unsupported {
            assert!(
                msg.contains(&format!("'{name}'")),
                "{file}: {msg} does not name {name}"
            );
        }
        for class in expected {
            assert!(msg.contains(class), "{file}: {msg} does not name {class}");
        }
    }
}
