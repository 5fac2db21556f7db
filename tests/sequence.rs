//! Sequence networks (sequenceInputLayer, LSTM, BiLSTM, GRU): MATLAB's own predictions on the
//! mw-fault-lstm fixture, hand-written reference cells for the layers no fixture has, the ONNX
//! and PyTorch exports, and bad sequence input.

use burn::prelude::*;
use matcnn::data;
use matcnn::export::{self, ExportOptions};
use matcnn::mat::{MatFile, Value};
use matcnn::model::{MatNet, Sequence};
use matcnn::net::layer::{
    FullyConnected, Layer, LayerKind, Normalization, Param, Recurrent, Shape, SourceKind, Tensor,
};
use matcnn::net::{self, Network};
use std::path::{Path, PathBuf};

mod common;
use common::{fixture, matcnn as run_cli, matcnn_ok, python, result_line, run_py, scratch};

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

fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
    std::fs::write(path, data::npy_bytes(data, shape)).unwrap();
}

/// The interpreter for the PyTorch checks: `$MATCNN_TORCH_PYTHON` (an environment with torch),
/// else the export checks' Python (check_pytorch.py skips when it has no torch).
fn torch_python() -> Option<PathBuf> {
    match std::env::var_os("MATCNN_TORCH_PYTHON") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.exists()),
        None => python(),
    }
}

/// matcnn's outputs in the exported models' layout: `[N, K]` for 'last', `[N, K, T]` for
/// 'sequence' (from the library's `[T, K]` per sequence).
fn export_layout(outs: &[matcnn::model::SequenceOutput]) -> (Vec<usize>, Vec<f32>) {
    let (n, k, t) = (outs.len(), outs[0].k, outs[0].steps);
    let mut v = Vec::with_capacity(n * k * t);
    for o in outs {
        for kk in 0..k {
            for tt in 0..t {
                v.push(o.data[tt * k + kk]);
            }
        }
    }
    if t == 1 {
        (vec![n, k], v)
    } else {
        (vec![n, k, t], v)
    }
}

