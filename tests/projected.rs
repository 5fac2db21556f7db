//! Projected recurrent layers on a real network (kantika-soc-lstm: two `LSTMProjectedLayer`s
//! estimating a battery's state of charge), end to end through `matcnn predict`, checked against
//! the scalar reference of the conformance harness and the stored targets; and the sequence
//! input forms of `predict` (cell, single matrix, `.npy` `[N, C, T]` / `[C, T]`) against
//! MATLAB's own labels on mw-fault-lstm, with bad input overwriting nothing.

use matcnn::data;
use matcnn::export::{self, ExportOptions};
use matcnn::mat::{MatFile, Value};
use matcnn::net::{self, LayerKind, Network};
use std::path::Path;

mod common;
#[path = "conformance/reference.rs"]
#[allow(dead_code)]
mod reference;
use common::mat_writer::{M, write_mat};
use common::{fixture, matcnn as run_cli, matcnn_ok, python, result_line, run_py, scratch};

const KANTIKA: &str = "kantika-soc-lstm/DLmodel_ref_stackedLSTM_Projected.mat";
const KANTIKA_TEST: &str = "kantika-soc-lstm/01_TEST_LGHG2@n10degC_Norm_(05_Inputs).mat";
const FAULT: &str = "mw-fault-lstm";

fn kantika_net() -> Network {
    let f = MatFile::read(fixture(KANTIKA)).unwrap();
    net::import(&f, Some("recurrentNetProjected")).unwrap()
}

/// The stored test drive: the network's 3 inputs per time step as a row-major `[3, T]` buffer,
/// and the targets `Y` `[T]`.
///
/// `X` holds 5 rows; the network takes 3 (its SequenceInput size). They are the first 3 rows
/// (voltage, current, temperature of the LG HG2 data set; rows 4-5 are their moving averages,
/// which the 5-input variant of the workshop takes): the validation data stored with the
/// network (`options.ValidationData{1}{1}`, 3x500) is exactly `X(1:3, 1:500)`, and its targets
/// `ValidationData{2}{1}` are `Y(1:500)`.
fn kantika_drive() -> (Vec<f32>, Vec<f64>, usize) {
    let f = MatFile::read(fixture(KANTIKA_TEST)).unwrap();
    let x = f.get("X").unwrap().as_numeric().unwrap();
    assert_eq!(x.dims, [5, 39293]);
    let t = x.dims[1];
    let (rows, _) = x.to_row_major(&[0, 1]).unwrap();
    let y = f.get("Y").unwrap().as_numeric().unwrap().real.to_f64_vec();
    assert_eq!(y.len(), t);
    (rows[..3 * t].to_vec(), y, t)
}

