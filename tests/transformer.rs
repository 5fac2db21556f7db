//! Transformer layers on the real network that has them (`mw-transformer-ts`: MathWorks' "Transformer
//! Networks for Time Series Prediction" demo, a DAGNetwork with position embedding, addition,
//! two self-attention layers and 1-D indexing): import and sizes, the Burn module and the CLI
//! against the scalar reference of the conformance harness (an independent f64 computation), the
//! ONNX export in onnxruntime, one-step-ahead forecasts of the stored series, and bad token ids.

use burn::prelude::*;
use matcnn::mat::MatFile;
use matcnn::model::MatNet;
use matcnn::net::layer::{self as L, Layer, LayerKind, Normalization, Shape, SourceKind};
use matcnn::net::{self, Network};
use std::path::Path;

mod common;
#[path = "conformance/reference.rs"]
#[allow(dead_code)]
mod reference;
use common::{fixture, matcnn as run_cli, matcnn_ok, python, result_line, run_py, scratch};

const FILE: &str = "mw-transformer-ts/transformer_demo.mat";
/// The demo's window: "Each 30-day rolling window of actual price data will be used to predict
/// the price on the next day" (the demo's README).
const WINDOW: usize = 30;
/// The demo's split between training and test data: the beginning of 2021 (ms since 1970).
const SPLIT_MS: f64 = 1_609_459_200_000.0;

fn fixture_net() -> Network {
    let f = MatFile::read(fixture(FILE)).unwrap();
    net::import(&f, Some("net")).unwrap()
}

/// The stored series (`data`, a timetable of three stock prices): rows of 3 prices and the row
/// times in ms since 1970.
fn series() -> (Vec<[f64; 3]>, Vec<f64>) {
    let f = MatFile::read(fixture(FILE)).unwrap();
    let tt = f
        .get("data")
        .unwrap()
        .as_object()
        .expect("a timetable object");
    let any = tt
        .prop("any")
        .and_then(|v| v.as_struct())
        .expect("its fields");
    let cols: Vec<Vec<f64>> = any
        .field("data")
        .and_then(|v| v.as_cell())
        .expect("data cell")
        .data
        .iter()
        .map(|v| v.to_f64_vec().expect("numeric column"))
        .collect();
    assert_eq!(cols.len(), 3);
    let times = any
        .field("rowTimes")
        .and_then(|v| v.as_object())
        .and_then(|o| o.prop("data"))
        .and_then(|v| v.to_f64_vec())
        .expect("row times");
    let rows = (0..cols[0].len())
        .map(|i| [cols[0][i], cols[1][i], cols[2][i]])
        .collect();
    (rows, times)
}