/// Exports `net` to ONNX (checked in onnxruntime) and to PyTorch (run where torch is), and
/// compares both with matcnn's outputs on `seqs` (all of one length). Returns the ONNX result.
fn check_exports(
    label: &str,
    net: &Network,
    seqs: &[Sequence],
    max_abs: f32,
    pytorch: bool,
) -> String {
    let dev = device();
    let model = MatNet::from_network(net, &dev).unwrap();
    let outs = model.predict_sequences(seqs, 64, &dev, |_| {}).unwrap();
    let (eshape, expected) = export_layout(&outs);
    let opts = ExportOptions::default();
    let onnx = export::onnx(net, &opts).unwrap_or_else(|e| panic!("{label}: {e}"));
    let py_files = if pytorch {
        Some(export::pytorch(net, &opts).unwrap_or_else(|e| panic!("{label}: {e}")))
    } else {
        None
    };
    let Some(py) = python() else {
        return String::new();
    };
    let dir = scratch("sequence", label);
    let d = |f: &str| dir.join(f).display().to_string();
    let (c, t) = (seqs[0].channels, seqs[0].steps);
    let x: Vec<f32> = seqs.iter().flat_map(|s| s.data.iter().copied()).collect();
    write_npy(&dir.join("input.npy"), &[seqs.len(), c, t], &x);
    write_npy(&dir.join("expected.npy"), &eshape, &expected);
    std::fs::write(dir.join("model.onnx"), &onnx).unwrap();
    let mut args = vec![
        d("model.onnx"),
        d("input.npy"),
        d("expected.npy"),
        "--max-abs".into(),
        max_abs.to_string(),
    ];
    if !net.classes.is_empty() {
        args.extend(["--classes".into(), net.classes.len().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let onnx_result = result_line(&run_py(&py, "onnx_check.py", &args));
    eprintln!("{label}: ONNX {onnx_result}");
    if let (Some(files), Some(tpy)) = (py_files, torch_python()) {
        let pt = dir.join("pytorch");
        std::fs::create_dir_all(&pt).unwrap();
        for (name, bytes) in &files {
            std::fs::write(pt.join(name), bytes).unwrap();
        }
        let out = run_py(
            &tpy,
            "check_pytorch.py",
            &[
                &pt.display().to_string(),
                &d("input.npy"),
                &d("expected.npy"),
                "--max-abs",
                &max_abs.to_string(),
            ],
        );
        eprintln!("{label}: torch {}", out.trim());
    }
    let _ = std::fs::remove_dir_all(&dir);
    onnx_result
}

/// The `max_abs` value of a check's RESULT line.
fn result_max_abs(line: &str) -> f64 {
    let json = line.trim_start_matches("RESULT ");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["max_abs"].as_f64().unwrap()
}

#[test]
fn fault_lstm_exports_match_matcnn() {
    let net = fault_net();
    let seqs = data::load_sequences(&features_spec(), 10).unwrap();
    let r = check_exports("fault-lstm", &net, &seqs, 1e-4, true);
    if !r.is_empty() {
        assert!(result_max_abs(&r) <= 1e-4, "{r}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built GRU and BiLSTM networks against a scalar reference written here.

/// Deterministic values in [-scale, scale].
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn p(shape: Vec<usize>, data: Vec<f32>) -> Option<Param> {
    Some(Param {
        value: Tensor::new(shape, data),
        lr_factor: 1.0,
        l2_factor: 1.0,
    })
}

struct Spec {
    gru: bool,
    bidirectional: bool,
    sequence: bool,
    state: &'static str,
    gate: &'static str,
    reset: &'static str,
    c: usize,
    h: usize,
    k: usize,
}

/// sequenceInput(C) → recurrent → fullyConnected(K), weights from `values`.
fn tiny_net(s: &Spec, seed: u64) -> Network {
    let gates = if s.gru { 3 } else { 4 };
    let d = if s.bidirectional { 2 } else { 1 };
    let rows = gates * s.h * d;
    let nbias = if s.reset == "recurrent-bias-after-multiplication" {
        2 * rows
    } else {
        rows
    };
    let r = Recurrent {
        hidden: s.h,
        input_size: s.c,
        return_sequence: s.sequence,
        bidirectional: s.bidirectional,
        state_activation: s.state.into(),
        gate_activation: s.gate.into(),
        input_weights: p(vec![rows, s.c], values(rows * s.c, seed, 1.5)),
        recurrent_weights: p(vec![rows, s.h], values(rows * s.h, seed + 1, 1.0)),
        bias: p(vec![nbias], values(nbias, seed + 2, 1.0)),
        reset_gate_mode: s.reset.into(),
        hidden_state: Some(Tensor::new(vec![s.h * d], values(s.h * d, seed + 3, 0.5))),
        cell_state: if s.gru {
            None
        } else {
            Some(Tensor::new(vec![s.h * d], values(s.h * d, seed + 4, 0.5)))
        },
    };
    let hd = s.h * d;
    let layer = |name: &str, class: &str, kind: LayerKind, inputs: Vec<usize>, out: usize| Layer {
        name: name.into(),
        class: class.into(),
        kind,
        inputs,
        output: Some(Shape::features(out)),
    };
    let rnn_kind = if s.gru {
        LayerKind::Gru(r)
    } else {
        LayerKind::Lstm(r)
    };
    Network {
        variable: "tiny".into(),
        source: SourceKind::LayerArray,
        layers: vec![
            layer(
                "seq",
                "nnet.cnn.layer.SequenceInputLayer",
                LayerKind::SequenceInput {
                    size: s.c,
                    normalization: Normalization::None,
                    frame: None,
                },
                vec![],
                s.c,
            ),
            layer(
                "rnn",
                if s.gru {
                    "nnet.cnn.layer.GRULayer"
                } else if s.bidirectional {
                    "nnet.cnn.layer.BiLSTMLayer"
                } else {
                    "nnet.cnn.layer.LSTMLayer"
                },
                rnn_kind,
                vec![0],
                hd,
            ),
            layer(
                "fc",
                "nnet.cnn.layer.FullyConnectedLayer",
                LayerKind::FullyConnected(FullyConnected {
                    outputs: s.k,
                    weights: p(vec![s.k, hd], values(s.k * hd, seed + 5, 1.0)),
                    bias: p(vec![s.k], values(s.k, seed + 6, 0.5)),
                }),
                vec![1],
                s.k,
            ),
        ],
        outputs: vec![2],
        classes: vec![],
        detector: None,
        notes: Vec::new(),
        same_padding: Vec::new(),
    }
}

fn act(name: &str, x: f64) -> f64 {
    match name {
        "tanh" => x.tanh(),
        "softsign" => x / (1.0 + x.abs()),
        "sigmoid" => 1.0 / (1.0 + (-x).exp()),
        "hard-sigmoid" => (0.2 * x + 0.5).clamp(0.0, 1.0),
        other => panic!("{other}"),
    }
}

/// `m` `[rows, cols]` row-major times `v`, rows `r0..r0+n`.
fn mv(m: &[f32], cols: usize, r0: usize, n: usize, v: &[f64]) -> Vec<f64> {
    (r0..r0 + n)
        .map(|r| (0..cols).map(|j| m[r * cols + j] as f64 * v[j]).sum())
        .collect()
}

/// The network by hand, one scalar at a time: `[T_out, K]` per sequence (row-major `[C, T]`).
fn reference(net: &Network, x: &[f32], c: usize, t: usize) -> Vec<f64> {
    let (LayerKind::Lstm(r) | LayerKind::Gru(r)) = &net.layers[1].kind else {
        unreachable!()
    };
    let LayerKind::FullyConnected(fc) = &net.layers[2].kind else {
        unreachable!()
    };
    let gru = matches!(net.layers[1].kind, LayerKind::Gru(_));
    let h = r.hidden;
    let g = if gru { 3 * h } else { 4 * h };
    let w = &r.input_weights.as_ref().unwrap().value.data;
    let rw = &r.recurrent_weights.as_ref().unwrap().value.data;
    let b = &r.bias.as_ref().unwrap().value.data;
    let h0 = &r.hidden_state.as_ref().unwrap().data;
    let dirs = r.directions();
    // ys[t] = [h_forward; h_backward] at time t.
    let mut ys = vec![vec![0.0f64; h * dirs]; t];
    for d in 0..dirs {
        let mut hs: Vec<f64> = h0[d * h..(d + 1) * h].iter().map(|&v| v as f64).collect();
        let mut cs: Vec<f64> = match &r.cell_state {
            Some(cs) => cs.data[d * h..(d + 1) * h]
                .iter()
                .map(|&v| v as f64)
                .collect(),
            None => vec![0.0; h],
        };
        let order: Vec<usize> = if d == 0 {
            (0..t).collect()
        } else {
            (0..t).rev().collect()
        };
        for tt in order {
            let xt: Vec<f64> = (0..c).map(|ch| x[ch * t + tt] as f64).collect();
            let wx = mv(w, c, d * g, g, &xt);
            let rh = mv(rw, h, d * g, g, &hs);
            let bias = |k: usize| b[d * g + k] as f64;
            if !gru {
                for u in 0..h {
                    let z = |blk: usize| wx[blk * h + u] + rh[blk * h + u] + bias(blk * h + u);
                    let i = act(&r.gate_activation, z(0));
                    let f = act(&r.gate_activation, z(1));
                    let gg = act(&r.state_activation, z(2));
                    let o = act(&r.gate_activation, z(3));
                    cs[u] = f * cs[u] + i * gg;
                    hs[u] = o * act(&r.state_activation, cs[u]);
                }
            } else {
                let rbias = |k: usize| {
                    if r.reset_gate_mode == "recurrent-bias-after-multiplication" {
                        b[g + k] as f64
                    } else {
                        0.0
                    }
                };
                let reset: Vec<f64> = (0..h)
                    .map(|u| act(&r.gate_activation, wx[u] + bias(u) + rh[u] + rbias(u)))
                    .collect();
                let update: Vec<f64> = (0..h)
                    .map(|u| {
                        act(
                            &r.gate_activation,
                            wx[h + u] + bias(h + u) + rh[h + u] + rbias(h + u),
                        )
                    })
                    .collect();
                let rhs: Vec<f64> = (0..h).map(|u| reset[u] * hs[u]).collect();
                let r_of_rh = mv(rw, h, 2 * h, h, &rhs);
                let new: Vec<f64> = (0..h)
                    .map(|u| {
                        let recur = match r.reset_gate_mode.as_str() {
                            "before-multiplication" => r_of_rh[u],
                            _ => reset[u] * (rh[2 * h + u] + rbias(2 * h + u)),
                        };
                        let cand =
                            act(&r.state_activation, wx[2 * h + u] + bias(2 * h + u) + recur);
                        (1.0 - update[u]) * cand + update[u] * hs[u]
                    })
                    .collect();
                hs = new;
            }
            ys[tt][d * h..(d + 1) * h].copy_from_slice(&hs);
        }
    }
    let steps: Vec<usize> = if r.return_sequence {
        (0..t).collect()
    } else {
        vec![t - 1]
    };
    let fw = &fc.weights.as_ref().unwrap().value.data;
    let fb = &fc.bias.as_ref().unwrap().value.data;
    let mut out = Vec::new();
    for tt in steps {
        let y = mv(fw, h * dirs, 0, fc.outputs, &ys[tt]);
        out.extend(y.iter().zip(fb).map(|(v, bb)| v + *bb as f64));
    }
    out
}

fn tiny_sequences(c: usize, t: usize, n: usize, seed: u64) -> Vec<Sequence> {
    (0..n)
        .map(|i| Sequence {
            data: values(c * t, seed + 100 + i as u64, 2.0),
            channels: c,
            steps: t,
        })
        .collect()
}

/// matcnn equals the scalar reference (several lengths in one call), then the exports match.
fn check_tiny(label: &str, s: Spec, pytorch: bool) {
    let net = tiny_net(&s, label.len() as u64 * 7);
    let dev = device();
    let model = MatNet::from_network(&net, &dev).unwrap();
    let mut seqs = tiny_sequences(s.c, 5, 3, 1);
    seqs.extend(tiny_sequences(s.c, 1, 1, 2));
    seqs.extend(tiny_sequences(s.c, 8, 2, 3));
    let outs = model.predict_sequences(&seqs, 2, &dev, |_| {}).unwrap();
    let mut worst = 0.0f64;
    for (sq, o) in seqs.iter().zip(&outs) {
        let want = reference(&net, &sq.data, s.c, sq.steps);
        let t_out = if s.sequence { sq.steps } else { 1 };
        assert_eq!((o.steps, o.k), (t_out, s.k), "{label}");
        for (a, b) in o.data.iter().zip(&want) {
            worst = worst.max((*a as f64 - b).abs());
        }
    }
    eprintln!("{label}: matcnn vs scalar reference max |diff| {worst:.3e}");
    assert!(worst < 1e-5, "{label}: {worst}");
    let r = check_exports(label, &net, &tiny_sequences(s.c, 6, 4, 9), 1e-5, pytorch);
    if !r.is_empty() {
        assert!(result_max_abs(&r) <= 1e-5, "{label}: {r}");
    }
}

fn spec(gru: bool, bidirectional: bool, sequence: bool) -> Spec {
    Spec {
        gru,
        bidirectional,
        sequence,
        state: "tanh",
        gate: "sigmoid",
        reset: if gru { "after-multiplication" } else { "" },
        c: 3,
        h: 4,
        k: 2,
    }
}

#[test]
fn bilstm_matches_reference_both_output_modes() {
    check_tiny("bilstm-sequence", spec(false, true, true), true);
    check_tiny("bilstm-last", spec(false, true, false), true);
    let variant = Spec {
        state: "softsign",
        gate: "hard-sigmoid",
        ..spec(false, true, true)
    };
    check_tiny("bilstm-softsign-hardsigmoid", variant, false);
}

#[test]
fn gru_matches_reference_all_reset_modes() {
    check_tiny("gru-sequence", spec(true, false, true), true);
    check_tiny("gru-last", spec(true, false, false), true);
    let rb = Spec {
        reset: "recurrent-bias-after-multiplication",
        ..spec(true, false, false)
    };
    check_tiny("gru-recurrent-bias", rb, true);
    let before = Spec {
        reset: "before-multiplication",
        ..spec(true, false, true)
    };
    check_tiny("gru-before", before, false);
    let variant = Spec {
        state: "softsign",
        gate: "hard-sigmoid",
        ..spec(true, false, false)
    };
    check_tiny("gru-softsign-hardsigmoid", variant, false);
}

#[test]
fn pytorch_export_refuses_what_torch_cannot_compute() {
    let before = Spec {
        reset: "before-multiplication",
        ..spec(true, false, true)
    };
    let e = export::pytorch(&tiny_net(&before, 1), &ExportOptions::default())
        .expect_err("before-multiplication is refused")
        .to_string();
    assert!(
        e.contains("'rnn'") && e.contains("before-multiplication"),
        "{e}"
    );
    let soft = Spec {
        state: "softsign",
        ..spec(false, true, true)
    };
    let e = export::pytorch(&tiny_net(&soft, 1), &ExportOptions::default())
        .expect_err("softsign is refused")
        .to_string();
    assert!(e.contains("'rnn'") && e.contains("softsign"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Bad sequence input: clear errors naming the file, the variable and the element, never a panic.

use common::mat_writer::{M, write_mat};

fn seq(c: usize, t: usize) -> M {
    M::Double(
        vec![c, t],
        values(c * t, (c * 31 + t) as u64, 1.0)
            .iter()
            .map(|&v| v as f64)
            .collect(),
    )
}

#[test]
fn bad_sequence_input_gives_clear_errors() {
    let dir = scratch("sequence", "bad-input");
    let model = fixture(&format!("{FAULT}/TrainedModel.mat"))
        .display()
        .to_string();
    let cases: Vec<(&str, M, Vec<&str>)> = vec![
        (
            "wrong_channels",
            M::Cell(vec![1, 2], vec![seq(10, 5), seq(9, 5)]),
            vec!["element {2}", "9x5", "10 x T"],
        ),
        ("empty_cell", M::Cell(vec![0, 0], vec![]), vec!["empty"]),
        (
            "not_numeric",
            M::Cell(vec![1, 2], vec![M::Char("abc".into()), seq(10, 3)]),
            vec!["element {1}", "char"],
        ),
        (
            "no_time_steps",
            M::Cell(vec![2, 1], vec![seq(10, 4), M::Double(vec![10, 0], vec![])]),
            vec!["element {2}", "10x0"],
        ),
        ("matrix_channels", seq(3, 7), vec!["3x7", "10 x T"]),
    ];
    for (var, value, needles) in cases {
        let file = dir.join(format!("{var}.mat"));
        write_mat(&file, &[(var, value)]);
        let spec = format!("{}:{var}", file.display());
        // The library: a typed error naming the file and the variable.
        let e = data::load_sequences(&spec, 10)
            .err()
            .unwrap_or_else(|| panic!("{var}: accepted"))
            .to_string();
        assert!(e.contains(&spec), "{var}: {e}");
        for n in &needles {
            assert!(e.contains(n), "{var}: '{n}' not in: {e}");
        }
        // The CLI: exit status 1 with that message, no panic, no output file.
        let out = dir.join(format!("{var}.npy"));
        let o = run_cli(&[
            "predict",
            "--model",
            &model,
            "--input",
            &spec,
            "--output",
            &out.display().to_string(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{var}: {stderr}");
        assert!(!stderr.contains("panicked"), "{var}: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(needles[0]),
            "{var}: {stderr}"
        );
        assert!(!out.exists(), "{var}");
    }
    // .npy with the wrong channel count.
    let npy = dir.join("wrong.npy");
    write_npy(&npy, &[2, 9, 4], &[0.0; 72]);
    let e = data::load_sequences(&npy.display().to_string(), 10)
        .expect_err("9 channels refused")
        .to_string();
    assert!(e.contains("wrong.npy") && e.contains("[2, 9, 4]"), "{e}");
    // The library refuses a wrong channel count too (no panic inside the matmul).
    let dev = device();
    let model = MatNet::from_network(&fault_net(), &dev).unwrap();
    let bad = Sequence {
        data: vec![0.0; 9 * 4],
        channels: 9,
        steps: 4,
    };
    let e = model
        .predict_sequences(&[bad], 1, &dev, |_| {})
        .expect_err("9 channels refused")
        .to_string();
    assert!(e.contains("[10, T]") && e.contains("[9, 4]"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sequence_output_mode_through_the_cli() {
    // A GRU with OutputMode 'sequence', saved by matcnn, on sequences of different lengths.
    let net = tiny_net(&spec(true, false, true), 5);
    let dir = scratch("sequence", "cli-sequence");
    let dev = device();
    let model = MatNet::from_network(&net, &dev).unwrap();
    let saved = dir.join("tiny");
    matcnn::model::saved::save(&net, &model, &saved, true).unwrap();
    let file = dir.join("seqs.mat");
    write_mat(
        &file,
        &[("X", M::Cell(vec![1, 2], vec![seq(3, 4), seq(3, 2)]))],
    );
    let spec_x = format!("{}:X", file.display());
    let seqs = data::load_sequences(&spec_x, 3).unwrap();
    assert_eq!(seqs.iter().map(|s| s.steps).collect::<Vec<_>>(), vec![4, 2]);
    let out = dir.join("y.mat");
    let args = |o: &Path| {
        vec![
            "predict".to_string(),
            "--model".into(),
            saved.display().to_string(),
            "--input".into(),
            spec_x.clone(),
            "--output".into(),
            o.display().to_string(),
        ]
    };
    let a = args(&out);
    matcnn_ok(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let m = MatFile::read(&out).unwrap();
    let y = m.get("Y").unwrap().as_numeric().unwrap();
    assert_eq!(y.dims, [6, 2]);
    let (rows, _) = y.to_row_major(&[0, 1]).unwrap();
    let lengths = m.get("SequenceLengths").unwrap().as_numeric().unwrap();
    assert_eq!(lengths.real.to_f64_vec(), vec![4.0, 2.0]);
    let mut want = reference(&net, &seqs[0].data, 3, 4);
    want.extend(reference(&net, &seqs[1].data, 3, 2));
    let worst = rows
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "{worst}");
    // .npy needs equal lengths: a clear refusal.
    let a = args(&dir.join("y.npy"));
    let o = run_cli(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("different lengths"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inspect_shows_sequence_shapes() {
    let model = fixture(&format!("{FAULT}/TrainedModel.mat"))
        .display()
        .to_string();
    let o = matcnn_ok(&["inspect", "--model", &model]);
    let text = String::from_utf8_lossy(&o.stdout);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in:\n{text}"))
            .to_string()
    };
    assert!(row("lstm_1").contains("output mode sequence") && row("lstm_1").contains("100 x T"));
    assert!(row("lstm_2").contains("output mode last") && !row("lstm_2").contains("x T"));
    assert!(row("dropout").contains("100 x T"), "{text}");
    let o = matcnn_ok(&["inspect", "--json", "--model", &model]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let seq: Vec<bool> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sequence"].as_bool().unwrap())
        .collect();
    assert_eq!(seq, [true, true, true, false, false, false, false]);
}

#[test]
fn fault_lstm_imports_states_and_modes() {
    let net = fault_net();
    assert!(net.is_sequence() && !net.outputs_sequence());
    let recurrent: Vec<&Recurrent> = net
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Lstm(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(recurrent.len(), 2);
    for (r, seq, c) in [(recurrent[0], true, 10), (recurrent[1], false, 100)] {
        assert_eq!((r.hidden, r.input_size, r.return_sequence), (100, c, seq));
        assert!(!r.bidirectional);
        assert_eq!(
            (r.state_activation.as_str(), r.gate_activation.as_str()),
            ("tanh", "sigmoid")
        );
        assert_eq!(
            r.hidden_state.as_ref().map(|t| t.shape.clone()),
            Some(vec![100])
        );
        assert_eq!(
            r.cell_state.as_ref().map(|t| t.shape.clone()),
            Some(vec![100])
        );
        assert_eq!(r.bias.as_ref().unwrap().value.shape, [400]);
        // MATLAB's unit-forget-gate initializer: the trained forget block (i, f, g, o) stays near 1.
        let b = &r.bias.as_ref().unwrap().value.data;
        let mean = |k: usize| b[k * 100..(k + 1) * 100].iter().sum::<f32>() / 100.0;
        assert!(
            mean(1) > 0.5 && mean(1) > mean(0) && mean(1) > mean(2),
            "{:?}",
            (0..4).map(mean).collect::<Vec<_>>()
        );
    }
}
