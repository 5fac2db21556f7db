//! Deep Learning Toolbox networks: `SeriesNetwork`, `DAGNetwork`, `dlnetwork`,
//! `nnet.cnn.LayerGraph` and bare layer arrays (MAT-FORMAT.md §3).
//!
//! Built-in networks and layers define `saveobj`: their real fields are in the object's `any`
//! struct property. A few built-in layers (ELU in `mw-eegnet`) are stored with normal properties
//! instead, and user-defined layers always are; [`Fields`] looks in `any` first, then in the
//! object's own properties.

use crate::mat::value::{Object, StructArray, Value};

use super::error::{Ctx, NetError};
use super::fields::Fields;
use super::layer::*;
use super::layers::transformer;
use super::layers::{
    Imported, activation, combine, conv, detect, io, norm, pool, recurrent, reshape,
};
use super::shape::Declared;

pub use super::layers::io::class_names;

const LAYER_PACKAGE: &str = "nnet.cnn.layer.";

/// Computer Vision Toolbox layers of 2017-era detectors (`vision.cnn.layer.RPNReshape`, ...).
const VISION_PACKAGE: &str = "vision.cnn.layer.";

fn is_layer_object(o: &Object) -> bool {
    // Built-in layers live in nnet.cnn.layer (and vision.cnn.layer); user-defined ones derive
    // from nnet.layer.Layer and carry its private properties.
    o.class.starts_with(LAYER_PACKAGE)
        || o.class.starts_with(VISION_PACKAGE)
        || o.props
            .iter()
            .any(|(n, _)| n.starts_with("nnet.layer.Layer.") || n.starts_with("nnet.cnn.layer."))
        || (o.prop("Name").is_some() && o.prop("Description").is_some() && o.prop("Type").is_some())
}

/// The network kind of a Deep Learning Toolbox value, if it is one.
pub fn classify(v: &Value) -> Option<SourceKind> {
    let Value::Object(arr) = v else { return None };
    if arr.elements.len() == 1 {
        match arr.elements[0].class.as_str() {
            "SeriesNetwork" => return Some(SourceKind::SeriesNetwork),
            "DAGNetwork" => return Some(SourceKind::DAGNetwork),
            "dlnetwork" => return Some(SourceKind::DlNetwork),
            "nnet.cnn.LayerGraph" => return Some(SourceKind::LayerGraph),
            _ => {}
        }
    }
    let layer_array = arr.class.starts_with(LAYER_PACKAGE)
        && !arr.elements.is_empty()
        && arr.elements.iter().all(|o| is_layer_object(o));
    layer_array.then_some(SourceKind::LayerArray)
}

/// A container's fields: its `any` struct, then its own properties.
fn container_fields<'a>(variable: &str, o: &'a Object) -> Fields<'a> {
    let ctx = Ctx::new(variable, "(container)", &o.class);
    let f = Fields::new(ctx);
    match o
        .prop("any")
        .and_then(|v| v.as_struct())
        .filter(|s| s.len() == 1)
    {
        Some(s) => f.with_struct(s).with_object(o),
        None => f.with_object(o),
    }
}

/// Imports a Deep Learning Toolbox network of kind `kind` held in `v`.
pub fn import(variable: &str, v: &Value, kind: SourceKind) -> Result<Network, NetError> {
    let not_a_network = || NetError::NotANetwork {
        variable: variable.into(),
        class: v.class_name(),
    };
    if kind == SourceKind::LayerArray {
        let (layers, declared) = read_layers(variable, v)?;
        let layers = chain(layers);
        return finish_dropping(variable, kind, layers, declared, None, v);
    }
    let obj = v.as_object().ok_or_else(not_a_network)?;
    let f = container_fields(variable, obj);
    match kind {
        SourceKind::SeriesNetwork => {
            let stored = f.req("Layers")?;
            let (layers, declared) = read_layers(variable, stored)?;
            finish_dropping(variable, kind, chain(layers), declared, None, stored)
        }
        SourceKind::DAGNetwork | SourceKind::LayerGraph => graph(variable, kind, &f, None),
        SourceKind::DlNetwork => {
            let output_names = f
                .get("OutputNames")
                .and_then(|v| v.as_string_list())
                .filter(|v| !v.is_empty());
            // dlnetwork (versions 4 and 6 seen) keeps a LayerGraph; read Layers/Connections
            // directly if a later version stores them itself.
            match f.get("LayerGraph").and_then(|v| v.as_object()) {
                Some(lg) => graph(
                    variable,
                    kind,
                    &container_fields(variable, lg),
                    output_names,
                ),
                None => graph(variable, kind, &f, output_names),
            }
        }
        _ => Err(not_a_network()),
    }
}

