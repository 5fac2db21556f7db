//! The `inspect` report of an imported network, in the spirit of MATLAB's `analyzeNetwork`: one
//! row per layer (index, name, class, description, output size, learnables), then the input, the
//! outputs, the class names, the total learnables and the layers matcnn cannot convert.
//!
//! # JSON
//!
//! [`json`] returns an object with:
//!
//! * `variable` (string): the variable (or property path) the network was read from;
//! * `source` (string): `SeriesNetwork`, `DAGNetwork`, `dlnetwork`, `LayerGraph`, `Layer array`,
//!   `MatConvNet SimpleNN` or `MatConvNet DagNN`;
//! * `trained` (bool): every layer has its weights and statistics;
//! * `layers` (array, in topological order), each with
//!   `index` (1-based), `name`, `class` (full MATLAB class or MatConvNet type),
//!   `class_short` (the class without its package), `kind` (the layer kind: `ImageInput`,
//!   `Conv2d`, `Relu`, `LeakyRelu`, ..., `Unsupported`), `description` (as in the text report),
//!   `inputs` (names of the producing layers, in port order), `output_size` (`[H, W, C]` for image
//!   data, `[C]` for feature/sequence data, `null` when unknown; an unknown height or width, as in
//!   MatConvNet networks that accept any size, is `null` inside the array), `sequence` (true when
//!   the output is a sequence of time steps: `output_size` is then per time step) and
//!   `learnables`;
//! * `learnables_total` (number);
//! * `classes` (array of strings, empty unless the network classifies);
//! * `unsupported` (array of `{name, class, reason}`);
//! * `input` (`null` or `{name, kind, size, normalization}`, `normalization` being `none`,
//!   `zerocenter`, `zscore`, `rescale-symmetric` or `rescale-zero-one`);
//! * `outputs` (array of layer names).

use serde_json::{Value as Json, json};

use crate::net::{
    Activation, Layer, LayerKind, Network, Normalization, PaddingMode, Shape, source_name,
};

fn class_short(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

fn pair(p: [usize; 2]) -> String {
    format!("[{} {}]", p[0], p[1])
}

fn padding(p: &PaddingMode) -> String {
    match p {
        PaddingMode::Manual(p) => format!("[{} {} {} {}]", p.top, p.bottom, p.left, p.right),
        PaddingMode::Same => "'same'".into(),
    }
}

fn normalization_name(n: &Normalization) -> &'static str {
    match n {
        Normalization::None => "none",
        Normalization::ZeroCenter { .. } => "zerocenter",
        Normalization::ZScore { .. } => "zscore",
        Normalization::RescaleSymmetric { .. } => "rescale-symmetric",
        Normalization::RescaleZeroOne { .. } => "rescale-zero-one",
    }
}