#[test]
fn kantika_imports_and_inspects_projected_layers() {
    let net = kantika_net();
    let p: Vec<_> = net
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::LstmProjected(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(p.len(), 2);
    assert_eq!(
        (
            p[0].rnn.hidden,
            p[0].rnn.input_size,
            p[0].input_projector_size
        ),
        (256, 3, 3)
    );
    assert_eq!(p[0].output_projector_size, 11);
    let shape = |o: &Option<matcnn::net::layer::Param>| o.as_ref().unwrap().value.shape.clone();
    assert_eq!(shape(&p[0].rnn.input_weights), [1024, 3]);
    assert_eq!(shape(&p[0].rnn.recurrent_weights), [1024, 11]);
    assert_eq!(shape(&p[0].input_projector), [3, 3]);
    assert_eq!(shape(&p[0].output_projector), [256, 11]);
    assert_eq!(shape(&p[1].input_projector), [256, 11]);
    assert_eq!(shape(&p[1].output_projector), [128, 8]);
    let o = matcnn_ok(&[
        "inspect",
        "--model",
        &fixture(KANTIKA).display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in:\n{text}"))
            .to_string()
    };
    assert!(row("lstm_1").contains("projected LSTM"), "{text}");
    assert!(row("lstm_1").contains("256 x T"), "{text}");
    assert!(row("lstm_2").contains("128 x T"), "{text}");
    assert!(text.contains("Unsupported layers: none"), "{text}");
}

/// `predict` through the CLI on the whole stored drive (39 293 steps): the first steps equal
/// the scalar f64 reference, and the estimate tracks the stored state of charge.
#[test]
fn kantika_soc_through_predict() {
    let (x, y, t) = kantika_drive();
    let dir = scratch("projected", "kantika");
    let input = dir.join("drive.mat");
    let (col, _) = matcnn::mat::permute_col_major(&x, &[t, 3], &[0, 1]).unwrap();
    std::fs::write(&input, data::mat_file_bytes(&[("X", &[3, t], &col)])).unwrap();
    let out = dir.join("soc.mat");
    matcnn_ok(&[
        "predict",
        "--model",
        &fixture(KANTIKA).display().to_string(),
        "--input",
        &format!("{}:X", input.display()),
        "--output",
        &out.display().to_string(),
    ]);
    let m = MatFile::read(&out).unwrap();
    let soc = m.get("Y").unwrap().as_numeric().unwrap();
    assert_eq!(soc.dims, [t, 1]);
    let soc = soc.real.to_f64_vec();
    // The scalar reference on the first steps (the layers are causal: a prefix of the drive
    // gives the prefix of the outputs).
    let steps = 300;
    let mut act = reference::Act::new(3, 1, steps, true);
    for c in 0..3 {
        for s in 0..steps {
            act.v[c * steps + s] = x[c * t + s] as f64;
        }
    }
    let want = reference::network(&kantika_net(), &act);
    let worst = (0..steps)
        .map(|s| (soc[s] - want.v[s]).abs())
        .fold(0.0, f64::max);
    eprintln!("kantika: max |matcnn - f64 reference| over {steps} steps: {worst:.3e}");
    assert!(worst < 1e-5, "{worst}");
    let rmse = (soc
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / t as f64)
        .sqrt();
    let mae = soc.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum::<f64>() / t as f64;
    let mean = y.iter().sum::<f64>() / t as f64;
    let spread = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t as f64).sqrt();
    eprintln!(
        "kantika: state of charge over {t} steps: RMSE {rmse:.4}, MAE {mae:.4} \
         (targets: mean {mean:.3}, std {spread:.3})"
    );
    assert!(rmse < 0.1 && rmse < spread / 2.0, "RMSE {rmse}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ONNX export (the factors multiplied out into ONNX's LSTM operator) equals matcnn in
/// onnxruntime on the first 2000 steps of the drive.
#[test]
fn kantika_onnx_equals_matcnn() {
    let net = kantika_net();
    let onnx = export::onnx(&net, &ExportOptions::default()).unwrap();
    let Some(py) = python() else {
        eprintln!("kantika ONNX: skipped (no Python)");
        return;
    };
    let (x, _, t) = kantika_drive();
    let steps = 2000;
    let seq: Vec<f32> = (0..3)
        .flat_map(|c| x[c * t..c * t + steps].iter().copied())
        .collect();
    let dev = burn::prelude::Device::flex();
    let model = matcnn::model::MatNet::from_network(&net, &dev).unwrap();
    let s = matcnn::model::Sequence {
        data: seq.clone(),
        channels: 3,
        steps,
    };
    let outs = model.predict_sequences(&[s], 1, &dev, |_| {}).unwrap();
    let dir = scratch("projected", "kantika-onnx");
    std::fs::write(dir.join("model.onnx"), &onnx).unwrap();
    std::fs::write(dir.join("input.npy"), data::npy_bytes(&seq, &[1, 3, steps])).unwrap();
    std::fs::write(
        dir.join("expected.npy"),
        data::npy_bytes(&outs[0].data, &[1, 1, steps]),
    )
    .unwrap();
    let d = |f: &str| dir.join(f).display().to_string();
    let out = run_py(
        &py,
        "onnx_check.py",
        &[
            &d("model.onnx"),
            &d("input.npy"),
            &d("expected.npy"),
            "--max-abs",
            "1e-5",
        ],
    );
    eprintln!("kantika ONNX: {}", result_line(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kantika_rust_export_refuses_with_the_reason() {
    let e = export::rust_source(&kantika_net(), &ExportOptions::default())
        .expect_err("projected LSTMs refused")
        .to_string();
    // The sequence input is refused first (the generated module takes images or features).
    assert!(e.contains("Rust"), "{e}");
}

// ---- sequence input forms of `predict`, on mw-fault-lstm against MATLAB's labels ----

fn fault_model() -> String {
    fixture(&format!("{FAULT}/TrainedModel.mat"))
        .display()
        .to_string()
}

/// The stored validation sequences (10 x 97 each, row-major) and MATLAB's labels for them.
fn fault_data() -> (Vec<Vec<f32>>, Vec<String>) {
    let spec = format!(
        "{}:validationFeatures",
        fixture(&format!("{FAULT}/ValidationFeatures.mat")).display()
    );
    let seqs = data::load_sequences(&spec, 10).unwrap();
    let f = MatFile::read(fixture(&format!("{FAULT}/ValidationResults.mat"))).unwrap();
    let Value::Categorical(c) = f.get("validationResults").unwrap() else {
        panic!("validationResults is not categorical");
    };
    let labels = c
        .codes
        .iter()
        .map(|&k| c.categories[k as usize - 1].clone())
        .collect();
    (seqs.into_iter().map(|s| s.data).collect(), labels)
}

const FAULT_CLASSES: [&str; 8] = [
    "Bearing",
    "Flywheel",
    "Healthy",
    "LIV",
    "LOV",
    "NRV",
    "Piston",
    "Riderbelt",
];

/// Labels from a `[N, 8]` output file (.npy or .mat `Y`).
fn labels_in(path: &Path) -> Vec<String> {
    let (rows, k) = if path.extension().is_some_and(|e| e == "npy") {
        let bytes = std::fs::read(path).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        let k = npy.shape()[1] as usize;
        (npy.into_vec::<f32>().unwrap(), k)
    } else {
        let m = MatFile::read(path).unwrap();
        let a = m.get("Y").unwrap().as_numeric().unwrap();
        (a.to_row_major(&[0, 1]).unwrap().0, a.dims[1])
    };
    assert_eq!(k, 8);
    rows.chunks(k)
        .map(|r| {
            let i = (0..k).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
            FAULT_CLASSES[i].to_string()
        })
        .collect()
}

#[test]
fn sequence_input_forms_through_predict() {
    let (seqs, matlab) = fault_data();
    let (c, t) = (10, 97);
    let dir = scratch("projected", "forms");
    let model = fault_model();
    let predict = |input: &str, out: &Path| {
        matcnn_ok(&[
            "predict",
            "--model",
            &model,
            "--input",
            input,
            "--output",
            &out.display().to_string(),
        ]);
        labels_in(out)
    };
    // One C x T matrix in a .mat (column-major as MATLAB stores it).
    let (col, _) = matcnn::mat::permute_col_major(&seqs[3], &[t, c], &[0, 1]).unwrap();
    let one = dir.join("one.mat");
    std::fs::write(&one, data::mat_file_bytes(&[("S", &[c, t], &col)])).unwrap();
    let got = predict(
        &format!("{}:S", one.display()),
        &dir.join("one.mat.out.mat"),
    );
    assert_eq!(got, [matlab[3].clone()]);
    // .npy [N, C, T]: the first 6 sequences.
    let n = 6;
    let flat: Vec<f32> = seqs[..n].iter().flatten().copied().collect();
    let npy = dir.join("six.npy");
    std::fs::write(&npy, data::npy_bytes(&flat, &[n, c, t])).unwrap();
    let got = predict(&npy.display().to_string(), &dir.join("six_out.npy"));
    assert_eq!(got, matlab[..n]);
    // .npy [C, T]: one sequence.
    let npy1 = dir.join("single.npy");
    std::fs::write(&npy1, data::npy_bytes(&seqs[5], &[c, t])).unwrap();
    let got = predict(&npy1.display().to_string(), &dir.join("single_out.mat"));
    assert_eq!(got, [matlab[5].clone()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_channel_count_overwrites_nothing() {
    let (seqs, _) = fault_data();
    let dir = scratch("projected", "bad");
    // A cell {10x97, 9x97, 10x97}: element {2} has 9 channels. The v5 cell is hand-built
    // (mat_file_bytes writes numeric variables).
    let good = |i: usize| {
        let (col, _) = matcnn::mat::permute_col_major(&seqs[i], &[97, 10], &[0, 1]).unwrap();
        M::Single(vec![10, 97], col)
    };
    let bad = M::Single(vec![9, 97], seqs[1][..9 * 97].to_vec());
    let file = dir.join("bad cell.mat");
    write_mat(
        &file,
        &[("X", M::Cell(vec![1, 3], vec![good(0), bad, good(2)]))],
    );
    let out = dir.join("out.npy");
    std::fs::write(&out, b"keep me").unwrap();
    let spec = format!("{}:X", file.display());
    for force in [false, true] {
        let mut args = vec![
            "predict",
            "--model",
            &fault_model(),
            "--input",
            &spec,
            "--output",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.push(out.display().to_string());
        if force {
            args.push("--force".into());
        }
        let o = run_cli(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for needle in ["bad cell.mat", ":X", "element {2}", "9x97", "10 x T"] {
            assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
        }
        assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
