//! The network importer on the real fixtures: every network imports, with the layer count and
//! classes, output sizes, class names and learnables each file implies. Learnables are checked
//! against an independent count made by walking the file's value tree.

use std::collections::HashSet;

use matcnn::mat::{MatFile, Value};
use matcnn::net::{
    self, LayerKind, NetError, Network, Normalization, PaddingMode, Shape, SourceKind,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/");

fn read(path: &str) -> MatFile {
    MatFile::read(format!("{FIXTURES}{path}")).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn import(path: &str) -> (MatFile, Network) {
    let file = read(path);
    let n = net::import(&file, None).unwrap_or_else(|e| panic!("importing {path}: {e}"));
    (file, n)
}

fn layer<'a>(n: &'a Network, name: &str) -> &'a net::Layer {
    n.layers
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no layer {name}"))
}

fn out(n: &Network, name: &str) -> Option<Shape> {
    layer(n, name).output
}

fn short_classes(n: &Network) -> Vec<&str> {
    n.layers
        .iter()
        .map(|l| l.class.rsplit('.').next().unwrap_or(""))
        .collect()
}

/// Learnables by walking the stored tree: the element counts of every `Value` of a `Weights`,
/// `Bias`, `Offset`, `Scale`, `InputWeights` or `RecurrentWeights` parameter struct. Objects are
/// counted once each (by id).
fn dlt_learnables(v: &Value, seen: &mut HashSet<u32>) -> usize {
    const PARAMS: [&str; 6] = [
        "Weights",
        "Bias",
        "Offset",
        "Scale",
        "InputWeights",
        "RecurrentWeights",
    ];
    match v {
        Value::Struct(s) => {
            let mut total = 0;
            for el in &s.elements {
                for (name, fv) in s.fields.iter().zip(el) {
                    let param_value = match fv {
                        Value::Struct(p) if PARAMS.contains(&name.as_str()) && p.len() == 1 => {
                            p.field("Value")
                        }
                        _ => None,
                    };
                    total += match param_value {
                        Some(Value::Numeric(a)) => a.numel(),
                        Some(_) => 0,
                        None => dlt_learnables(fv, seen),
                    };
                }
            }
            total
        }
        Value::Cell(c) => c.data.iter().map(|x| dlt_learnables(x, seen)).sum(),
        Value::Object(o) => o
            .elements
            .iter()
            .map(|obj| {
                if obj.id != 0 && !seen.insert(obj.id) {
                    return 0;
                }
                obj.props
                    .iter()
                    .map(|(_, p)| dlt_learnables(p, seen))
                    .sum::<usize>()
            })
            .sum(),
        _ => 0,
    }
}

fn stored_learnables(file: &MatFile, var: &str) -> usize {
    let v = &file
        .variables
        .iter()
        .find(|v| v.name == var)
        .unwrap_or_else(|| panic!("no variable {var}"))
        .value;
    dlt_learnables(v, &mut HashSet::new())
}

fn numel(v: &Value) -> usize {
    v.as_numeric().map_or(0, |a| a.numel())
}

/// MATLAB column-major element `sub` of a numeric array.
fn at(a: &matcnn::mat::NumericArray, sub: &[usize]) -> f32 {
    let mut idx = 0;
    let mut stride = 1;
    for (k, s) in sub.iter().enumerate() {
        idx += s * stride;
        stride *= a.dims.get(k).copied().unwrap_or(1);
    }
    a.real.get_f64(idx).unwrap_or(f64::NAN) as f32
}

/// The stored `any.Weights.Value` of layer `i` (0-based) of a SeriesNetwork variable.
fn stored_weights<'a>(
    file: &'a MatFile,
    var: &str,
    i: usize,
    param: &str,
) -> &'a matcnn::mat::NumericArray {
    let net = file
        .variables
        .iter()
        .find(|v| v.name == var)
        .and_then(|v| v.value.as_object())
        .expect("network object");
    let any = net.prop("any").and_then(|a| a.as_struct()).expect("any");
    let layers = any
        .field("Layers")
        .and_then(|l| l.as_object_array())
        .expect("Layers");
    let lany = layers.elements[i]
        .prop("any")
        .and_then(|a| a.as_struct())
        .expect("layer any");
    lany.field(param)
        .and_then(|p| p.as_struct())
        .and_then(|p| p.field("Value"))
        .and_then(|v| v.as_numeric())
        .expect("parameter value")
}

