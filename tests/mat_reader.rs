//! The MAT reader on every real fixture: facts taken from the `.dump.txt` files and from
//! independent exports of the same weights (MATLAB's own ONNX and TensorFlow exports).

use matcnn::mat::*;
use std::path::PathBuf;

mod common;
use common::fixture;

fn read(rel: &str) -> MatFile {
    MatFile::read(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// All fixture .mat files.
fn all_mat_files() -> Vec<PathBuf> {
    let mut out = vec![];
    for dir in std::fs::read_dir(fixture("")).expect("fixtures folder") {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "mat") {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    out
}

/// The `any` struct of a saveobj object.
fn any(o: &Object) -> &StructArray {
    o.prop("any")
        .and_then(|v| v.as_struct())
        .unwrap_or_else(|| panic!("{} has no 'any' struct", o.class))
}

fn layers(net: &Value) -> &ObjectArray {
    let o = net.as_object().expect("network object");
    any(o)
        .field("Layers")
        .and_then(|v| v.as_object_array())
        .expect("Layers object array")
}

/// The `Value` of a learnable-parameter struct field of a layer's `any` struct.
fn param<'a>(layer: &'a Object, field: &str) -> &'a NumericArray {
    let s = any(layer)
        .field(field)
        .and_then(|v| v.as_struct())
        .expect("param struct");
    s.field("Value")
        .and_then(|v| v.as_numeric())
        .expect("Value array")
}

fn sum(a: &NumericArray) -> f64 {
    a.real.to_f64_vec().iter().sum()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn every_fixture_reads_completely() {
    let files = all_mat_files();
    assert!(
        files.len() >= 27,
        "found only {} .mat fixtures",
        files.len()
    );
    for f in files {
        let m = MatFile::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!m.variables.is_empty(), "{}: no variables", f.display());
    }
}

#[test]
fn mnist_layers_classes_and_weights() {
    let m = read("mw-workshop-mnist/MNIST_Network.mat");
    assert_eq!(m.version, MatVersion::V5);
    let names: Vec<&str> = m.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["MNISTnetwork"]);
    let net = m.get("MNISTnetwork").unwrap();
    assert_eq!(net.class_name(), "SeriesNetwork");
    let l = layers(net);
    assert_eq!(l.class, "nnet.cnn.layer.Layer");
    assert_eq!(l.dims, [15, 1]);
    let classes: Vec<&str> = l
        .elements
        .iter()
        .map(|o| o.class.trim_start_matches("nnet.cnn.layer."))
        .collect();
    assert_eq!(
        classes,
        [
            "ImageInputLayer",
            "Convolution2DLayer",
            "BatchNormalizationLayer",
            "ReLULayer",
            "MaxPooling2DLayer",
            "Convolution2DLayer",
            "BatchNormalizationLayer",
            "ReLULayer",
            "MaxPooling2DLayer",
            "Convolution2DLayer",
            "BatchNormalizationLayer",
            "ReLULayer",
            "FullyConnectedLayer",
            "SoftmaxLayer",
            "ClassificationOutputLayer"
        ]
    );
    let w = param(&l.elements[1], "Weights");
    assert_eq!(w.dims, [3, 3, 1, 16]);
    assert_eq!(w.class_name(), "single");
    let fc = param(&l.elements[12], "Weights");
    assert_eq!(fc.dims, [7, 7, 64, 10]);
    // The scalar mean of the zerocenter normalization.
    let norm = any(&l.elements[0])
        .field("Normalization")
        .and_then(|v| v.as_struct())
        .unwrap();
    assert_eq!(
        norm.field("Type").and_then(|v| v.as_string()).as_deref(),
        Some("zerocenter")
    );
    let avg = norm.field("AverageImage").and_then(|v| v.as_f64()).unwrap();
    assert!((avg - 48.756595611572266).abs() < 1e-9, "{avg}");
    // Categories of the classification layer.
    let cats = match any(&l.elements[14]).field("Categories") {
        Some(Value::Categorical(c)) => c.clone(),
        other => panic!("Categories: {other:?}"),
    };
    let expected: Vec<String> = (0..10).map(|d| format!("Digit_{d}")).collect();
    assert_eq!(cats.categories, expected);
    // Every element of a weight array is read: sums agree with a second decoding path (the
    // canonical [Cout, Cin, kh, kw] reorder keeps the sum).
    let (buf, shape) = w.to_row_major(&[3, 2, 0, 1]).unwrap();
    assert_eq!(shape, [16, 1, 3, 3]);
    let s2: f64 = buf.iter().map(|x| *x as f64).sum();
    assert!(close(sum(w), s2));
}

