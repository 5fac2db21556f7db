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
//! * `outputs` (array of layer names);
//! * `detector` (`null`, or for a network held by an object detector `{class, model_name,
//!   class_names, anchor_boxes, training_image_size}`: `model_name` a string or `null`,
//!   `anchor_boxes` an array of `[height, width]` rows as the detector stores them,
//!   `training_image_size` `[height, width]` or `null`);
//! * `notes` (array of strings: what import changed or left out, e.g. a user-defined output layer
//!   dropped because it only computes a training loss);
//! * `networks` (added by `matcnn inspect` for a `.mat`: every network found in the file, each
//!   `{path, kind, source, holder, picked}`, see [`networks_json`]).

use serde_json::{Value as Json, json};

use crate::net::{
    Candidate, Detector, Layer, LayerKind, Network, Normalization, Shape, layers, source_name,
};

fn class_short(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

/// The kind of a layer as one word (`Conv2d`, `Relu`, `Unsupported`).
pub fn kind_name(kind: &LayerKind) -> &'static str {
    layers::names(kind).kind
}

/// One line saying what a layer computes, e.g. `3x3 conv, 16 filters, stride [1 1], padding [1 1 1 1]`.
pub fn description(layer: &Layer) -> String {
    layers::describe(&layer.kind)
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
    match layers::io::input_summary(&l.kind) {
        Some(summary) => format!("{} {summary}", l.name),
        None => l.name.clone(),
    }
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
    if let Some(d) = &net.detector {
        out += &detector_text(d);
    }
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
    if !net.notes.is_empty() {
        out += &format!("Notes ({}):\n", net.notes.len());
        for n in &net.notes {
            out += &format!("  {n}\n");
        }
    }
    out
}

fn detector_text(d: &Detector) -> String {
    let mut out = format!("Detector: {}", d.class);
    if let Some(m) = &d.model_name {
        out += &format!(" '{m}'");
    }
    out.push('\n');
    out += &format!(
        "  classes ({}): {}\n",
        d.class_names.len(),
        class_list(&d.class_names)
    );
    if !d.anchor_boxes.is_empty() {
        let rows: Vec<String> = d
            .anchor_boxes
            .iter()
            .map(|[h, w]| format!("[{h} {w}]"))
            .collect();
        out += &format!(
            "  anchor boxes ({}, [height width]): {}\n",
            rows.len(),
            rows.join(" ")
        );
    }
    if let Some([h, w]) = d.training_image_size {
        out += &format!("  training image size: {h}x{w}\n");
    }
    out
}

/// The networks found in a file, as text: one line each, the imported one marked `*`. Empty
/// when there is only one.
pub fn networks_text(found: &[Candidate], picked: &str) -> String {
    if found.len() < 2 {
        return String::new();
    }
    let mut out = format!("Networks in the file ({}):\n", found.len());
    for c in found {
        let mark = if c.path == picked { "*" } else { " " };
        out += &format!("  {mark} {c}\n");
    }
    out += &format!("Showing '{picked}' (choose another with --var PATH).\n\n");
    out
}

/// The networks found in a file, as JSON: `[{path, kind, source, holder, picked}]`, `kind`
/// being e.g. `DAGNetwork in yolov2ObjectDetector`, `source` the container (as in the report's
/// `source`), `holder` the class of the nearest object holding it or `null`, `picked` true for
/// the network shown.
pub fn networks_json(found: &[Candidate], picked: &str) -> Json {
    Json::Array(
        found
            .iter()
            .map(|c| {
                json!({
                    "path": c.path,
                    "kind": c.kind(),
                    "source": source_name(c.source),
                    "holder": c.holder,
                    "picked": c.path == picked,
                })
            })
            .collect(),
    )
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
        json!({ "name": l.name, "kind": kind_name(&l.kind), "size": size, "normalization": norm.name() })
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
        "detector": net.detector.as_ref().map(|d| json!({
            "class": d.class,
            "model_name": d.model_name,
            "class_names": d.class_names,
            "anchor_boxes": d.anchor_boxes,
            "training_image_size": d.training_image_size,
        })),
        "notes": net.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Conv2d, Padding, PaddingMode, SourceKind, Tensor};

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
            detector: None,
            notes: Vec::new(),
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
