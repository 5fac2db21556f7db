//! Sequence networks (sequenceInputLayer, LSTM, BiLSTM, GRU): MATLAB's own predictions on the
//! mw-fault-lstm fixture, hand-written reference cells for the layers no fixture has, the ONNX
//! and PyTorch exports, and bad sequence input.

use burn::prelude::*;
use matcnn::data;
use matcnn::mat::{MatFile, Value};
use matcnn::model::{MatNet, Sequence};
use matcnn::net::{self, Network};

mod common;
use common::{fixture, matcnn_ok};

const FAULT: &str = "mw-fault-lstm";

fn device() -> Device {
    Device::flex()
}

fn fault_net() -> Network {
    let f = MatFile::read(fixture(&format!("{FAULT}/TrainedModel.mat"))).unwrap();
    net::import(&f, None).unwrap()
}

fn features_spec() -> String {
    format!(
        "{}:validationFeatures",
        fixture(&format!("{FAULT}/ValidationFeatures.mat")).display()
    )
}

/// MATLAB's 176 predicted labels (categorical) as class names.
fn matlab_labels() -> Vec<String> {
    let f = MatFile::read(fixture(&format!("{FAULT}/ValidationResults.mat"))).unwrap();
    match f.get("validationResults").unwrap() {
        Value::Categorical(c) => c
            .codes
            .iter()
            .map(|&k| {
                assert!(k > 0, "undefined label in MATLAB's results");
                c.categories[k as usize - 1].clone()
            })
            .collect(),
        other => panic!("validationResults is a {}", other.class_name()),
    }
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap()
}

fn labels_of(net: &Network, probs: &[f32], k: usize) -> Vec<String> {
    probs
        .chunks(k)
        .map(|r| net.classes[argmax(r)].clone())
        .collect()
}

/// matcnn's probabilities for the 176 validation sequences, through the library.
fn fault_probs(net: &Network) -> (Vec<f32>, usize, Vec<Sequence>) {
    let seqs = data::load_sequences(&features_spec(), 10).unwrap();
    let dev = device();
    let model = MatNet::from_network(net, &dev).unwrap();
    let outs = model.predict_sequences(&seqs, 64, &dev, |_| {}).unwrap();
    let k = outs[0].k;
    assert!(outs.iter().all(|o| o.steps == 1 && o.k == k));
    (outs.into_iter().flat_map(|o| o.data).collect(), k, seqs)
}

#[test]
fn fault_lstm_gives_matlabs_176_labels() {
    let net = fault_net();
    let matlab = matlab_labels();
    assert_eq!(matlab.len(), 176);
    let (probs, k, seqs) = fault_probs(&net);
    assert_eq!(seqs.len(), 176);
    assert_eq!(k, 8);
    let ours = labels_of(&net, &probs, k);
    let agree = ours.iter().zip(&matlab).filter(|(a, b)| a == b).count();
    eprintln!("mw-fault-lstm: {agree}/176 labels equal MATLAB's");
    assert_eq!(ours, matlab);

    // The same through the CLI, batching 7 at a time.
    let dir = common::scratch("sequence", "cli");
    let out = dir.join("probs.npy");
    matcnn_ok(&[
        "predict",
        "--model",
        &fixture(&format!("{FAULT}/TrainedModel.mat"))
            .display()
            .to_string(),
        "--input",
        &features_spec(),
        "--output",
        &out.display().to_string(),
        "--batch-size",
        "7",
    ]);
    let bytes = std::fs::read(&out).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[176, 8]);
    let cli: Vec<f32> = npy.into_vec().unwrap();
    assert_eq!(labels_of(&net, &cli, 8), matlab);
    let d = cli
        .iter()
        .zip(&probs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-5, "CLI vs library: {d}");
    let _ = std::fs::remove_dir_all(&dir);
}