#[test]
fn weight_sums_equal_matlabs_own_exports() {
    // kwr-trafficlight-onnx/net.onnx (MATLAB's exportONNXNetwork) holds Conv1_W with sum
    // -0.9677574167435523 and BN1 mean sum 0.4999820329248905 (read with the onnx package).
    let m = read("kwr-trafficlight-onnx/net.mat");
    let l = layers(m.get("net").unwrap());
    let conv = l
        .elements
        .iter()
        .find(|o| o.class.ends_with("Convolution2DLayer"))
        .unwrap();
    let w = param(conv, "Weights");
    assert_eq!(w.dims, [3, 3, 3, 8]);
    assert!(close(sum(w), -0.9677574167435523), "{}", sum(w));
    let bn = l
        .elements
        .iter()
        .find(|o| o.class.ends_with("BatchNormalizationLayer"))
        .unwrap();
    let mean = any(bn)
        .field("TrainedMean")
        .and_then(|v| v.as_numeric())
        .unwrap();
    assert!(close(sum(mean), 0.4999820329248905), "{}", sum(mean));

    // vikas-fruit-tf/weights.h5 (MATLAB's TensorFlow export of the same network).
    let m = read("vikas-fruit-tf/net.mat");
    let l = layers(m.get("net").unwrap());
    let convs: Vec<_> = l
        .elements
        .iter()
        .filter(|o| o.class.ends_with("Convolution2DLayer"))
        .collect();
    assert!(close(sum(param(convs[0], "Weights")), 6.889781869016588));
    assert!(close(sum(param(convs[2], "Weights")), -19.397446259506978));
    let fc = l
        .elements
        .iter()
        .find(|o| o.class.ends_with("FullyConnectedLayer"))
        .unwrap();
    let fw = param(fc, "Weights");
    assert_eq!(fw.dims, [80, 80, 32, 3]);
    assert!(close(sum(fw), -0.4936715445323898), "{}", sum(fw));
    let bn = l
        .elements
        .iter()
        .find(|o| o.class.ends_with("BatchNormalizationLayer"))
        .unwrap();
    let var = any(bn)
        .field("TrainedVariance")
        .and_then(|v| v.as_numeric())
        .unwrap();
    assert!(close(sum(var), 33436097.8671875), "{}", sum(var));
    // Workspace variables next to the network.
    let img = m.get("I").unwrap().as_numeric().unwrap();
    assert_eq!(
        (img.class_name(), img.dims.as_slice()),
        ("uint8", &[320usize, 320, 3][..])
    );
    let probs = m.get("test_probs").unwrap().to_f64_vec().unwrap();
    assert_eq!(probs.len(), 3);
}

#[test]
fn dag_connections_table() {
    let m = read("gender-audio/trainedNetwork_1.mat");
    let net = m
        .get(
            &m.variables
                .iter()
                .find(|v| v.value.class_name() == "DAGNetwork")
                .unwrap()
                .name,
        )
        .unwrap();
    let a = any(net.as_object().unwrap());
    assert_eq!(
        a.field("Layers")
            .and_then(|v| v.as_object_array())
            .unwrap()
            .elements
            .len(),
        68
    );
    let t = a
        .field("Connections")
        .and_then(|v| v.as_table())
        .expect("Connections table");
    assert_eq!(t.var_names, ["Source", "Destination"]);
    assert_eq!(t.nrows, 75);
    let src = t.column("Source").unwrap().as_string_list().unwrap();
    let dst = t.column("Destination").unwrap().as_string_list().unwrap();
    assert_eq!((src.len(), dst.len()), (75, 75));
    assert_eq!((src[0].as_str(), dst[0].as_str()), ("data", "conv1"));
    assert_eq!((src[1].as_str(), dst[1].as_str()), ("conv1", "relu_conv1"));
    assert!(dst.iter().any(|d| d == "fire2-concat/in1"));
    assert!(dst.iter().any(|d| d == "fire2-concat/in2"));
}