/// A series of layers: each takes the previous one's output.
pub(crate) fn chain(mut layers: Vec<Layer>) -> Vec<Layer> {
    for (i, l) in layers.iter_mut().enumerate() {
        l.inputs = if i == 0 || is_input(&l.kind) {
            vec![]
        } else {
            vec![i - 1]
        };
    }
    layers
}

fn is_input(k: &LayerKind) -> bool {
    matches!(
        k,
        LayerKind::ImageInput { .. }
            | LayerKind::FeatureInput { .. }
            | LayerKind::SequenceInput { .. }
    )
}

/// A layer graph: `Layers` plus a `Connections` table of `Source` → `Destination` names, where a
/// destination `layer/inN` feeds input port N. Inputs are ordered by port number, not by table row.
fn graph(
    variable: &str,
    kind: SourceKind,
    f: &Fields,
    output_names: Option<Vec<String>>,
) -> Result<Network, NetError> {
    let stored = f.req("Layers")?;
    let (mut layers, declared) = read_layers(variable, stored)?;
    let conn = f.req("Connections")?;
    let table = conn.as_table().ok_or_else(|| {
        f.err(
            "Connections",
            "a table (Source, Destination)",
            conn.class_name(),
        )
    })?;
    let column = |name: &str| {
        table
            .column(name)
            .and_then(|c| c.as_string_list())
            .ok_or_else(|| {
                f.err(
                    &format!("Connections.{name}"),
                    "a column of layer names",
                    "no such column of text",
                )
            })
    };
    let (sources, dests) = (column("Source")?, column("Destination")?);
    let graph_err = |message: String| NetError::Graph {
        variable: variable.into(),
        container: super::source_name(kind).into(),
        message,
    };
    // Untrained layer arrays can leave names empty; connections always use the assigned names.
    super::assign_default_names(&mut layers);
    let index = |name: &str| -> Result<usize, NetError> {
        layers.iter().position(|l| l.name == name).ok_or_else(|| {
            graph_err(format!(
                "connection names layer '{name}', which is not among the Layers"
            ))
        })
    };
    // (port order key, row, source) per destination.
    let mut ports: Vec<Vec<((usize, usize), usize)>> = vec![Vec::new(); layers.len()];
    for (row, (src, dst)) in sources.iter().zip(&dests).enumerate() {
        let src_name = src.split('/').next().unwrap_or(src);
        let (dst_name, port) = match dst.split_once('/') {
            Some((d, p)) => (d, p),
            None => (dst.as_str(), "in"),
        };
        let s = index(src_name)?;
        let d = index(dst_name)?;
        // in1, in2, ... by number; "in" is port 1; named ports follow in table order.
        let key = match port.strip_prefix("in").map(|n| {
            if n.is_empty() {
                Ok(1)
            } else {
                n.parse::<usize>()
            }
        }) {
            Some(Ok(n)) => (0, n),
            _ => (1, row),
        };
        if ports[d].iter().any(|(k, _)| *k == key) {
            return Err(graph_err(format!("input port '{dst}' is connected twice")));
        }
        ports[d].push((key, s));
    }
    let outputs = match output_names {
        Some(names) => Some(
            names
                .iter()
                .map(|n| index(n.split('/').next().unwrap_or(n)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    for (l, mut p) in layers.iter_mut().zip(ports) {
        p.sort();
        l.inputs = p.into_iter().map(|(_, s)| s).collect();
    }
    pool::resolve_unpooling(variable, super::source_name(kind), &mut layers)?;
    finish_dropping(variable, kind, layers, declared, outputs, stored)
}

/// The base classes' properties MATLAB saves with a user-defined output layer:
/// `nnet.layer.RegressionLayer` has `ResponseNames`, `nnet.layer.ClassificationLayer` has
/// `Classes` (`ClassNames` in older versions), weighted classification layers `ClassWeights`.
const OUTPUT_LAYER_PROPERTIES: [&str; 4] =
    ["ResponseNames", "Classes", "ClassNames", "ClassWeights"];

/// Per stored layer: `Some(class names)` for a user-defined output layer (a class outside
/// MATLAB's packages carrying the properties of `nnet.layer.ClassificationLayer` or
/// `nnet.layer.RegressionLayer`, or their private ones), `None` for any other layer.
fn user_output_layers(stored: &Value) -> Vec<Option<Vec<String>>> {
    let Some(arr) = stored.as_object_array() else {
        return Vec::new();
    };
    arr.elements
        .iter()
        .map(|o| {
            let builtin = o.class.starts_with("nnet.") || o.class.starts_with(VISION_PACKAGE);
            let output = OUTPUT_LAYER_PROPERTIES.iter().any(|p| o.prop(p).is_some())
                || o.props.iter().any(|(n, _)| {
                    n.starts_with("nnet.layer.ClassificationLayer.")
                        || n.starts_with("nnet.layer.RegressionLayer.")
                });
            (!builtin && output).then(|| {
                ["Classes", "ClassNames"]
                    .iter()
                    .find_map(|p| o.prop(p))
                    .map(class_names)
                    .unwrap_or_default()
            })
        })
        .collect()
}

/// [`super::finish`], after dropping the user-defined output layers of `stored` (the `Layers`
/// array `layers` was read from) that only compute a training loss: those with one input and no
/// successor. MATLAB's `predict` ignores output layers; each one dropped gets a note, and its
/// input takes its place among the outputs.
fn finish_dropping(
    variable: &str,
    kind: SourceKind,
    layers: Vec<Layer>,
    declared: Vec<Declared>,
    outputs: Option<Vec<usize>>,
    stored: &Value,
) -> Result<Network, NetError> {
    let user_outputs = user_output_layers(stored);
    let mut consumed = vec![false; layers.len()];
    for l in &layers {
        for &j in &l.inputs {
            if let Some(c) = consumed.get_mut(j) {
                *c = true;
            }
        }
    }
    let drop: Vec<bool> = (0..layers.len())
        .map(|i| {
            matches!(user_outputs.get(i), Some(Some(_)))
                && !consumed[i]
                && layers[i].inputs.len() == 1
        })
        .collect();
    if !drop.contains(&true) {
        return super::finish(variable, kind, layers, declared, outputs);
    }
    let mut notes = Vec::new();
    let mut classes = Vec::new();
    for (i, l) in layers.iter().enumerate().filter(|(i, _)| drop[*i]) {
        let input = &layers[l.inputs[0]].name;
        notes.push(format!(
            "layer '{}' ({}) dropped: a user-defined output layer that only computes a training loss (MATLAB's predict ignores output layers); '{input}' is the output",
            l.name, l.class
        ));
        if let Some(Some(c)) = user_outputs.get(i)
            && classes.is_empty()
        {
            classes = c.clone();
        }
    }
    // Old index → new index of the layers kept.
    let mut new_index = vec![usize::MAX; layers.len()];
    let mut next = 0;
    for (i, d) in drop.iter().enumerate() {
        if !d {
            new_index[i] = next;
            next += 1;
        }
    }
    let outputs = outputs.map(|o| {
        let mut kept: Vec<usize> = Vec::new();
        for i in o {
            let i = if drop.get(i) == Some(&true) {
                layers[i].inputs[0]
            } else {
                i
            };
            if let Some(&n) = new_index.get(i)
                && !kept.contains(&n)
            {
                kept.push(n);
            }
        }
        kept
    });
    let (layers, declared): (Vec<Layer>, Vec<Declared>) = layers
        .into_iter()
        .zip(declared)
        .zip(&drop)
        .filter(|(_, d)| !**d)
        .map(|((mut l, decl), _)| {
            l.inputs = l.inputs.iter().map(|&j| new_index[j]).collect();
            (l, decl)
        })
        .unzip();
    let mut net = super::finish(variable, kind, layers, declared, outputs)?;
    if net.classes.is_empty() {
        net.classes = classes;
    }
    net.notes.extend(notes);
    Ok(net)
}

/// Reads a `Layers` object array.
pub(crate) fn read_layers(
    variable: &str,
    v: &Value,
) -> Result<(Vec<Layer>, Vec<Declared>), NetError> {
    let arr = v.as_object_array().ok_or_else(|| {
        Ctx::new(variable, "(container)", "").property(
            "Layers",
            "an array of layer objects",
            v.class_name(),
        )
    })?;
    let mut layers = Vec::with_capacity(arr.elements.len());
    let mut declared = Vec::with_capacity(arr.elements.len());
    for o in &arr.elements {
        let (l, d) = read_layer(variable, o)?;
        layers.push(l);
        declared.push(d);
    }
    Ok((layers, declared))
}

/// One layer object → a [`Layer`] (inputs not yet set) and its declared sizes.
pub fn read_layer(variable: &str, o: &Object) -> Result<(Layer, Declared), NetError> {
    let any: Option<&StructArray> = o
        .prop("any")
        .and_then(|v| v.as_struct())
        .filter(|s| s.len() == 1);
    // Layers that wrap an internal one (vision.cnn.layer.*, 2017) keep the name there.
    let private = o.prop("PrivateLayer").and_then(|v| v.as_object());
    let name = [
        any.and_then(|s| s.field("Name")),
        o.prop("Name"),
        private.and_then(|p| p.prop("Name")),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_string().filter(|s| !s.is_empty()))
    .unwrap_or_default();
    let ctx = Ctx::new(variable, &name, &o.class);
    let mut f = Fields::new(ctx);
    if let Some(s) = any {
        f = f.with_struct(s);
    }
    let f = f.with_object(o);
    let mut declared = Declared::default();
    let kind = match o.class.strip_prefix(LAYER_PACKAGE) {
        Some(short) => builtin(short, &f, &mut declared)?,
        None if o.class.starts_with(VISION_PACKAGE) => LayerKind::Unsupported {
            reason: vision_reason(&o.class),
        },
        None => LayerKind::Unsupported {
            reason: format!(
                "user-defined layer class '{}' (no code is stored in the .mat)",
                o.class
            ),
        },
    };
    Ok((
        Layer {
            name,
            class: o.class.clone(),
            kind,
            inputs: vec![],
            output: None,
        },
        declared,
    ))
}

/// Why a Computer Vision Toolbox layer of a 2017-era detector is unsupported.
fn vision_reason(class: &str) -> String {
    let what = match class.strip_prefix(VISION_PACKAGE).unwrap_or(class) {
        "ROIMaxPooling2DLayer" => "region-of-interest max pooling of Faster R-CNN",
        "RPNReshape" => "region proposal network reshape of Faster R-CNN",
        "RPNClassificationLayer" => "region proposal classification output of Faster R-CNN",
        "BoundingBoxRegressionOutputLayer" => "box regression output of Faster R-CNN",
        _ => "Computer Vision Toolbox layer",
    };
    format!("{class} ({what}) is not supported by matcnn")
}

/// Text of the function a FunctionLayer applies, as MATLAB stored it.
fn function_text(v: &Value) -> Option<(String, String)> {
    match v {
        Value::Struct(s) if s.len() == 1 => {
            if let Some(text) = s.field("function").and_then(|v| v.as_string()) {
                let kind = s
                    .field("type")
                    .and_then(|v| v.as_string())
                    .unwrap_or_default();
                // Anonymous functions are stored as "sf%0@(x)...": keep the source from '@'.
                let text = match (text.starts_with("sf%"), text.find('@')) {
                    (true, Some(i)) => text[i..].to_string(),
                    _ => text,
                };
                return Some((kind, text));
            }
            s.elements[0].iter().find_map(function_text)
        }
        Value::Cell(c) => c.data.iter().find_map(function_text),
        Value::FunctionHandle(inner) => function_text(inner),
        _ => None,
    }
}

fn function_layer_reason(f: &Fields) -> String {
    let found = f.get("PredictFcn").and_then(function_text);
    match found {
        Some((kind, text)) if kind == "anonymous" || text.starts_with('@') => {
            format!("FunctionLayer: anonymous function {text} cannot be converted")
        }
        Some((_, text)) => format!(
            "FunctionLayer: function '{text}' cannot be converted (no code is stored in the .mat)"
        ),
        None => match f.string("Description") {
            Some(d) if !d.is_empty() => format!("FunctionLayer: function {d} cannot be converted"),
            _ => "FunctionLayer: its function cannot be converted".into(),
        },
    }
}

/// The families' importers of built-in layer classes, each answering for its own classes.
const FAMILIES: [fn(&str, &Fields, &mut Declared) -> Imported; 10] = [
    io::from_dlt,
    conv::from_dlt,
    norm::from_dlt,
    activation::from_dlt,
    pool::from_dlt,
    combine::from_dlt,
    reshape::from_dlt,
    recurrent::from_dlt,
    transformer::from_dlt,
    detect::from_dlt,
];

/// Maps a built-in layer (class `nnet.cnn.layer.<short>`).
fn builtin(short: &str, f: &Fields, declared: &mut Declared) -> Result<LayerKind, NetError> {
    for import in FAMILIES {
        if let Some(kind) = import(short, f, declared)? {
            return Ok(kind);
        }
    }
    let reason = match short {
        "FunctionLayer" => function_layer_reason(f),
        other => format!("built-in layer class {LAYER_PACKAGE}{other} is not supported by matcnn"),
    };
    Ok(LayerKind::Unsupported { reason })
}
