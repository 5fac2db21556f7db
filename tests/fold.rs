//! Stored layouts in MATLAB's squeezed and merged forms (tomerroditi-eegnet's grouped
//! convolutions) and image-sequence (CNN-LSTM) networks: sequence folding and unfolding,
//! flatten on image sequences, image-sequence input to `predict`.

mod common;

use burn::prelude::*;
use common::{fixture, matcnn, matcnn_ok, python, scratch};
use matcnn::mat::{MatFile, Value};
use matcnn::model::MatNet;
use matcnn::net::{self, LayerKind, Network};

const EEGNET: &str = "tomerroditi-eegnet/EEGNet_001/bci_model.mat";
const EEGNET_LSTM: &str = "tomerroditi-eegnet/EEGNet_lstm_001/bci_model.mat";

fn import(rel: &str) -> (MatFile, Network) {
    let file = MatFile::read(fixture(rel)).unwrap();
    let net = net::import(&file, None).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (file, net)
}

/// Layer `k` (0-based) of the network stored in the `model` property of the `bci_model` object
/// in variable `model`: its `any` struct.
fn stored_layer(file: &MatFile, k: usize) -> &matcnn::mat::value::StructArray {
    let container = file
        .get("model")
        .unwrap()
        .as_object()
        .and_then(|o| o.prop("model"))
        .and_then(|v| v.as_object())
        .expect("bci_model.model is a network object");
    let layers = container
        .prop("any")
        .and_then(|v| v.as_struct())
        .and_then(|s| s.field("Layers"))
        .and_then(|v| v.as_object_array())
        .expect("the network's Layers");
    layers.elements[k]
        .prop("any")
        .and_then(|v| v.as_struct())
        .expect("the layer's any struct")
}

/// A learnable's stored `Value`, as MATLAB wrote it (column-major, its own dims).
fn stored_value(file: &MatFile, k: usize, prop: &str) -> (Vec<usize>, Vec<f64>) {
    let v: &Value = stored_layer(file, k)
        .field(prop)
        .and_then(|v| v.as_struct())
        .and_then(|s| s.field("Value"))
        .unwrap_or_else(|| panic!("layer {k} has no {prop}.Value"));
    let a = v.as_numeric().unwrap();
    let vals = a.real.to_f32_vec().iter().map(|&x| x as f64).collect();
    (a.dims.clone(), vals)
}

fn values(t: Tensor<4>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    (
        dims,
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(),
    )
}

/// The stored `11x1x1x16` (and `1x16x1x16`) grouped convolution weights import, and each grouped
/// convolution of EEGNet equals the same layer computed as separate ordinary convolutions, one
/// per group, with the weights split per group straight from the stored MATLAB array
/// (column-major `[kh, kw, C/G, F/G, G]`, merged by MATLAB into `[kh, kw, C/G, F]`): a scalar
/// reference that does not use matcnn's layout rules.
#[test]
fn eegnet_grouped_convolutions_equal_separate_convolutions() {
    let (file, net) = import(EEGNET);
    assert!(net.unsupported().is_empty());
    let dev = Device::flex();
    let model = MatNet::from_network(&net, &dev).unwrap();
    let input = net.input().unwrap().output.unwrap();
    let n = 2;
    let numel = n * input.c * input.h * input.w;
    let x: Vec<f32> = (0..numel)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 20.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [n, input.c, input.h, input.w]), &dev);
    let mut checked = 0;
    for (i, l) in net.layers.iter().enumerate() {
        let LayerKind::Conv2d(c) = &l.kind else {
            continue;
        };
        if c.groups <= 1 {
            continue;
        }
        // The layer's position in the stored Layers array (SeriesNetwork: the same order).
        let (wd, w) = stored_value(&file, i, "Weights");
        let (_, b) = stored_value(&file, i, "Bias");
        let [kh, kw] = c.filter;
        let g = c.groups;
        let cpg = c.in_channels / g;
        let fpg = c.filters / g;
        assert_eq!(
            w.len(),
            kh * kw * cpg * fpg * g,
            "{}: stored {wd:?}",
            l.name
        );
        let (xd, xin) = values(model.forward_node(x.clone(), l.inputs[0]));
        let (yd, got) = values(model.forward_node(x.clone(), i));
        let [_, cin, h, wi] = [xd[0], xd[1], xd[2], xd[3]];
        assert_eq!(cin, c.in_channels);
        let [_, cout, oh, ow] = [yd[0], yd[1], yd[2], yd[3]];
        let crate_pads = match c.padding {
            matcnn::net::layer::PaddingMode::Manual(p) => p,
            _ => panic!("padding not resolved"),
        };
        let (top, left) = (crate_pads.top as isize, crate_pads.left as isize);
        let [sh, sw] = c.stride;
        let [dh, dw] = c.dilation;
        let mut worst = 0f64;
        for b_i in 0..n {
            for grp in 0..g {
                // One ordinary convolution: input channels grp*cpg.., filters f of this group.
                for f in 0..fpg {
                    let o = grp * fpg + f;
                    for y in 0..oh {
                        for xx in 0..ow {
                            let mut s = b[o];
                            for ch in 0..cpg {
                                for u in 0..kh {
                                    for v in 0..kw {
                                        let iy = (y * sh + u * dh) as isize - top;
                                        let ix = (xx * sw + v * dw) as isize - left;
                                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize
                                        {
                                            continue;
                                        }
                                        // MATLAB column-major W(u, v, ch, f, grp).
                                        let wk = u + kh * (v + kw * (ch + cpg * (f + fpg * grp)));
                                        let xi = ((b_i * cin + grp * cpg + ch) * h + iy as usize)
                                            * wi
                                            + ix as usize;
                                        s += w[wk] * xin[xi] as f64;
                                    }
                                }
                            }
                            let yi = ((b_i * cout + o) * oh + y) * ow + xx;
                            worst = worst.max((got[yi] as f64 - s).abs() / s.abs().max(1.0));
                        }
                    }
                }
            }
        }
        assert!(worst <= 1e-5, "{}: max relative difference {worst}", l.name);
        eprintln!(
            "{}: {g} groups of {cpg} -> {fpg}, stored {wd:?}: max difference {worst:.2e}",
            l.name
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "EEGNet has two grouped convolutions");
}