#[test]
fn matconvnet_struct_arrays_from_v73() {
    let m = read("dncnn-matconvnet/DnCNN-epoch-50.mat");
    assert_eq!(m.version, MatVersion::V73);
    let net = m.get("net").unwrap().as_struct().unwrap();
    let params = net.field("params").and_then(|v| v.as_struct()).unwrap();
    assert_eq!(params.dims, [1, 79]);
    assert_eq!(
        params.get(0, "name").and_then(|v| v.as_string()).as_deref(),
        Some("conv1_f")
    );
    assert_eq!(
        params
            .get(0, "value")
            .and_then(|v| v.as_numeric())
            .unwrap()
            .dims,
        [3, 3, 1, 64]
    );
    assert_eq!(
        params
            .get(1, "value")
            .and_then(|v| v.as_numeric())
            .unwrap()
            .dims,
        [64, 1]
    );
    let layers = net.field("layers").and_then(|v| v.as_struct()).unwrap();
    assert_eq!(
        layers.get(0, "type").and_then(|v| v.as_string()).as_deref(),
        Some("dagnn.Conv")
    );
    assert_eq!(
        layers
            .get(0, "params")
            .and_then(|v| v.as_string_list())
            .unwrap(),
        ["conv1_f", "conv1_b"]
    );

    let m = read("dncnn-matconvnet/sigma=25.mat");
    let layers = m
        .get("net")
        .unwrap()
        .as_struct()
        .unwrap()
        .field("layers")
        .and_then(|v| v.as_cell())
        .unwrap();
    assert_eq!(layers.dims, [1, 33]);
    let first = layers.data[0].as_struct().unwrap();
    assert_eq!(
        first.field("type").and_then(|v| v.as_string()).as_deref(),
        Some("conv")
    );
    let w = first.field("weights").and_then(|v| v.as_cell()).unwrap();
    assert_eq!(w.data[0].as_numeric().unwrap().dims, [3, 3, 1, 64]);
    // The last conv has one filter: MATLAB dropped the trailing singleton.
    let last = layers.data[32].as_struct().unwrap();
    let w = last.field("weights").and_then(|v| v.as_cell()).unwrap();
    assert_eq!(w.data[0].as_numeric().unwrap().dims, [3, 3, 64]);
}

#[test]
fn dlnetwork_and_function_layers() {
    let m = read("fuma28-speech/trainedNet.mat");
    let net = m.get("trainedNet").unwrap();
    assert_eq!(net.class_name(), "dlnetwork");
    let a = any(net.as_object().unwrap());
    let lg = a
        .field("LayerGraph")
        .and_then(|v| v.as_object())
        .expect("LayerGraph object");
    assert_eq!(lg.class, "nnet.cnn.LayerGraph");
    let classes = read("fuma28-speech/classes.mat");
    assert_eq!(
        classes
            .get("classes")
            .unwrap()
            .as_string_list()
            .unwrap()
            .len(),
        8
    );

    let m = read("pac48-dlnet/dlnet.mat");
    let text = matcnn::dump::text(&m, 30);
    assert!(text.contains("FunctionLayer"));
    assert!(text.contains("@(W)W.^2./(sum(W.^2,1)+.01)"));
}