#[test]
fn mw_workshop_mnist() {
    let (file, n) = import("mw-workshop-mnist/MNIST_Network.mat");
    assert_eq!(n.variable, "MNISTnetwork");
    assert_eq!(n.source, SourceKind::SeriesNetwork);
    assert_eq!(
        short_classes(&n),
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
    assert_eq!(out(&n, "imageinput"), Some(Shape::image(28, 28, 1)));
    assert_eq!(out(&n, "maxpool_1"), Some(Shape::image(14, 14, 16)));
    assert_eq!(out(&n, "maxpool_2"), Some(Shape::image(7, 7, 32)));
    assert_eq!(out(&n, "relu_3"), Some(Shape::image(7, 7, 64)));
    assert_eq!(out(&n, "fc"), Some(Shape::image(1, 1, 10)));
    let digits: Vec<String> = (0..10).map(|d| format!("Digit_{d}")).collect();
    assert_eq!(n.classes, digits);
    assert_eq!(n.learnables(), 54890);
    assert_eq!(n.learnables(), stored_learnables(&file, "MNISTnetwork"));
    assert!(n.is_trained());
    assert_eq!(n.outputs, vec![14]);
    assert_eq!(n.input().map(|l| l.name.as_str()), Some("imageinput"));
    match &layer(&n, "imageinput").kind {
        LayerKind::ImageInput {
            normalization: Normalization::ZeroCenter { mean },
            ..
        } => {
            assert_eq!(mean.shape, vec![1, 1, 1]);
            assert!((mean.data[0] - 48.7566).abs() < 1e-3);
        }
        other => panic!("{other:?}"),
    }
    // Conv weights: canonical [Cout, Cin, kh, kw][o, i, y, x] = MATLAB W(y, x, i, o).
    let w_ml = stored_weights(&file, "MNISTnetwork", 5, "Weights");
    match &layer(&n, "conv_2").kind {
        LayerKind::Conv2d(c) => {
            let w = &c.weights.as_ref().expect("weights").value;
            assert_eq!(w.shape, vec![32, 16, 3, 3]);
            for (o, i, y, x) in [(0, 0, 0, 0), (3, 5, 1, 2), (31, 15, 2, 1)] {
                assert_eq!(
                    w.data[((o * 16 + i) * 3 + y) * 3 + x],
                    at(w_ml, &[y, x, i, o])
                );
            }
            assert_eq!(
                c.padding,
                PaddingMode::Manual(net::Padding {
                    top: 1,
                    bottom: 1,
                    left: 1,
                    right: 1
                })
            );
            assert_eq!(c.bias.as_ref().map(|b| b.l2_factor), Some(0.0));
        }
        other => panic!("{other:?}"),
    }
    // FC weights: [K, C*H*W] with column c*H*W + h*W + w = MATLAB W(h, w, c, k).
    let f_ml = stored_weights(&file, "MNISTnetwork", 12, "Weights");
    match &layer(&n, "fc").kind {
        LayerKind::FullyConnected(f) => {
            let w = &f.weights.as_ref().expect("weights").value;
            assert_eq!(w.shape, vec![10, 3136]);
            for (k, c, h, x) in [(0, 0, 0, 1), (7, 33, 4, 6), (9, 63, 6, 0)] {
                assert_eq!(
                    w.data[k * 3136 + c * 49 + h * 7 + x],
                    at(f_ml, &[h, x, c, k])
                );
            }
        }
        other => panic!("{other:?}"),
    }
    match &layer(&n, "batchnorm_1").kind {
        LayerKind::BatchNorm(b) => {
            assert_eq!(b.channels, 16);
            assert_eq!(b.epsilon, 1e-5);
            assert_eq!(b.variance.as_ref().map(|v| v.shape.clone()), Some(vec![16]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn chandrachapa_mnist_bn() {
    let (file, n) = import("chandrachapa-mnist-bn/net.mat");
    assert_eq!(n.layers.len(), 11);
    assert_eq!(out(&n, "conv_1"), Some(Shape::image(28, 28, 20)));
    assert_eq!(out(&n, "maxPool_1"), Some(Shape::image(14, 14, 20)));
    assert_eq!(out(&n, "Relu_2"), Some(Shape::image(14, 14, 16)));
    assert_eq!(out(&n, "FC"), Some(Shape::image(1, 1, 10)));
    // 'same' with a 5x5 kernel resolves to [2 2 2 2], as stored.
    match &layer(&n, "conv_1").kind {
        LayerKind::Conv2d(c) => assert_eq!(
            c.padding,
            PaddingMode::Manual(net::Padding {
                top: 2,
                bottom: 2,
                left: 2,
                right: 2
            })
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        n.classes,
        (0..10).map(|d| d.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(n.learnables(), 34858);
    assert_eq!(n.learnables(), stored_learnables(&file, "net"));
}

#[test]
fn basheer_digit_bn() {
    let (file, n) = import("basheer-digit-bn/net.mat");
    assert_eq!(n.layers.len(), 15);
    assert_eq!(out(&n, "maxpool_2"), Some(Shape::image(7, 7, 16)));
    assert_eq!(out(&n, "relu_3"), Some(Shape::image(7, 7, 32)));
    assert_eq!(n.classes.len(), 10);
    assert_eq!(n.learnables(), 21690);
    assert_eq!(n.learnables(), stored_learnables(&file, "net"));
}

#[test]
fn vikas_fruit_prefers_the_trained_network_over_the_layer_array() {
    let (file, n) = import("vikas-fruit-tf/net.mat");
    assert_eq!(n.variable, "net");
    assert_eq!(n.layers.len(), 15);
    assert_eq!(out(&n, "imageinput"), Some(Shape::image(320, 320, 3)));
    assert_eq!(out(&n, "relu_3"), Some(Shape::image(80, 80, 32)));
    assert_eq!(out(&n, "fc"), Some(Shape::image(1, 1, 3)));
    assert_eq!(
        n.classes,
        [
            "apple_red_delicios_1",
            "apple_red_yellow_1",
            "apple_rotten_1"
        ]
    );
    assert_eq!(n.learnables(), 620547);
    assert_eq!(n.learnables(), stored_learnables(&file, "net"));
    match &n.layers[0].kind {
        LayerKind::ImageInput {
            normalization: Normalization::ZeroCenter { mean },
            ..
        } => assert_eq!(mean.shape, vec![3, 1, 1]),
        other => panic!("{other:?}"),
    }
    let found = net::find_networks(&file);
    assert!(found.contains(&("layers".to_string(), SourceKind::LayerArray)));
    assert!(found.contains(&("net".to_string(), SourceKind::SeriesNetwork)));

    // The untrained layer array: MATLAB's default names, 'auto' channels and 'same' resolved.
    let l = net::import(&file, Some("layers")).expect("layers");
    assert_eq!(l.source, SourceKind::LayerArray);
    assert!(!l.is_trained());
    assert_eq!(l.learnables(), 0);
    assert_eq!(l.layers[1].name, "conv_1");
    assert_eq!(l.layers[0].name, "imageinput");
    assert_eq!(l.layers[12].name, "fc");
    assert_eq!(l.layers[12].output, Some(Shape::image(1, 1, 3)));
    match &l.layers[5].kind {
        LayerKind::Conv2d(c) => {
            assert_eq!(c.in_channels, 8);
            assert!(matches!(c.padding, PaddingMode::Manual(_)));
        }
        other => panic!("{other:?}"),
    }
    match &l.layers[0].kind {
        LayerKind::ImageInput {
            normalization: Normalization::ZeroCenter { mean },
            ..
        } => assert_eq!(mean.numel(), 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn kwr_trafficlight() {
    let (file, n) = import("kwr-trafficlight-onnx/net.mat");
    assert_eq!(n.layers.len(), 19);
    assert_eq!(out(&n, "MaxPool1"), Some(Shape::image(25, 10, 8)));
    assert_eq!(out(&n, "MaxPool2"), Some(Shape::image(12, 5, 16)));
    assert_eq!(out(&n, "Relu4"), Some(Shape::image(6, 2, 64)));
    assert_eq!(out(&n, "FC"), Some(Shape::image(1, 1, 5)));
    assert_eq!(n.classes, ["0", "1", "2", "3", "4"]);
    assert_eq!(n.learnables(), 28613);
    assert_eq!(n.learnables(), stored_learnables(&file, "net"));
}

#[test]
fn gender_audio_dag() {
    let (file, n) = import("gender-audio/trainedNetwork_1.mat");
    assert_eq!(n.source, SourceKind::DAGNetwork);
    assert_eq!(n.layers.len(), 68);
    let connections: usize = n.layers.iter().map(|l| l.inputs.len()).sum();
    assert_eq!(connections, 75);
    assert_eq!(out(&n, "conv1"), Some(Shape::image(113, 113, 64)));
    assert_eq!(out(&n, "pool1"), Some(Shape::image(56, 56, 64)));
    assert_eq!(out(&n, "fire2-concat"), Some(Shape::image(56, 56, 128)));
    assert_eq!(out(&n, "pool3"), Some(Shape::image(28, 28, 128)));
    assert_eq!(out(&n, "fire9-concat"), Some(Shape::image(14, 14, 512)));
    assert_eq!(out(&n, "pool10"), Some(Shape::image(1, 1, 2)));
    // fire5-concat lists in2 before in1 in the Connections table: inputs follow the port numbers.
    let names = |l: &net::Layer| {
        l.inputs
            .iter()
            .map(|&i| n.layers[i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(layer(&n, "fire5-concat")),
        ["fire5-relu_expand1x1", "fire5-relu_expand3x3"]
    );
    assert_eq!(
        names(layer(&n, "fire6-concat")),
        ["fire6-relu_expand1x1", "fire6-relu_expand3x3"]
    );
    // Topological order.
    for (i, l) in n.layers.iter().enumerate() {
        assert!(
            l.inputs.iter().all(|&j| j < i),
            "{} before its inputs",
            l.name
        );
    }
    assert_eq!(n.classes, ["f", "m"]);
    assert_eq!(
        n.outputs
            .iter()
            .map(|&o| n.layers[o].name.as_str())
            .collect::<Vec<_>>(),
        ["classoutput"]
    );
    assert_eq!(n.learnables(), 723522);
    assert_eq!(n.learnables(), stored_learnables(&file, "trainedNetwork_1"));
}

#[test]
fn fuma28_speech_dlnetwork() {
    let (file, n) = import("fuma28-speech/trainedNet.mat");
    assert_eq!(n.source, SourceKind::DlNetwork);
    assert_eq!(n.layers.len(), 23);
    assert_eq!(out(&n, "maxpool_1"), Some(Shape::image(49, 16, 12)));
    assert_eq!(out(&n, "maxpool_2"), Some(Shape::image(25, 8, 24)));
    assert_eq!(out(&n, "maxpool_3"), Some(Shape::image(13, 4, 48)));
    assert_eq!(out(&n, "maxpool_4"), Some(Shape::image(1, 4, 48)));
    assert_eq!(out(&n, "softmax"), Some(Shape::image(1, 1, 8)));
    // 'same' pooling with stride 2 resolved to the asymmetric pads MATLAB stored.
    let pads = |name: &str| match &layer(&n, name).kind {
        LayerKind::MaxPool2d(p) => p.padding,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        pads("maxpool_1"),
        PaddingMode::Manual(net::Padding {
            top: 0,
            bottom: 1,
            left: 0,
            right: 1
        })
    );
    assert_eq!(
        pads("maxpool_2"),
        PaddingMode::Manual(net::Padding {
            top: 1,
            bottom: 1,
            left: 0,
            right: 1
        })
    );
    assert_eq!(
        n.outputs
            .iter()
            .map(|&o| n.layers[o].name.as_str())
            .collect::<Vec<_>>(),
        ["softmax"]
    );
    // The class names live in a separate file.
    assert!(n.classes.is_empty());
    assert_eq!(n.learnables(), 56624);
    assert_eq!(n.learnables(), stored_learnables(&file, "trainedNet"));
    // classes.mat holds no network.
    let classes = read("fuma28-speech/classes.mat");
    assert!(matches!(
        net::import(&classes, None),
        Err(NetError::NoNetwork { .. })
    ));
}

#[test]
fn pac48_dlnet_function_layers() {
    let (file, n) = import("pac48-dlnet/dlnet.mat");
    assert_eq!(n.layers.len(), 17);
    assert_eq!(out(&n, "LayersIn"), Some(Shape::image(59, 79, 8)));
    assert_eq!(out(&n, "conv_4"), Some(Shape::image(53, 73, 1)));
    assert_eq!(out(&n, "layer_1"), Some(Shape::image(64, 64, 1)));
    assert_eq!(out(&n, "flatten"), Some(Shape::features(4096)));
    assert_eq!(out(&n, "layer_2"), None);
    assert_eq!(out(&n, "fc"), Some(Shape::features(2)));
    let unsupported: Vec<(&str, &str, String)> = n
        .unsupported()
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Unsupported { reason } => {
                (l.name.as_str(), l.class.as_str(), reason.clone())
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        unsupported,
        [
            (
                "layer_2",
                "nnet.cnn.layer.FunctionLayer",
                "FunctionLayer: anonymous function @(W)W.^2./(sum(W.^2,1)+.01) cannot be converted"
                    .to_string()
            ),
            (
                "layer_3",
                "nnet.cnn.layer.FunctionLayer",
                "FunctionLayer: anonymous function @(W)[XFlat*W;YFlat*W] cannot be converted"
                    .to_string()
            ),
        ]
    );
    assert_eq!(n.learnables(), 25111);
    assert_eq!(n.learnables(), stored_learnables(&file, "dlnet"));
}

#[test]
fn pac48_tfnet_function_layers_and_outputs() {
    let (file, n) = import("pac48-dlnet/TFNetPretrained.mat");
    assert_eq!(n.layers.len(), 13);
    assert_eq!(n.unsupported().len(), 6);
    for l in n.unsupported() {
        assert_eq!(l.class, "nnet.cnn.layer.FunctionLayer");
        assert_eq!(
            l.kind,
            LayerKind::Unsupported {
                reason: "FunctionLayer: anonymous function @(x).001*x cannot be converted".into()
            }
        );
    }
    // Stored FC-before-function order becomes topological: each scale layer precedes its FC.
    for (i, l) in n.layers.iter().enumerate() {
        assert!(
            l.inputs.iter().all(|&j| j < i),
            "{} before its inputs",
            l.name
        );
    }
    let outputs: Vec<&str> = n
        .outputs
        .iter()
        .map(|&o| n.layers[o].name.as_str())
        .collect();
    assert_eq!(
        outputs,
        [
            "background_TF_FC_Layer",
            "book_TF_FC_Layer",
            "iphone_box_TF_FC_Layer",
            "plate_TF_FC_Layer",
            "fork_TF_FC_Layer",
            "blue_block_TF_FC_Layer"
        ]
    );
    assert_eq!(out(&n, "book_TF_FC_Layer"), Some(Shape::features(6)));
    assert_eq!(n.learnables(), 36036);
    assert_eq!(n.learnables(), stored_learnables(&file, "TFNet"));
}

#[test]
fn saurabh_mlp_trained_and_untrained() {
    let (file, n) = import("saurabh-mlp/trainedNet.mat");
    assert_eq!(n.layers.len(), 10);
    assert_eq!(out(&n, "featureinput"), Some(Shape::features(784)));
    assert_eq!(out(&n, "fc_3"), Some(Shape::features(128)));
    assert_eq!(out(&n, "fc_2"), Some(Shape::features(10)));
    match &layer(&n, "fc_3").kind {
        LayerKind::FullyConnected(f) => assert_eq!(
            f.weights.as_ref().map(|w| w.value.shape.clone()),
            Some(vec![128, 784])
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        n.classes,
        (0..10).map(|d| d.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(n.learnables(), 121450);
    assert_eq!(n.learnables(), stored_learnables(&file, "net"));

    let (file, u) = import("saurabh-mlp/networkLayer.mat");
    assert_eq!(u.source, SourceKind::LayerArray);
    assert_eq!(u.variable, "layers_2");
    assert_eq!(u.layers.len(), 10);
    assert!(!u.is_trained());
    assert_eq!(u.learnables(), 0);
    assert_eq!(stored_learnables(&file, "layers_2"), 0);
    assert_eq!(out(&u, "fc_1"), Some(Shape::features(32)));
    match &layer(&u, "fc").kind {
        LayerKind::FullyConnected(f) => {
            assert_eq!(f.outputs, 128);
            assert!(f.weights.is_none() && f.bias.is_none());
        }
        other => panic!("{other:?}"),
    }
    assert!(u.classes.is_empty());
}

#[test]
fn mimo_detect_custom_layers() {
    let (file, n) = import("mimo-detect/trainedNet_test.mat");
    // 20 stored; the user-defined output layer (sigmoidClassificationLayer) is dropped (tests/find.rs).
    assert_eq!(n.layers.len(), 19);
    assert_eq!(out(&n, "imageinput"), Some(Shape::image(40, 1, 1)));
    assert_eq!(out(&n, "fc_1"), Some(Shape::image(1, 1, 512)));
    assert_eq!(out(&n, "fc_7"), Some(Shape::image(1, 1, 8)));
    match &layer(&n, "fc_1").kind {
        LayerKind::FullyConnected(f) => assert_eq!(
            f.weights.as_ref().map(|w| w.value.shape.clone()),
            Some(vec![512, 40])
        ),
        other => panic!("{other:?}"),
    }
    match &layer(&n, "imageinput").kind {
        LayerKind::ImageInput {
            normalization: Normalization::ZeroCenter { mean },
            ..
        } => assert_eq!(mean.shape, vec![1, 40, 1]),
        other => panic!("{other:?}"),
    }
    let unsupported: Vec<(&str, &str, String)> = n
        .unsupported()
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Unsupported { reason } => {
                (l.name.as_str(), l.class.as_str(), reason.clone())
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        unsupported,
        [(
            "layer",
            "sigmoidLayer",
            "user-defined layer class 'sigmoidLayer' (no code is stored in the .mat)".to_string()
        ),]
    );
    assert_eq!(n.learnables(), 197080);
    assert_eq!(n.learnables(), stored_learnables(&file, "net"));
}

#[test]
fn mw_eegnet_elu_and_identity_layers() {
    let (file, n) = import("mw-eegnet/eegNet.mat");
    assert_eq!(n.layers.len(), 28);
    assert_eq!(out(&n, "input"), Some(Shape::image(21, 6000, 1)));
    assert_eq!(out(&n, "conv1"), Some(Shape::image(21, 5991, 25)));
    assert_eq!(out(&n, "conv1_2"), Some(Shape::image(1, 1997, 25)));
    assert_eq!(out(&n, "pool1"), Some(Shape::image(1, 1995, 25)));
    // The identity-looking custom layers are not guessed: shapes after them are unknown.
    assert_eq!(out(&n, "elu2"), None);
    assert_eq!(n.unsupported().len(), 4);
    for l in n.unsupported() {
        assert_eq!(l.class, "identityLayer");
        assert_eq!(
            l.kind,
            LayerKind::Unsupported {
                reason: "user-defined layer class 'identityLayer' (no code is stored in the .mat)"
                    .into()
            }
        );
    }
    // ELU stored without saveobj.
    assert_eq!(
        layer(&n, "elu1").kind,
        LayerKind::Activation(net::Activation::Elu { alpha: 1.0 })
    );
    match &layer(&n, "conv1_2").kind {
        LayerKind::Conv2d(c) => {
            assert_eq!(c.filter, [21, 1]);
            assert_eq!(c.stride, [1, 3]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(n.classes, ["normal", "abnormal"]);
    assert_eq!(n.learnables(), 303827);
    assert_eq!(n.learnables(), stored_learnables(&file, "net"));
}

#[test]
fn mw_fault_lstm() {
    let (file, n) = import("mw-fault-lstm/TrainedModel.mat");
    assert_eq!(n.layers.len(), 7);
    assert_eq!(
        short_classes(&n),
        [
            "SequenceInputLayer",
            "LSTMLayer",
            "DropoutLayer",
            "LSTMLayer",
            "FullyConnectedLayer",
            "SoftmaxLayer",
            "ClassificationOutputLayer"
        ]
    );
    assert_eq!(out(&n, "sequenceinput"), Some(Shape::features(10)));
    assert_eq!(out(&n, "lstm_2"), Some(Shape::features(100)));
    assert_eq!(out(&n, "fc"), Some(Shape::features(8)));
    match (&layer(&n, "lstm_1").kind, &layer(&n, "lstm_2").kind) {
        (LayerKind::Lstm(a), LayerKind::Lstm(b)) => {
            assert!(a.return_sequence && !b.return_sequence);
            assert_eq!((a.hidden, a.input_size), (100, 10));
            assert_eq!(
                a.input_weights.as_ref().map(|w| w.value.shape.clone()),
                Some(vec![400, 10])
            );
            assert_eq!(
                a.recurrent_weights.as_ref().map(|w| w.value.shape.clone()),
                Some(vec![400, 100])
            );
            assert_eq!(
                a.bias.as_ref().map(|w| w.value.shape.clone()),
                Some(vec![400])
            );
            assert_eq!(
                (a.state_activation.as_str(), a.gate_activation.as_str()),
                ("tanh", "sigmoid")
            );
            assert!(!a.bidirectional);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        n.classes,
        [
            "Bearing",
            "Flywheel",
            "Healthy",
            "LIV",
            "LOV",
            "NRV",
            "Piston",
            "Riderbelt"
        ]
    );
    assert_eq!(n.learnables(), 125608);
    assert_eq!(n.learnables(), stored_learnables(&file, "airCompNet"));
}

/// MatConvNet learnables from the tree: SimpleNN `weights` cells (minus batch-norm moments), DagNN
/// `params` (minus the moments param of each BatchNorm layer).
fn matconvnet_learnables(file: &MatFile) -> usize {
    let s = file
        .variables
        .iter()
        .find(|v| v.name == "net")
        .and_then(|v| v.value.as_struct())
        .expect("net struct");
    match s.field("layers") {
        Some(Value::Cell(c)) => c
            .data
            .iter()
            .filter_map(|l| l.as_struct())
            .map(|l| {
                let bnorm = l.field("type").and_then(|t| t.as_string()).as_deref() == Some("bnorm");
                let w = l
                    .field("weights")
                    .and_then(|w| w.as_cell())
                    .map(|w| w.data.clone())
                    .unwrap_or_default();
                w.iter()
                    .take(if bnorm { 2 } else { usize::MAX })
                    .map(numel)
                    .sum::<usize>()
            })
            .sum(),
        Some(Value::Struct(layers)) => {
            let params = s
                .field("params")
                .and_then(|p| p.as_struct())
                .expect("params");
            let mut moments = HashSet::new();
            for i in 0..layers.len() {
                if layers.get(i, "type").and_then(|t| t.as_string()).as_deref()
                    == Some("dagnn.BatchNorm")
                {
                    let names = layers
                        .get(i, "params")
                        .and_then(|p| p.as_string_list())
                        .unwrap_or_default();
                    moments.extend(names.get(2).cloned());
                }
            }
            (0..params.len())
                .filter(|&i| {
                    !moments.contains(
                        &params
                            .get(i, "name")
                            .and_then(|n| n.as_string())
                            .unwrap_or_default(),
                    )
                })
                .map(|i| params.get(i, "value").map_or(0, numel))
                .sum()
        }
        _ => panic!("not a MatConvNet net"),
    }
}

#[test]
fn dncnn_simplenn_v73() {
    let (file, n) = import("dncnn-matconvnet/sigma=25.mat");
    assert_eq!(n.source, SourceKind::MatConvNetSimpleNN);
    // 17 conv + 16 relu, plus the input layer made for them.
    assert_eq!(n.layers.len(), 34);
    assert_eq!(n.layers.iter().filter(|l| l.class == "conv").count(), 17);
    assert_eq!(n.layers.iter().filter(|l| l.class == "relu").count(), 16);
    // No stored image size: any height and width, one channel.
    assert_eq!(n.layers[0].output, Some(Shape::image(0, 0, 1)));
    assert_eq!(n.layers[33].output, Some(Shape::image(0, 0, 1)));
    match &n.layers[33].kind {
        // The last conv stored its weights [3,3,64]: one filter restored.
        LayerKind::Conv2d(c) => {
            assert_eq!(c.filters, 1);
            assert_eq!(
                c.weights.as_ref().map(|w| w.value.shape.clone()),
                Some(vec![1, 64, 3, 3])
            );
            assert_eq!(
                c.padding,
                PaddingMode::Manual(net::Padding {
                    top: 1,
                    bottom: 1,
                    left: 1,
                    right: 1
                })
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(n.learnables(), 555137);
    assert_eq!(n.learnables(), matconvnet_learnables(&file));
}

#[test]
fn dncnn_dagnn_v73() {
    let (file, n) = import("dncnn-matconvnet/DnCNN-epoch-50.mat");
    assert_eq!(n.source, SourceKind::MatConvNetDagNN);
    assert_eq!(n.layers.len(), 51);
    assert_eq!(n.layers[0].name, "input");
    let sum = layer(&n, "sum49");
    assert_eq!(sum.kind, LayerKind::Addition { inputs: 2 });
    assert_eq!(
        sum.inputs
            .iter()
            .map(|&i| n.layers[i].name.as_str())
            .collect::<Vec<_>>(),
        ["conv48", "input"]
    );
    // The L2 loss keeps only its prediction input; the label is not a network input.
    let loss = layer(&n, "loss");
    assert_eq!(loss.kind, LayerKind::RegressionOutput);
    assert_eq!(loss.inputs.len(), 1);
    assert_eq!(
        n.layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::ImageInput { .. }))
            .count(),
        1
    );
    match &layer(&n, "bnorm4").kind {
        // MatConvNet moments are [mean, sigma] with epsilon inside sigma: variance = sigma^2, epsilon 0.
        LayerKind::BatchNorm(b) => {
            assert_eq!(b.epsilon, 0.0);
            assert_eq!(b.channels, 64);
            assert!(
                b.variance
                    .as_ref()
                    .is_some_and(|v| v.data.iter().all(|x| *x >= 0.0))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out(&n, "conv48"), Some(Shape::image(0, 0, 1)));
    assert_eq!(n.learnables(), 557057);
    assert_eq!(n.learnables(), matconvnet_learnables(&file));
}

#[test]
fn choosing_variables_and_errors() {
    let file = read("vikas-fruit-tf/net.mat");
    let e = net::import(&file, Some("nope")).unwrap_err();
    assert!(matches!(e, NetError::NoSuchVariable { .. }), "{e}");
    let e = net::import(&file, Some("I")).unwrap_err();
    assert!(
        e.to_string().contains("'I'") && e.to_string().contains("uint8"),
        "{e}"
    );

    // Two trained networks in one file: an error listing both and asking for --var.
    let mut both = read("mw-workshop-mnist/MNIST_Network.mat");
    both.variables
        .extend(read("chandrachapa-mnist-bn/net.mat").variables);
    let e = net::import(&both, None).unwrap_err().to_string();
    assert!(
        e.contains("MNISTnetwork") && e.contains("net (SeriesNetwork)") && e.contains("--var"),
        "{e}"
    );
    assert_eq!(
        net::import(&both, Some("net")).expect("net").layers.len(),
        11
    );
}

#[test]
fn network_held_in_a_struct_field() {
    // A network saved inside a struct (s.model = net) is found by its path.
    let mut file = read("chandrachapa-mnist-bn/net.mat");
    let inner = file.variables.remove(0);
    file.variables.push(matcnn::mat::Variable {
        name: "s".into(),
        global: false,
        value: Value::Struct(matcnn::mat::StructArray {
            dims: vec![1, 1],
            fields: vec!["model".into()],
            elements: vec![vec![inner.value]],
        }),
    });
    assert_eq!(
        net::find_networks(&file),
        vec![("s.model".to_string(), SourceKind::SeriesNetwork)]
    );
    assert_eq!(
        net::import(&file, None).expect("nested").variable,
        "s.model"
    );
    assert_eq!(
        net::import(&file, Some("s")).expect("nested").layers.len(),
        11
    );
}

/// Applies `f` to the `any` struct of layer `idx` of the SeriesNetwork in variable `var`.
fn edit_layer(
    file: &mut MatFile,
    var: &str,
    idx: usize,
    f: impl FnOnce(&mut matcnn::mat::StructArray),
) {
    fn any_of(v: &mut Value) -> &mut matcnn::mat::StructArray {
        let Value::Object(arr) = v else {
            panic!("not an object")
        };
        let obj = std::sync::Arc::make_mut(&mut arr.elements[0]);
        match obj.props.iter_mut().find(|(n, _)| n == "any") {
            Some((_, Value::Struct(s))) => s,
            _ => panic!("no any"),
        }
    }
    fn field<'a>(s: &'a mut matcnn::mat::StructArray, name: &str) -> &'a mut Value {
        let i = s.fields.iter().position(|f| f == name).expect("field");
        &mut s.elements[0][i]
    }
    let v = &mut file
        .variables
        .iter_mut()
        .find(|v| v.name == var)
        .expect("variable")
        .value;
    let Value::Object(layers) = field(any_of(v), "Layers") else {
        panic!("Layers")
    };
    let layer = std::sync::Arc::make_mut(&mut layers.elements[idx]);
    match layer.props.iter_mut().find(|(n, _)| n == "any") {
        Some((_, Value::Struct(s))) => f(s),
        _ => panic!("layer without any"),
    }
}

#[test]
fn errors_name_variable_layer_class_and_property() {
    // Weights that do not match FilterSize/NumChannels/NumFilters.
    let mut file = read("mw-workshop-mnist/MNIST_Network.mat");
    edit_layer(&mut file, "MNISTnetwork", 5, |s| {
        let i = s
            .fields
            .iter()
            .position(|f| f == "FilterSize")
            .expect("FilterSize");
        s.elements[0][i] = Value::Numeric(matcnn::mat::NumericArray::new(
            vec![1, 2],
            matcnn::mat::NumData::F64(vec![5.0, 5.0]),
        ));
    });
    let e = net::import(&file, None).unwrap_err();
    match &e {
        NetError::Property {
            at,
            property,
            expected,
            found,
        } => {
            assert_eq!(
                (at.variable.as_str(), at.layer.as_str()),
                ("MNISTnetwork", "conv_2")
            );
            assert_eq!(at.class, "nnet.cnn.layer.Convolution2DLayer");
            assert_eq!(property, "Weights");
            assert_eq!(expected, "5x5x16x32");
            assert_eq!(found, "single 3x3x16x32");
        }
        other => panic!("{other}"),
    }

    // A stored NumChannels that disagrees with the inferred input.
    let mut file = read("mw-workshop-mnist/MNIST_Network.mat");
    edit_layer(&mut file, "MNISTnetwork", 6, |s| {
        let i = s
            .fields
            .iter()
            .position(|f| f == "NumChannels")
            .expect("NumChannels");
        s.elements[0][i] = Value::Numeric(matcnn::mat::NumericArray::new(
            vec![1, 1],
            matcnn::mat::NumData::F64(vec![16.0]),
        ));
        for name in ["TrainedMean", "TrainedVariance"] {
            let i = s.fields.iter().position(|f| f == name).expect("stat");
            s.elements[0][i] = Value::Numeric(matcnn::mat::NumericArray::new(
                vec![1, 1, 16],
                matcnn::mat::NumData::F32(vec![0.0; 16]),
            ));
        }
        for name in ["Offset", "Scale"] {
            let i = s.fields.iter().position(|f| f == name).expect("param");
            s.elements[0][i] = Value::Numeric(matcnn::mat::NumericArray::new(
                vec![1, 1, 16],
                matcnn::mat::NumData::F32(vec![1.0; 16]),
            ));
        }
    });
    let msg = net::import(&file, None).unwrap_err().to_string();
    for part in [
        "'MNISTnetwork'",
        "'batchnorm_2'",
        "BatchNormalizationLayer",
        "NumChannels",
        "16",
        "32",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
}

/// Importing by moving the weights out of the decoded file (`import_owned`, what the CLI does)
/// gives exactly the network that importing with copies gives, on every fixture network: all
/// layers, shapes and values, reordered in place or not.
#[test]
fn owned_import_equals_copying_import() {
    let cases: &[(&str, Option<&str>)] = &[
        ("basheer-digit-bn/net.mat", None),
        ("chandrachapa-mnist-bn/net.mat", None),
        ("dncnn-matconvnet/DnCNN-epoch-50.mat", None),
        ("dncnn-matconvnet/sigma=25.mat", None),
        ("fuma28-speech/trainedNet.mat", None),
        ("gender-audio/trainedNetwork_1.mat", None),
        ("kwr-trafficlight-onnx/net.mat", None),
        ("mimo-detect/trainedNet_test.mat", None),
        ("mw-eegnet/eegNet.mat", None),
        ("mw-fault-lstm/TrainedModel.mat", None),
        ("mw-workshop-mnist/MNIST_Network.mat", None),
        ("pac48-dlnet/TFNetPretrained.mat", None),
        ("pac48-dlnet/dlnet.mat", None),
        ("saurabh-mlp/trainedNet.mat", None),
        ("vikas-fruit-tf/net.mat", None),
        ("vikas-fruit-tf/net.mat", Some("layers")),
    ];
    for &(path, var) in cases {
        let copied = net::import(&read(path), var).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut owned =
            net::import_owned(read(path), var).unwrap_or_else(|e| panic!("{path} owned: {e}"));
        assert_eq!(owned, copied, "{path} {var:?}");
        // The trained networks have values (the untrained layer array may not).
        let values: usize = owned.tensors_mut().iter().map(|t| t.data.len()).sum();
        assert!(var.is_some() || values > 0, "{path}: no values");
    }
}