/// `matcnn predict` runs EEGNet (a SeriesNetwork inside the user class `bci_model`) end to end:
/// class probabilities for generated 11x375x1 inputs.
#[test]
fn cli_predict_runs_eegnet() {
    let dir = scratch("fold", "eegnet");
    let x: Vec<f32> = (0..2 * 11 * 375)
        .map(|i| ((i * 31 % 97) as f32 - 48.0) / 4.0)
        .collect();
    let input = dir.join("x.npy");
    std::fs::write(&input, matcnn::data::npy_bytes(&x, &[2, 1, 11, 375])).unwrap();
    let out = dir.join("y.npy");
    let model = fixture(EEGNET);
    matcnn_ok(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let y = npy(&out);
    assert_eq!(y.0, vec![2, 3]);
    for row in y.1.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
    // The ONNX export (grouped convolutions as Conv with `group`) in onnxruntime.
    if let Some(py) = python() {
        let onnx = dir.join("eegnet.onnx");
        matcnn_ok(&[
            "export",
            "--model",
            model.to_str().unwrap(),
            "--format",
            "onnx",
            "--output",
            onnx.to_str().unwrap(),
        ]);
        let check = format!(
            r#"
import numpy as np, onnxruntime as ort
s = ort.InferenceSession(r"{onnx}", providers=["CPUExecutionProvider"])
y = s.run(None, {{s.get_inputs()[0].name: np.load(r"{x}")}})[0]
d = float(np.abs(y - np.load(r"{y}")).max())
print("max difference", d)
assert d <= 1e-5, d
"#,
            onnx = onnx.display(),
            x = input.display(),
            y = out.display(),
        );
        let o = std::process::Command::new(&py)
            .args(["-c", &check])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn npy(p: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(p).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().iter().map(|&d| d as usize).collect();
    (shape, f.into_vec::<f32>().unwrap())
}

/// The CNN-LSTM imports: sequence input of 11x500x1 frames, folding, EEGNet block, unfolding
/// (its `miniBatchSize` port wired by name), flatten, LSTM.
#[test]
fn eegnet_lstm_imports_with_folding() {
    let (_, net) = import(EEGNET_LSTM);
    assert!(net.unsupported().is_empty(), "{:?}", net.unsupported());
    let input = net.input().unwrap();
    let LayerKind::SequenceInput { size, frame, .. } = &input.kind else {
        panic!("{:?}", input.kind)
    };
    assert_eq!(*size, 11 * 500);
    assert_eq!(frame.map(|f| (f.h, f.w, f.c)), Some((11, 500, 1)));
    let pos = |name: &str| net.layers.iter().position(|l| l.name == name).unwrap();
    let unfold = &net.layers[pos("sequnfold")];
    assert!(matches!(unfold.kind, LayerKind::SequenceUnfolding));
    assert_eq!(unfold.inputs, vec![pos("dropout_3"), pos("seqfold")]);
    assert_eq!(
        net.layers[pos("flatten")].output,
        Some(matcnn::net::layer::Shape::features(10))
    );
    assert_eq!(net.layers[net.outputs[0]].output.map(|s| s.c), Some(3));
}

/// `matcnn predict` runs the CNN-LSTM end to end on generated image sequences: `.npy`
/// `[N, T, C, H, W]`, and a `.mat` cell of `H x W x C x T` arrays of different lengths (written
/// with scipy, when Python is there); the `.mat` results equal the `.npy` ones sequence by
/// sequence, and the ONNX export equals them in onnxruntime.
#[test]
fn cli_predict_runs_the_cnn_lstm_on_image_sequences() {
    let dir = scratch("fold", "cnn-lstm");
    let (n, t) = (2, 3);
    let f = 11 * 500;
    // Small values (EEG-like scale): larger ones saturate the LSTM, and every output is the same.
    let x: Vec<f32> = (0..n * t * f)
        .map(|i| ((i * 7 % 113) as f32 - 56.0) / 40.0 + (i / f) as f32 * 0.3)
        .collect();
    let input = dir.join("x.npy");
    std::fs::write(&input, matcnn::data::npy_bytes(&x, &[n, t, 1, 11, 500])).unwrap();
    let out = dir.join("y.npy");
    let model = fixture(EEGNET_LSTM);
    let model = model.to_str().unwrap();
    matcnn_ok(&[
        "predict",
        "--model",
        model,
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let (shape, y) = npy(&out);
    assert_eq!(shape, vec![n, 3]);
    let o = matcnn_ok(&["inspect", model]);
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "sequences of 11x500x1 images",
        "SequenceFoldingLayer",
        "dropout_3, seqfold",
        "Unsupported layers: none",
    ] {
        assert!(text.contains(want), "inspect lacks {want:?}:\n{text}");
    }
    for row in y.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
    assert!(
        (y[0] - y[3]).abs() > 1e-4,
        "both sequences give {:?}",
        &y[..3]
    );

    // A wrong frame size: named file and element, nothing written.
    let bad = dir.join("bad.npy");
    std::fs::write(
        &bad,
        matcnn::data::npy_bytes(&x[..t * 11 * 400], &[1, t, 1, 11, 400]),
    )
    .unwrap();
    let bad_out = dir.join("bad_out.npy");
    let o = matcnn(&[
        "predict",
        "--model",
        model,
        "--input",
        bad.to_str().unwrap(),
        "--output",
        bad_out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("bad.npy") && err.contains("[N, T, 1, 11, 500]"),
        "{err}"
    );
    assert!(!bad_out.exists());

    let Some(py) = python() else { return };
    // The same sequences (and a shorter one) as a MATLAB cell of H x W x C x T arrays.
    let script = format!(
        r#"
import numpy as np, scipy.io
x = np.load(r"{x}")                       # [N, T, C, H, W]
cells = np.empty((1, 3), dtype=object)
for i in range(2):
    cells[0, i] = np.transpose(x[i], (2, 3, 1, 0)).astype(np.float32)   # H x W x C x T
cells[0, 2] = cells[0, 0][:, :, :, :2]
scipy.io.savemat(r"{mat}", {{"X": cells}})
bad = np.empty((1, 2), dtype=object)
bad[0, 0] = cells[0, 0]
bad[0, 1] = np.zeros((11, 499, 1, 2), np.float32)
scipy.io.savemat(r"{badmat}", {{"X": bad}})
"#,
        x = input.display(),
        mat = dir.join("x.mat").display(),
        badmat = dir.join("bad.mat").display(),
    );
    let st = std::process::Command::new(&py)
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
    let mat_out = dir.join("y.mat");
    let spec = format!("{}:X", dir.join("x.mat").display());
    matcnn_ok(&[
        "predict",
        "--model",
        model,
        "--input",
        &spec,
        "--output",
        mat_out.to_str().unwrap(),
    ]);
    let ym = MatFile::read(&mat_out).unwrap();
    let ym = ym.get("Y").unwrap().as_numeric().unwrap();
    assert_eq!(ym.dims, vec![3, 3]);
    let ym = ym.real.to_f32_vec(); // column-major 3 x 3
    for i in 0..2 {
        for k in 0..3 {
            let d = (ym[k * 3 + i] - y[i * 3 + k]).abs();
            assert!(d < 1e-5, "sequence {i} class {k}: {d}");
        }
    }
    // Bad input: the second element has 11x499 frames.
    let bad_spec = format!("{}:X", dir.join("bad.mat").display());
    let o = matcnn(&[
        "predict",
        "--model",
        model,
        "--input",
        &bad_spec,
        "--output",
        bad_out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("bad.mat:X") && err.contains("element {2}") && err.contains("11x499x1x2"),
        "{err}"
    );
    assert!(!bad_out.exists());

    // The ONNX export in onnxruntime equals matcnn's results.
    let onnx = dir.join("model.onnx");
    matcnn_ok(&[
        "export",
        "--model",
        model,
        "--format",
        "onnx",
        "--output",
        onnx.to_str().unwrap(),
    ]);
    let check = format!(
        r#"
import numpy as np, onnxruntime as ort
x = np.load(r"{x}")                                   # [N, T, C, H, W]
n, t = x.shape[:2]
xs = x.reshape(n, t, -1).transpose(0, 2, 1).copy()    # [N, C*H*W, T]
s = ort.InferenceSession(r"{onnx}", providers=["CPUExecutionProvider"])
y = s.run(None, {{s.get_inputs()[0].name: xs}})[0]
ref = np.load(r"{y}")
d = float(np.abs(y.reshape(ref.shape) - ref).max())
print("max difference", d)
assert d <= 1e-5, d
"#,
        x = input.display(),
        onnx = onnx.display(),
        y = out.display(),
    );
    let o = std::process::Command::new(&py)
        .args(["-c", &check])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("onnxruntime: {}", String::from_utf8_lossy(&o.stdout).trim());
    std::fs::remove_dir_all(&dir).ok();
}