/// Mean and standard deviation (MATLAB's `std`, N-1) of each stock over the training period.
fn train_stats(rows: &[[f64; 3]], times: &[f64]) -> ([f64; 3], [f64; 3]) {
    let train: Vec<&[f64; 3]> = rows
        .iter()
        .zip(times)
        .filter(|(_, t)| **t < SPLIT_MS)
        .map(|(r, _)| r)
        .collect();
    let n = train.len() as f64;
    let mut mu = [0.0; 3];
    let mut sd = [0.0; 3];
    for c in 0..3 {
        mu[c] = train.iter().map(|r| r[c]).sum::<f64>() / n;
        sd[c] = (train.iter().map(|r| (r[c] - mu[c]).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    }
    (mu, sd)
}

/// Windows `[N, 3, WINDOW]` (row-major) of the standardized series ending before each `ends[i]`.
fn windows(rows: &[[f64; 3]], mu: [f64; 3], sd: [f64; 3], ends: &[usize]) -> Vec<f32> {
    windows_of(rows, mu, sd, ends, WINDOW)
}

/// Windows `[N, 3, len]`.
fn windows_of(
    rows: &[[f64; 3]],
    mu: [f64; 3],
    sd: [f64; 3],
    ends: &[usize],
    len: usize,
) -> Vec<f32> {
    let mut x = Vec::with_capacity(ends.len() * 3 * len);
    for &e in ends {
        for c in 0..3 {
            for r in &rows[e - len..e] {
                x.push(((r[c] - mu[c]) / sd[c]) as f32);
            }
        }
    }
    x
}

fn forward(m: &MatNet, x: &[f32], n: usize, t: usize) -> Vec<f32> {
    let dev = Device::flex();
    let y = m.forward(Tensor::<4>::from_data(
        TensorData::new(x.to_vec(), [n, 3, 1, t]),
        &dev,
    ));
    y.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// The scalar reference on observation `i` of `x` (`[N, 3, T]`).
fn reference_out(net: &Network, x: &[f32], i: usize, t: usize) -> Vec<f64> {
    let mut a = reference::Act::new(3, 1, t, true);
    a.v = x[i * 3 * t..(i + 1) * 3 * t]
        .iter()
        .map(|&v| v as f64)
        .collect();
    reference::network(net, &a).v
}

fn max_diff(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max)
}

fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn write_npy(path: &Path, data: &[f32], shape: &[usize]) {
    std::fs::write(path, matcnn::data::npy_bytes(data, shape)).unwrap();
}

#[test]
fn fixture_imports_with_sequence_sizes() {
    let net = fixture_net();
    let kinds: Vec<&str> = net
        .layers
        .iter()
        .map(|l| matcnn::net::layers::names(&l.kind).kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "SequenceInput",
            "PositionEmbedding",
            "Addition",
            "SelfAttention",
            "SelfAttention",
            "Indexing1d",
            "FullyConnected",
            "RegressionOutput"
        ]
    );
    assert!(net.unsupported().is_empty());
    // The CLI's import (weights moved out of the file, not copied) gives the same network.
    let owned = net::import_owned(MatFile::read(fixture(FILE)).unwrap(), Some("net")).unwrap();
    assert_eq!(owned, net);
    let att = |i: usize| match &net.layers[i].kind {
        LayerKind::Transformer(L::Transformer::SelfAttention(a)) => a.clone(),
        other => panic!("layer {i} is {other:?}"),
    };
    let (a1, a2) = (att(3), att(4));
    assert!(a1.causal && !a2.causal);
    assert_eq!(
        (a1.num_heads, a1.num_key_channels, a1.head_key_channels()),
        (3, 96, 32)
    );
    for l in &net.layers[1..7] {
        assert_eq!(l.output, Some(Shape::features(3)), "{}", l.name);
    }
    // Learnables as MATLAB counts them: 3x64 embedding, 2 x (3 x (96x3 + 96) + 3x96 + 3), FC 3x3+3.
    assert_eq!(net.learnables(), 192 + 2 * (3 * (288 + 96) + 288 + 3) + 12);
    // inspect: C x T up to the indexing layer, C after it.
    let out = matcnn_ok(&["inspect", fixture(FILE).to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no line for {name} in\n{text}"))
            .to_string()
    };
    assert!(line("selfattention_1").contains("3 x T"), "{text}");
    assert!(line("selfattention_1").contains("causal"), "{text}");
    assert!(line("pos-emb").contains("3 x T"), "{text}");
    let idx = line("layer");
    assert!(idx.contains("last") && !idx.contains("3 x T"), "{text}");
}

#[test]
fn fixture_equals_scalar_reference_and_cli() {
    let net = fixture_net();
    let (rows, times) = series();
    let (mu, sd) = train_stats(&rows, &times);
    let ends: Vec<usize> = (WINDOW..rows.len()).step_by(97).collect();
    let x = windows(&rows, mu, sd, &ends);
    let n = ends.len();
    let m = MatNet::from_network(&net, &Device::flex()).unwrap();
    let y = forward(&m, &x, n, WINDOW);
    let want: Vec<f64> = (0..n)
        .flat_map(|i| reference_out(&net, &x, i, WINDOW))
        .collect();
    let d = max_diff(&y, &want);
    assert!(d <= 1e-5, "Burn vs scalar reference: {d:e}");
    // Other lengths than the demo's (the network takes any T <= MaxPosition 64).
    for t in [1, 7, 64] {
        let xt = windows_of(&rows, mu, sd, &[1000], t);
        let d = max_diff(&forward(&m, &xt, 1, t), &reference_out(&net, &xt, 0, t));
        assert!(d <= 1e-5, "T = {t}: {d:e}");
    }
    // The CLI on the same windows, from a .npy [N, C, T].
    let dir = scratch("transformer", "cli");
    let input = dir.join("windows.npy");
    write_npy(&input, &x, &[n, 3, WINDOW]);
    let out = dir.join("y.npy");
    matcnn_ok(&[
        "predict",
        "--model",
        fixture(FILE).to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let (shape, got) = read_npy(&out);
    assert_eq!(shape, [n, 3]);
    let d = max_diff(&got, &want);
    assert!(d <= 1e-5, "CLI vs scalar reference: {d:e}");
    // Longer than MaxPosition (64): refused, naming the layer; no output written.
    let long = dir.join("long.npy");
    write_npy(&long, &windows_of(&rows, mu, sd, &[100], 65), &[1, 3, 65]);
    let o = run_cli(&[
        "predict",
        "--model",
        fixture(FILE).to_str().unwrap(),
        "--input",
        long.to_str().unwrap(),
        "--output",
        dir.join("long.out.npy").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("pos-emb") && err.contains("MaxPosition 64"),
        "{err}"
    );
    assert!(!dir.join("long.out.npy").exists());
}

/// One-step-ahead forecasts of the stored series: RMSE of the network against the series and of
/// the naive forecast (tomorrow = today), in price units, overall and after the demo's split.
#[test]
fn fixture_forecasts_the_series() {
    let net = fixture_net();
    let (rows, times) = series();
    let (mu, sd) = train_stats(&rows, &times);
    let ends: Vec<usize> = (WINDOW..rows.len()).collect();
    let m = MatNet::from_network(&net, &Device::flex()).unwrap();
    let mut preds = Vec::with_capacity(ends.len());
    for chunk in ends.chunks(512) {
        let x = windows(&rows, mu, sd, chunk);
        let y = forward(&m, &x, chunk.len(), WINDOW);
        preds.extend(y.chunks(3).map(|p| {
            let mut v = [0.0; 3];
            for c in 0..3 {
                v[c] = p[c] as f64 * sd[c] + mu[c];
            }
            v
        }));
    }
    // Raw (unstandardized) inputs, to see whether the network expects standardized data.
    let raw_ends: Vec<usize> = ends.iter().copied().step_by(10).collect();
    let one = ([0.0; 3], [1.0; 3]);
    let xr = windows(&rows, one.0, one.1, &raw_ends);
    let yr = forward(&m, &xr, raw_ends.len(), WINDOW);
    let rmse = |f: &dyn Fn(usize) -> [f64; 3], idx: &[usize]| -> [f64; 3] {
        let mut s = [0.0; 3];
        for &k in idx {
            let (p, e) = (f(k), rows[ends[k]]);
            for c in 0..3 {
                s[c] += (p[c] - e[c]).powi(2);
            }
        }
        s.map(|v| (v / idx.len() as f64).sqrt())
    };
    let all: Vec<usize> = (0..ends.len()).collect();
    let test: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&k| times[ends[k]] >= SPLIT_MS)
        .collect();
    let model = |k: usize| preds[k];
    let naive = |k: usize| rows[ends[k] - 1];
    let (m_all, n_all) = (rmse(&model, &all), rmse(&naive, &all));
    let (m_test, n_test) = (rmse(&model, &test), rmse(&naive, &test));
    let mut raw_s = [0.0; 3];
    for (j, &e) in raw_ends.iter().enumerate() {
        for c in 0..3 {
            raw_s[c] += (yr[j * 3 + c] as f64 - rows[e][c]).powi(2);
        }
    }
    let raw = raw_s.map(|v| (v / raw_ends.len() as f64).sqrt());
    eprintln!(
        "windows of {WINDOW} days, {} forecasts ({} after 2021-01-01); train mean {mu:.3?}, std {sd:.3?}",
        all.len(),
        test.len()
    );
    eprintln!("RMSE all  : network {m_all:.4?}, naive {n_all:.4?}");
    eprintln!("RMSE 2021+: network {m_test:.4?}, naive {n_test:.4?}");
    eprintln!("RMSE with raw (unstandardized) inputs, outputs read as prices: {raw:.3?}");
    // The demo's README reports RMSE in % of each stock's mean price over the period.
    let mean = |idx: &[usize], c: usize| {
        idx.iter().map(|&k| rows[ends[k]][c]).sum::<f64>() / idx.len() as f64
    };
    let train: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&k| times[ends[k]] < SPLIT_MS)
        .collect();
    let m_train = rmse(&model, &train);
    let pct =
        |r: [f64; 3], idx: &[usize]| -> [f64; 3] { [0, 1, 2].map(|c| 100.0 * r[c] / mean(idx, c)) };
    eprintln!(
        "RMSE in % of the mean price: train {:.2?}, 2021+ {:.2?} (the demo's README: train [1.05, 1.17, 2.30], test [0.87, 0.97, 1.98])",
        pct(m_train, &train),
        pct(m_test, &test)
    );
    // Series for scripts/transformer_forecast.py.
    let dir = scratch("transformer", "series");
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.map(|v| v as f32)).collect();
    write_npy(&dir.join("series.npy"), &flat, &[rows.len(), 3]);
    let days: Vec<f32> = times.iter().map(|t| (t / 86_400_000.0) as f32).collect();
    write_npy(&dir.join("days.npy"), &days, &[rows.len()]);
    eprintln!("series written to {}", dir.display());
    for c in 0..3 {
        // A trained forecaster: within 20 % of the naive forecast (daily prices are nearly a
        // random walk), and better on standardized inputs than on raw prices.
        assert!(
            m_all[c] <= 1.2 * n_all[c],
            "stock {c}: {m_all:?} vs naive {n_all:?}"
        );
        assert!(
            raw[c] > 2.0 * m_all[c],
            "stock {c}: raw {raw:?} vs {m_all:?}"
        );
    }
}

#[test]
fn fixture_onnx_export_runs_in_onnxruntime() {
    let Some(py) = python() else { return };
    let dir = scratch("transformer", "onnx");
    let (rows, times) = series();
    let (mu, sd) = train_stats(&rows, &times);
    let ends: Vec<usize> = (WINDOW..rows.len()).step_by(211).collect();
    let x = windows(&rows, mu, sd, &ends);
    let input = dir.join("x.npy");
    write_npy(&input, &x, &[ends.len(), 3, WINDOW]);
    let expected = dir.join("y.npy");
    let model = fixture(FILE);
    let model = model.to_str().unwrap();
    matcnn_ok(&[
        "predict",
        "--model",
        model,
        "--input",
        input.to_str().unwrap(),
        "--output",
        expected.to_str().unwrap(),
    ]);
    let onnx = dir.join("net.onnx");
    matcnn_ok(&[
        "export",
        "--model",
        model,
        "--format",
        "onnx",
        "--output",
        onnx.to_str().unwrap(),
    ]);
    let out = run_py(
        &py,
        "onnx_check.py",
        &[
            onnx.to_str().unwrap(),
            input.to_str().unwrap(),
            expected.to_str().unwrap(),
            "--max-abs",
            "1e-5",
        ],
    );
    assert!(!result_line(&out).is_empty(), "{out}");
    // PyTorch: with torch, the export equals matcnn; without, the script says it skipped.
    let pt = dir.join("pt");
    matcnn_ok(&[
        "export",
        "--model",
        model,
        "--format",
        "pytorch",
        "--output",
        pt.to_str().unwrap(),
    ]);
    run_py(
        &py,
        "check_pytorch.py",
        &[
            pt.to_str().unwrap(),
            input.to_str().unwrap(),
            expected.to_str().unwrap(),
            "--max-abs",
            "1e-5",
        ],
    );
    // The Rust source export refuses sequence networks with a reason.
    let o = run_cli(&[
        "export",
        "--model",
        model,
        "--format",
        "rust",
        "--output",
        dir.join("rs").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sequence"));
}

/// torch's `scaled_dot_product_attention`, which the PyTorch export uses, against numpy with and
/// without a causal mask (skipped without torch).
#[test]
fn torch_sdpa_matches_numpy() {
    let Some(py) = python() else { return };
    let code = format!(
        "import sys; sys.path.insert(0, {:?}); import conformance as c\n\
         try:\n    import torch\nexcept ImportError:\n    torch = None\n\
         print('RESULT', c.sdpa_reference(torch))",
        common::script("").display().to_string()
    );
    let out = std::process::Command::new(&py)
        .args(["-c", &code])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("'pass'") || text.contains("'skip'"), "{text}");
}

/// A token network: sequenceInput(1) → wordEmbedding(4 x 5 words) → 1-D indexing 'last'.
fn token_net() -> Network {
    let w: Vec<f32> = (0..20).map(|i| i as f32 * 0.25 - 2.0).collect();
    let layer = |name: &str, kind: LayerKind, inputs: Vec<usize>| Layer {
        name: name.into(),
        class: format!("synthetic.{name}"),
        kind,
        inputs,
        output: None,
    };
    let mut net = Network {
        variable: "tokens".into(),
        source: SourceKind::DAGNetwork,
        layers: vec![
            layer(
                "in",
                LayerKind::SequenceInput {
                    size: 1,
                    normalization: Normalization::None,
                    frame: None,
                },
                vec![],
            ),
            layer(
                "emb",
                LayerKind::Transformer(L::Transformer::WordEmbedding(
                    matcnn::net::layers::transformer::WordEmbedding {
                        dimension: 4,
                        num_words: 5,
                        map_to_last: false,
                        weights: Some(L::Param {
                            value: L::Tensor::new(vec![4, 5], w),
                            lr_factor: 1.0,
                            l2_factor: 1.0,
                        }),
                    },
                )),
                vec![0],
            ),
            layer(
                "last",
                LayerKind::Transformer(L::Transformer::Indexing1d { last: true }),
                vec![1],
            ),
        ],
        outputs: vec![2],
        classes: vec![],
        detector: None,
        notes: vec![],
        same_padding: Vec::new(),
    };
    matcnn::net::shape::infer(&mut net, &[]).unwrap();
    net
}

#[test]
fn word_embedding_takes_token_ids_and_refuses_bad_ones() {
    let net = token_net();
    let dir = scratch("transformer", "tokens");
    let saved = dir.join("model");
    let m = MatNet::from_network(&net, &Device::flex()).unwrap();
    matcnn::model::saved::save(&net, &m, &saved, false).unwrap();
    // Ids 3, 1, 5: the last one (5) picks column 4 of Weights.
    let good = dir.join("good.npy");
    write_npy(&good, &[3.0, 1.0, 5.0], &[1, 1, 3]);
    let out = dir.join("y.npy");
    let run = |input: &Path, output: &Path| {
        run_cli(&[
            "predict",
            "--model",
            saved.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
    };
    let o = run(&good, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, y) = read_npy(&out);
    assert_eq!(shape, [1, 4]);
    let want: Vec<f32> = (0..4).map(|c| (c * 5 + 4) as f32 * 0.25 - 2.0).collect();
    assert_eq!(y, want);
    // Out of range (7), zero and non-integer ids: refused, naming the element; no output.
    for (bad, what) in [(7.0f32, "7"), (0.0, "0"), (2.5, "2.5")] {
        let input = dir.join(format!("bad{what}.npy"));
        write_npy(&input, &[1.0, 2.0, bad, 4.0], &[1, 1, 4]);
        let output = dir.join(format!("bad{what}.out.npy"));
        let o = run(&input, &output);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "id {what} accepted");
        assert!(
            err.contains("emb")
                && err.contains("time step 3")
                && err.contains(what)
                && err.contains(input.to_str().unwrap()),
            "{err}"
        );
        assert!(!output.exists());
    }
}