fn with_normalization(base: String, n: &Normalization) -> String {
    match n {
        Normalization::None => base,
        other => format!("{base} with '{}' normalization", normalization_name(other)),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn number(x: f64) -> String {
    format!("{x}")
}

/// The kind of a layer as one word (`Conv2d`, `Relu`, `Unsupported`).
pub fn kind_name(kind: &LayerKind) -> &'static str {
    use LayerKind as K;
    match kind {
        K::ImageInput { .. } => "ImageInput",
        K::FeatureInput { .. } => "FeatureInput",
        K::SequenceInput { .. } => "SequenceInput",
        K::Conv2d(_) => "Conv2d",
        K::ConvTranspose2d(_) => "ConvTranspose2d",
        K::FullyConnected(_) => "FullyConnected",
        K::BatchNorm(_) => "BatchNorm",
        K::GroupNorm(_) => "GroupNorm",
        K::Lrn(_) => "Lrn",
        K::Activation(a) => match a {
            Activation::Relu => "Relu",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::ClippedRelu { .. } => "ClippedRelu",
            Activation::Elu { .. } => "Elu",
            Activation::Tanh => "Tanh",
            Activation::Sigmoid => "Sigmoid",
            Activation::Swish => "Swish",
            Activation::Gelu { .. } => "Gelu",
        },
        K::MaxPool2d(_) => "MaxPool2d",
        K::AvgPool2d(_) => "AvgPool2d",
        K::GlobalAvgPool => "GlobalAvgPool",
        K::GlobalMaxPool => "GlobalMaxPool",
        K::Addition { .. } => "Addition",
        K::Multiplication { .. } => "Multiplication",
        K::DepthConcat { .. } => "DepthConcat",
        K::Concat { .. } => "Concat",
        K::Dropout { .. } => "Dropout",
        K::Flatten => "Flatten",
        K::Resize2d { .. } => "Resize2d",
        K::Softmax => "Softmax",
        K::ClassificationOutput { .. } => "ClassificationOutput",
        K::RegressionOutput => "RegressionOutput",
        K::Lstm(_) => "Lstm",
        K::Gru(_) => "Gru",
        K::Unsupported { .. } => "Unsupported",
    }
}

/// One line saying what a layer computes, e.g. `3x3 conv, 16 filters, stride [1 1], padding [1 1 1 1]`.
pub fn description(layer: &Layer) -> String {
    use LayerKind as K;
    match &layer.kind {
        K::ImageInput {
            size,
            normalization,
        } => with_normalization(format!("{} images", size_str(size)), normalization),
        K::FeatureInput {
            size,
            normalization,
        } => with_normalization(format!("{size} features"), normalization),
        K::SequenceInput {
            size,
            normalization,
        } => with_normalization(
            format!("sequence input with {size} dimensions"),
            normalization,
        ),
        K::Conv2d(c) => {
            let mut s = format!(
                "{}x{} conv, {} filters",
                c.filter[0], c.filter[1], c.filters
            );
            if c.groups != 1 {
                s += &format!(", {} groups", c.groups);
            }
            s += &format!(", stride {}", pair(c.stride));
            if c.dilation != [1, 1] {
                s += &format!(", dilation {}", pair(c.dilation));
            }
            s + &format!(", padding {}", padding(&c.padding))
        }
        K::ConvTranspose2d(c) => format!(
            "{}x{} transposed conv, {}, stride {}, cropping {}",
            c.filter[0],
            c.filter[1],
            plural(c.filters, "filter"),
            pair(c.stride),
            padding(&c.cropping)
        ),
        K::FullyConnected(f) => format!("{} fully connected", f.outputs),
        K::BatchNorm(b) => format!("batch normalization with {} channels", b.channels),
        K::GroupNorm(g) if g.groups == 1 => {
            format!("layer normalization with {} channels", g.channels)
        }
        K::GroupNorm(g) => format!(
            "group normalization, {} groups, {} channels",
            g.groups, g.channels
        ),
        K::Lrn(l) => format!(
            "cross channel normalization with {} channels per element",
            l.window
        ),
        K::Activation(a) => match a {
            Activation::Relu => "ReLU".into(),
            Activation::LeakyRelu { scale } => format!("leaky ReLU with scale {}", number(*scale)),
            Activation::ClippedRelu { ceiling } => {
                format!("clipped ReLU with ceiling {}", number(*ceiling))
            }
            Activation::Elu { alpha } => format!("ELU with alpha {}", number(*alpha)),
            Activation::Tanh => "hyperbolic tangent".into(),
            Activation::Sigmoid => "sigmoid".into(),
            Activation::Swish => "swish".into(),
            Activation::Gelu { tanh: false } => "GELU".into(),
            Activation::Gelu { tanh: true } => "GELU (tanh approximation)".into(),
        },
        K::MaxPool2d(p) | K::AvgPool2d(p) => format!(
            "{}x{} {} pooling, stride {}, padding {}",
            p.size[0],
            p.size[1],
            if matches!(layer.kind, K::MaxPool2d(_)) {
                "max"
            } else {
                "average"
            },
            pair(p.stride),
            padding(&p.padding)
        ),
        K::GlobalAvgPool => "global average pooling".into(),
        K::GlobalMaxPool => "global max pooling".into(),
        K::Addition { inputs } => format!("element-wise addition of {inputs} inputs"),
        K::Multiplication { inputs } => format!("element-wise multiplication of {inputs} inputs"),
        K::DepthConcat { inputs } => format!("depth concatenation of {inputs} inputs"),
        K::Concat { dim, inputs } => {
            format!("concatenation of {inputs} inputs along dimension {dim}")
        }
        K::Dropout { probability } => format!("{}% dropout", number(probability * 100.0)),
        K::Flatten => "flatten".into(),
        K::Resize2d {
            scale,
            output_size,
            method,
            ..
        } => match (output_size, scale) {
            (Some(o), _) => format!("resize to {} ({method})", pair(*o)),
            (None, Some(s)) => format!("resize by [{} {}] ({method})", number(s[0]), number(s[1])),
            (None, None) => format!("resize ({method})"),
        },
        K::Softmax => "softmax".into(),
        K::ClassificationOutput { classes } => match classes.as_slice() {
            [] => "classification output".into(),
            [one] => format!("crossentropyex with '{one}'"),
            [first, rest @ ..] => format!(
                "crossentropyex with '{first}' and {} other class{}",
                rest.len(),
                if rest.len() == 1 { "" } else { "es" }
            ),
        },
        K::RegressionOutput => "mean-squared-error".into(),
        K::Lstm(r) | K::Gru(r) => {
            let mut d = format!(
                "{} with {} hidden units, output mode {}",
                match (&layer.kind, r.bidirectional) {
                    (K::Gru(_), _) => "GRU",
                    (_, true) => "BiLSTM",
                    _ => "LSTM",
                },
                r.hidden,
                if r.return_sequence {
                    "sequence"
                } else {
                    "last"
                }
            );
            if r.state_activation != "tanh" || r.gate_activation != "sigmoid" {
                d += &format!(", {}/{}", r.state_activation, r.gate_activation);
            }
            if matches!(layer.kind, K::Gru(_)) && r.reset_gate_mode != "after-multiplication" {
                d += &format!(", reset gate {}", r.reset_gate_mode);
            }
            d
        }
        K::Unsupported { reason } => format!("unsupported: {reason}"),
    }
}

fn size_str(s: &Shape) -> String {
    crate::net::shape::describe(&Some(*s))
}

fn output_json(s: &Option<Shape>) -> Json {
    let dim = |d: usize| if d == 0 { Json::Null } else { json!(d) };
    match s {
        None => Json::Null,
        Some(s) if s.spatial => json!([dim(s.h), dim(s.w), s.c]),
        Some(s) => json!([s.numel()]),
    }
}

fn input_names(net: &Network, layer: &Layer) -> Vec<String> {
    layer
        .inputs
        .iter()
        .filter_map(|&j| net.layers.get(j).map(|l| l.name.clone()))
        .collect()
}

fn is_chain(net: &Network) -> bool {
    net.layers
        .iter()
        .enumerate()
        .all(|(i, l)| l.inputs.is_empty() || l.inputs == [i.wrapping_sub(1)])
}

fn class_list(classes: &[String]) -> String {
    if classes.len() <= 20 {
        classes.join(", ")
    } else {
        format!(
            "{}, ... ({} more)",
            classes[..10].join(", "),
            classes.len() - 10
        )
    }
}

fn input_line(l: &Layer) -> String {
    let (size, norm) = match &l.kind {
        LayerKind::ImageInput {
            size,
            normalization,
        } => (size_str(size), normalization),
        LayerKind::FeatureInput {
            size,
            normalization,
        } => (format!("{size} features"), normalization),
        LayerKind::SequenceInput {
            size,
            normalization,
        } => (format!("sequences of {size} features"), normalization),
        _ => return l.name.clone(),
    };
    let stats = match norm {
        Normalization::None => String::new(),
        Normalization::ZeroCenter { mean: t }
        | Normalization::ZScore { mean: t, .. }
        | Normalization::RescaleSymmetric { min: t, .. }
        | Normalization::RescaleZeroOne { min: t, .. } => {
            if t.numel() == 0 {
                " (statistics not computed yet)".into()
            } else {
                format!(
                    " (statistics {})",
                    t.shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("x")
                )
            }
        }
    };
    format!(
        "{} {size}, normalization {}{stats}",
        l.name,
        normalization_name(norm)
    )
}

/// The report as text.
pub fn text(net: &Network) -> String {
    let chain = is_chain(net);
    let mut header = vec!["#", "Name", "Class", "Description", "Output", "Learnables"];
    if !chain {
        header.insert(4, "Inputs");
    }
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let seq = net.sequence_outputs();
    let size = |i: usize, l: &Layer| {
        let s = crate::net::shape::describe(&l.output);
        if seq[i] { format!("{s} x T") } else { s }
    };
    for (i, l) in net.layers.iter().enumerate() {
        let mut row = vec![
            (i + 1).to_string(),
            l.name.clone(),
            class_short(&l.class).to_string(),
            description(l),
            size(i, l),
            net.layer_learnables(i).to_string(),
        ];
        if !chain {
            row.insert(4, input_names(net, l).join(", "));
        }
        rows.push(row);
    }
    let ncol = rows[0].len();
    let widths: Vec<usize> = (0..ncol)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "Network '{}' ({}): {} layers, {} learnables{}\n\n",
        net.variable,
        source_name(net.source),
        net.layers.len(),
        net.learnables(),
        if net.is_trained() { "" } else { " (untrained)" }
    );
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            // Numbers right-aligned, text left-aligned.
            if c == 0 || c == ncol - 1 {
                line += &" ".repeat(pad);
                line += cell;
            } else {
                line += cell;
                if c + 1 < ncol {
                    line += &" ".repeat(pad);
                }
            }
            if c + 1 < ncol {
                line += "  ";
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out.push('\n');
    out += &format!(
        "Input: {}\n",
        net.input().map(input_line).unwrap_or_else(|| "none".into())
    );
    let outputs: Vec<String> = net
        .outputs
        .iter()
        .filter_map(|&o| net.layers.get(o).map(|l| (o, l)))
        .map(|(o, l)| format!("{} ({})", l.name, size(o, l)))
        .collect();
    out += &format!(
        "Outputs: {}\n",
        if outputs.is_empty() {
            "none".into()
        } else {
            outputs.join(", ")
        }
    );
    if net.classes.is_empty() {
        out += "Classes: none stored\n";
    } else {
        out += &format!(
            "Classes ({}): {}\n",
            net.classes.len(),
            class_list(&net.classes)
        );
    }
    out += &format!("Learnables: {}\n", net.learnables());
    let unsupported = net.unsupported();
    if unsupported.is_empty() {
        out += "Unsupported layers: none\n";
    } else {
        out += &format!("Unsupported layers ({}):\n", unsupported.len());
        for l in unsupported {
            if let LayerKind::Unsupported { reason } = &l.kind {
                out += &format!("  {} ({}): {reason}\n", l.name, l.class);
            }
        }
    }
    out
}

/// The report as JSON (schema in the module documentation).
pub fn json(net: &Network) -> Json {
    let seq = net.sequence_outputs();
    let layers: Vec<Json> = net
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "index": i + 1,
                "name": l.name,
                "class": l.class,
                "class_short": class_short(&l.class),
                "kind": kind_name(&l.kind),
                "description": description(l),
                "inputs": input_names(net, l),
                "output_size": output_json(&l.output),
                "sequence": seq[i],
                "learnables": net.layer_learnables(i),
            })
        })
        .collect();
    let unsupported: Vec<Json> = net
        .unsupported()
        .iter()
        .map(|l| {
            let reason = match &l.kind {
                LayerKind::Unsupported { reason } => reason.clone(),
                _ => String::new(),
            };
            json!({ "name": l.name, "class": l.class, "reason": reason })
        })
        .collect();
    let input = net.input().map(|l| {
        let (size, norm) = match &l.kind {
            LayerKind::ImageInput { size, normalization } => (output_json(&Some(*size)), normalization),
            LayerKind::FeatureInput { size, normalization } | LayerKind::SequenceInput { size, normalization } => {
                (json!([size]), normalization)
            }
            _ => (Json::Null, &Normalization::None),
        };
        json!({ "name": l.name, "kind": kind_name(&l.kind), "size": size, "normalization": normalization_name(norm) })
    });
    json!({
        "variable": net.variable,
        "source": source_name(net.source),
        "trained": net.is_trained(),
        "layers": layers,
        "learnables_total": net.learnables(),
        "classes": net.classes,
        "unsupported": unsupported,
        "input": input,
        "outputs": net.outputs.iter().filter_map(|&o| net.layers.get(o)).map(|l| l.name.clone()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Conv2d, Padding, SourceKind, Tensor};

    fn sample() -> Network {
        let input = Layer {
            name: "in".into(),
            class: "nnet.cnn.layer.ImageInputLayer".into(),
            kind: LayerKind::ImageInput {
                size: Shape::image(28, 28, 1),
                normalization: Normalization::ZeroCenter {
                    mean: Tensor::new(vec![1, 1, 1], vec![0.5]),
                },
            },
            inputs: vec![],
            output: Some(Shape::image(28, 28, 1)),
        };
        let conv = Layer {
            name: "conv_1".into(),
            class: "nnet.cnn.layer.Convolution2DLayer".into(),
            kind: LayerKind::Conv2d(Conv2d {
                filter: [3, 3],
                in_channels: 1,
                filters: 16,
                stride: [1, 1],
                dilation: [1, 1],
                groups: 1,
                padding: PaddingMode::Manual(Padding {
                    top: 1,
                    bottom: 1,
                    left: 1,
                    right: 1,
                }),
                weights: Some(crate::net::Param {
                    value: Tensor::new(vec![16, 1, 3, 3], vec![0.0; 144]),
                    lr_factor: 1.0,
                    l2_factor: 1.0,
                }),
                bias: Some(crate::net::Param {
                    value: Tensor::new(vec![16], vec![0.0; 16]),
                    lr_factor: 1.0,
                    l2_factor: 0.0,
                }),
            }),
            inputs: vec![0],
            output: Some(Shape::image(28, 28, 16)),
        };
        let f = Layer {
            name: "f".into(),
            class: "nnet.cnn.layer.FunctionLayer".into(),
            kind: LayerKind::Unsupported {
                reason: "FunctionLayer: anonymous function @(x).001*x cannot be converted".into(),
            },
            inputs: vec![1],
            output: None,
        };
        Network {
            variable: "net".into(),
            source: SourceKind::SeriesNetwork,
            layers: vec![input, conv, f],
            outputs: vec![2],
            classes: vec![],
        }
    }

    #[test]
    fn text_has_rows_and_summary() {
        let t = text(&sample());
        assert!(
            t.contains("3x3 conv, 16 filters, stride [1 1], padding [1 1 1 1]"),
            "{t}"
        );
        assert!(t.contains("28x28x16"));
        assert!(t.contains("Convolution2DLayer"));
        assert!(t.contains("Learnables: 160"));
        assert!(t.contains(
            "f (nnet.cnn.layer.FunctionLayer): FunctionLayer: anonymous function @(x).001*x"
        ));
        assert!(t.contains("normalization zerocenter"));
    }

    #[test]
    fn json_has_documented_fields() {
        let j = json(&sample());
        assert_eq!(j["learnables_total"], 160);
        assert_eq!(j["layers"][1]["kind"], "Conv2d");
        assert_eq!(j["layers"][1]["output_size"], json!([28, 28, 16]));
        assert_eq!(j["layers"][1]["inputs"], json!(["in"]));
        assert_eq!(j["layers"][2]["output_size"], Json::Null);
        assert_eq!(j["unsupported"][0]["class"], "nnet.cnn.layer.FunctionLayer");
        assert_eq!(j["input"]["normalization"], "zerocenter");
        assert_eq!(j["source"], "SeriesNetwork");
        assert!(j["classes"].as_array().is_some_and(|c| c.is_empty()));
    }
}