#[test]
fn sequences_and_categorical_labels() {
    let m = read("mw-fault-lstm/ValidationFeatures.mat");
    let c = m.get("validationFeatures").unwrap().as_cell().unwrap();
    assert_eq!(c.dims, [1, 176]);
    assert_eq!(c.data[0].as_numeric().unwrap().dims[0], 10);
    let r = read("mw-fault-lstm/ValidationResults.mat");
    match r.get("validationResults").unwrap() {
        Value::Categorical(c) => {
            assert_eq!(c.codes.len(), 176);
            assert_eq!(c.categories.len(), 8);
            assert!(c.codes.iter().all(|&k| (1..=8).contains(&k)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn user_defined_objects_and_shared_handles() {
    let m = read("matio-v73-mcos/test_user_defined_v7.mat");
    let nested = m.get("obj_with_nested_props").unwrap().as_object().unwrap();
    assert_eq!(nested.class, "TestClasses.BasicClass");
    let a = nested.prop("a").and_then(|v| v.as_object()).unwrap();
    assert_eq!(
        a.prop("b").and_then(|v| v.as_string()).as_deref(),
        Some("Obj1")
    );
    let c = nested.prop("c").and_then(|v| v.as_struct()).unwrap();
    let inner = c.field("InnerProp").and_then(|v| v.as_object()).unwrap();
    assert_eq!(inner.prop("a").and_then(|v| v.as_f64()), Some(2.0));
    // Class defaults merged under saved values.
    let d = m.get("obj_with_default_val").unwrap().as_object().unwrap();
    assert_eq!(
        d.prop("a").and_then(|v| v.as_string()).as_deref(),
        Some("Default String")
    );
    assert_eq!(d.prop("b").and_then(|v| v.as_f64()), Some(10.0));
    // Object arrays in column-major order: the file holds [o1 o2; o3 o4] with a = 1..4.
    let arr = m.get("obj_array").unwrap().as_object_array().unwrap();
    assert_eq!(arr.dims, [2, 2]);
    let vals: Vec<f64> = arr
        .elements
        .iter()
        .map(|o| o.prop("a").and_then(|v| v.as_f64()).unwrap())
        .collect();
    assert_eq!(vals, [1.0, 3.0, 2.0, 4.0]);
    // One handle object saved under two names is decoded once.
    let h1 = m.get("obj_handle_1").unwrap().as_object_array().unwrap();
    let h2 = m.get("obj_handle_2").unwrap().as_object_array().unwrap();
    assert!(std::sync::Arc::ptr_eq(&h1.elements[0], &h2.elements[0]));

    let s = read("matio-v73-mcos/test_string_v7.mat");
    match s.get("string_array").unwrap() {
        Value::String(st) => {
            assert_eq!(st.dims, [2, 3]);
            let v: Vec<&str> = st.data.iter().map(|x| x.as_deref().unwrap()).collect();
            assert_eq!(v, ["Apple", "Date", "Banana", "Fig", "Cherry", "Grapes"]);
        }
        other => panic!("{other:?}"),
    }
}

/// Variables by name (v7.3 lists them alphabetically, v7 in save order).
fn sorted(m: &MatFile) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = m
        .variables
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn v7_and_v73_twins_decode_to_equal_trees() {
    for stem in ["test_user_defined", "test_string", "test_maps"] {
        let a = read(&format!("matio-v73-mcos/{stem}_v7.mat"));
        let b = read(&format!("matio-v73-mcos/{stem}_v73.mat"));
        assert_eq!(a.version, MatVersion::V5);
        assert_eq!(b.version, MatVersion::V73);
        let (a, b) = (sorted(&a), sorted(&b));
        assert_eq!(a.len(), b.len(), "{stem}");
        for ((na, va), (nb, vb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert_eq!(va, vb, "{stem}: variable {na} differs between v7 and v7.3");
        }
    }
}

/// Lazy reading: `read_vars` decodes only the variables asked for (MATLAB objects included,
/// through the subsystem) and gives the same trees as a full read; the others are listed by
/// name, and asking for a missing one names them all.
#[test]
fn read_vars_decodes_only_what_is_asked() {
    for (rel, names) in [
        ("vikas-fruit-tf/net.mat", &["net", "I"][..]),
        ("mw-workshop-mnist/MNIST_Network.mat", &["MNISTnetwork"][..]),
        (
            "matio-v73-mcos/test_user_defined_v7.mat",
            &["obj_with_nested_props", "obj_handle_2"][..],
        ),
    ] {
        let path = fixture(rel);
        let full = MatFile::read(&path).unwrap();
        let lazy = MatFile::read_vars(&path, names).unwrap();
        for n in names {
            assert_eq!(full.get(n).unwrap(), lazy.get(n).unwrap(), "{rel}: {n}");
        }
        assert!(lazy.variables.len() <= names.len(), "{rel}");
        assert_eq!(
            lazy.variables.len() + lazy.skipped.len(),
            full.variables.len(),
            "{rel}"
        );
        let msg = lazy.get("no_such_variable").unwrap_err().to_string();
        for v in &full.variables {
            assert!(
                msg.contains(&v.name),
                "{rel}: '{msg}' does not name {}",
                v.name
            );
        }
    }
    // The vikas file holds 30-odd variables; reading two of them skips the rest.
    let lazy = MatFile::read_vars(fixture("vikas-fruit-tf/net.mat"), &["I"]).unwrap();
    assert_eq!(lazy.variables.len(), 1);
    assert!(lazy.skipped.iter().any(|n| n == "net"));
}

/// An uncompressed v5 file with one `single` array of `dims`, written by hand: header, then an
/// miMATRIX element (flags, dims, name, miSINGLE data).
fn uncompressed_single(name: &str, dims: [u32; 2], values: &[f32]) -> Vec<u8> {
    let le = |v: u32| v.to_le_bytes();
    let mut body = Vec::new();
    body.extend(le(6)); // miUINT32 flags
    body.extend(le(8));
    body.extend(le(7)); // mxSINGLE_CLASS
    body.extend(le(0));
    body.extend(le(5)); // miINT32 dims
    body.extend(le(8));
    body.extend(le(dims[0]));
    body.extend(le(dims[1]));
    body.extend(le(1)); // miINT8 name
    body.extend(le(name.len() as u32));
    body.extend(name.as_bytes());
    body.resize(body.len().next_multiple_of(8), 0);
    body.extend(le(7)); // miSINGLE data
    body.extend(le(4 * values.len() as u32));
    for v in values {
        body.extend(v.to_le_bytes());
    }
    body.resize(body.len().next_multiple_of(8), 0);
    let mut f = b"MATLAB 5.0 MAT-file, Platform: test".to_vec();
    f.resize(116, b' ');
    f.extend([0u8; 8]);
    f.extend(0x0100u16.to_le_bytes());
    f.extend(b"IM");
    f.extend(le(14)); // miMATRIX
    f.extend(le(body.len() as u32));
    f.extend(body);
    f
}

/// Reading a file through its memory map hands the decoded pages back to the kernel as it
/// goes; the values must be those of reading it from a buffer, for every fixture (some hold
/// uncompressed elements) and for a 12 MB uncompressed array decoded in several steps.
#[test]
fn mapped_reading_equals_buffered_reading() {
    let dir = common::scratch("mat_reader", "mapped");
    let values: Vec<f32> = (0..3_001_000).map(|i| (i as f32).sin() * 1e3).collect();
    let big = dir.join("big.mat");
    std::fs::write(&big, uncompressed_single("w", [1000, 3001], &values)).unwrap();
    let mut files = all_mat_files();
    files.push(big.clone());
    for path in files {
        let mapped = MatFile::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let bytes = std::fs::read(&path).unwrap();
        let buffered = MatFile::from_bytes(&bytes).unwrap();
        // Compared through Debug, where NaN (in training histories) equals NaN.
        assert!(
            format!("{:?}", sorted(&mapped)) == format!("{:?}", sorted(&buffered)),
            "{}",
            path.display()
        );
    }
    let m = MatFile::read(&big).unwrap();
    let a = m.get("w").unwrap().as_numeric().unwrap();
    assert_eq!(a.dims, vec![1000, 3001]);
    assert_eq!(a.real.to_f32_vec(), values);
    let _ = std::fs::remove_dir_all(dir);
}
