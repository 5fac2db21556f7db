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
use super::layout;
use super::shape::Declared;

const LAYER_PACKAGE: &str = "nnet.cnn.layer.";

fn is_layer_object(o: &Object) -> bool {
    // Built-in layers live in nnet.cnn.layer; user-defined ones derive from nnet.layer.Layer and
    // carry its private properties.
    o.class.starts_with(LAYER_PACKAGE)
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
        return super::finish(variable, kind, layers, declared, None);
    }
    let obj = v.as_object().ok_or_else(not_a_network)?;
    let f = container_fields(variable, obj);
    match kind {
        SourceKind::SeriesNetwork => {
            let (layers, declared) = read_layers(variable, f.req("Layers")?)?;
            super::finish(variable, kind, chain(layers), declared, None)
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
fn chain(mut layers: Vec<Layer>) -> Vec<Layer> {
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
    let (mut layers, declared) = read_layers(variable, f.req("Layers")?)?;
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
    super::finish(variable, kind, layers, declared, outputs)
}

/// Reads a `Layers` object array.
fn read_layers(variable: &str, v: &Value) -> Result<(Vec<Layer>, Vec<Declared>), NetError> {
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
    let name = any
        .and_then(|s| s.field("Name"))
        .or_else(|| o.prop("Name"))
        .and_then(|v| v.as_string())
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

/// Class names: a categorical (its categories, in order), a cellstr or a string array.
pub fn class_names(v: &Value) -> Vec<String> {
    match v {
        Value::Categorical(c) => c.categories.clone(),
        other if other.is_empty() => vec![],
        // 'auto' in untrained output layers: the classes come from the training data.
        other if other.as_string().as_deref() == Some("auto") => vec![],
        other => other.as_string_list().unwrap_or_default(),
    }
}

/// Input normalization of an input layer whose data is `[H, W, C]`, or the reason it cannot be
/// converted. Stored as a struct `{Type, AverageImage, ...}` (versions seen), `[]` for none, or as
/// text with the statistics in the layer's own `Mean`/`StandardDeviation`/`Min`/`Max`.
fn normalization(f: &Fields, hwc: [usize; 3]) -> Result<Result<Normalization, String>, NetError> {
    let v = f.get("Normalization");
    let (ty, stats): (String, Option<&StructArray>) = match v {
        None => return Ok(Ok(Normalization::None)),
        Some(v) if v.is_empty() => return Ok(Ok(Normalization::None)),
        Some(Value::Struct(s)) if s.len() == 1 => (
            s.field("Type")
                .and_then(|t| t.as_string())
                .unwrap_or_default(),
            Some(s),
        ),
        Some(Value::Char(_)) | Some(Value::String(_)) => {
            (v.and_then(|v| v.as_string()).unwrap_or_default(), None)
        }
        Some(Value::FunctionHandle(_)) => {
            return Ok(Err(
                "custom normalization function cannot be converted".into()
            ));
        }
        Some(other) => {
            return Err(f.err(
                "Normalization",
                "a struct, text or []",
                super::fields::describe(other),
            ));
        }
    };
    let stat = |names: &[&str]| -> Result<Tensor, NetError> {
        for name in names {
            let v = stats.and_then(|s| s.field(name)).or_else(|| f.get(name));
            let Some(v) = v else { continue };
            if v.is_empty() {
                return Ok(Tensor::new(vec![0], vec![]));
            }
            let prop = format!("Normalization.{name}");
            let a = v
                .as_numeric()
                .ok_or_else(|| f.err(&prop, "a numeric array", super::fields::describe(v)))?;
            return layout::input_statistic(a, hwc).map_err(|e| f.layout_err(&prop, e));
        }
        // Not stored: an untrained input layer, statistics computed when training starts.
        Ok(Tensor::new(vec![0], vec![]))
    };
    Ok(Ok(match ty.to_ascii_lowercase().as_str() {
        "" | "none" => Normalization::None,
        "zerocenter" => Normalization::ZeroCenter {
            mean: stat(&["AverageImage", "Mean"])?,
        },
        "zscore" => Normalization::ZScore {
            mean: stat(&["AverageImage", "Mean"])?,
            std: stat(&["StandardDeviation", "Std"])?,
        },
        "rescale-symmetric" => Normalization::RescaleSymmetric {
            min: stat(&["Min"])?,
            max: stat(&["Max"])?,
        },
        "rescale-zero-one" => Normalization::RescaleZeroOne {
            min: stat(&["Min"])?,
            max: stat(&["Max"])?,
        },
        other => {
            return Ok(Err(format!(
                "input normalization '{other}' cannot be converted"
            )));
        }
    }))
}

/// Padding from `<mode>` ('same'/'manual') and `<size>`; 'same' records the stored pads to check.
fn padding(
    f: &Fields,
    mode: &str,
    size: &str,
    declared: &mut Declared,
) -> Result<PaddingMode, NetError> {
    let pads = f.opt_padding(size)?;
    Ok(match f.string(mode).as_deref() {
        Some("same") => {
            declared.same_padding = pads;
            PaddingMode::Same
        }
        _ => PaddingMode::Manual(pads.unwrap_or_default()),
    })
}

/// A padding value other than zero (`PaddingValue` 'replicate', 'symmetric-*', a nonzero number).
fn nonzero_padding_value(f: &Fields) -> Option<String> {
    match f.get("PaddingValue") {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => match v.as_f64() {
            Some(0.0) => None,
            Some(x) => Some(format!("{x}")),
            None => v.as_string().filter(|s| s != "zeros"),
        },
    }
}

fn recurrent(f: &Fields, gates: usize, bidirectional: bool) -> Result<Recurrent, NetError> {
    let hidden = f.usize("NumHiddenUnits")?;
    let dirs = if bidirectional { 2 } else { 1 };
    let rows = gates * hidden * dirs;
    let input_weights = f.param("InputWeights")?;
    let input_size = match (f.opt_usize("InputSize")?, &input_weights) {
        (Some(n), _) => n,
        (None, Some(w)) => w.value.dims.get(1).copied().unwrap_or(0),
        (None, None) => 0,
    };
    let return_sequence = match f.string("OutputMode") {
        Some(m) => m == "sequence",
        None => f.flag("ReturnSequence").unwrap_or(true),
    };
    let input_weights = match input_weights {
        Some(p) => Some(
            p.with(
                layout::matrix(p.value, rows, input_size)
                    .map_err(|e| f.layout_err("InputWeights", e))?,
            ),
        ),
        None => None,
    };
    let recurrent_weights = match f.param("RecurrentWeights")? {
        Some(p) => Some(
            p.with(
                layout::matrix(p.value, rows, hidden)
                    .map_err(|e| f.layout_err("RecurrentWeights", e))?,
            ),
        ),
        None => None,
    };
    let bias = match f.param("Bias")? {
        // GRU with ResetGateMode 'recurrent-bias-after-multiplication' stores two bias blocks.
        Some(p) if p.value.numel() == rows || p.value.numel() == 2 * rows => Some(
            p.with(layout::vector(p.value, p.value.numel()).map_err(|e| f.layout_err("Bias", e))?),
        ),
        Some(p) => {
            return Err(f.err(
                "Bias",
                format!("{rows} elements"),
                format!(
                    "{} {}",
                    p.value.class_name(),
                    layout::dims_str(&p.value.dims)
                ),
            ));
        }
        None => None,
    };
    // GRU: MATLAB's default (and the behaviour of files without the property) is
    // 'after-multiplication'; a 6H bias can only be 'recurrent-bias-after-multiplication'.
    let reset_gate_mode = if gates == 3 {
        match f.string("ResetGateMode") {
            Some(m) => m,
            None if bias.as_ref().is_some_and(|b| b.value.numel() == 2 * rows) => {
                "recurrent-bias-after-multiplication".into()
            }
            None => "after-multiplication".into(),
        }
    } else {
        String::new()
    };
    if let Some(b) = &bias {
        let two = reset_gate_mode == "recurrent-bias-after-multiplication";
        let want = if two { 2 * rows } else { rows };
        if b.value.numel() != want {
            return Err(f.err(
                "Bias",
                format!("{want} elements (ResetGateMode '{reset_gate_mode}')"),
                format!("{} elements", b.value.numel()),
            ));
        }
    }
    let state = |name: &str| -> Result<Option<Tensor>, NetError> {
        match f.param(name)? {
            None => Ok(None),
            Some(p) => layout::vector(p.value, hidden * dirs)
                .map(Some)
                .map_err(|e| f.layout_err(name, e)),
        }
    };
    let hidden_state = state("HiddenState")?;
    let cell_state = if gates == 4 {
        state("CellState")?
    } else {
        None
    };
    Ok(Recurrent {
        hidden,
        input_size,
        return_sequence,
        bidirectional,
        reset_gate_mode,
        hidden_state,
        cell_state,
        state_activation: f
            .string("StateActivationFunction")
            .unwrap_or_else(|| "tanh".into()),
        gate_activation: f
            .string("GateActivationFunction")
            .unwrap_or_else(|| "sigmoid".into()),
        input_weights,
        recurrent_weights,
        bias,
    })
}

/// Maps a built-in layer (class `nnet.cnn.layer.<short>`).
fn builtin(short: &str, f: &Fields, declared: &mut Declared) -> Result<LayerKind, NetError> {
    use LayerKind as K;
    let unsupported = |reason: String| Ok(K::Unsupported { reason });
    Ok(match short {
        "ImageInputLayer" => {
            let size = f.opt_counts("InputSize")?.unwrap_or_default();
            let [h, w, c] = match size.as_slice() {
                [h, w] => [*h, *w, 1],
                [h, w, c] => [*h, *w, *c],
                _ => {
                    return Err(f.err(
                        "InputSize",
                        "[height width channels]",
                        f.get("InputSize")
                            .map(super::fields::describe)
                            .unwrap_or_default(),
                    ));
                }
            };
            match normalization(f, [h, w, c])? {
                Ok(normalization) => K::ImageInput {
                    size: Shape::image(h, w, c),
                    normalization,
                },
                Err(reason) => return unsupported(reason),
            }
        }
        "FeatureInputLayer" | "SequenceInputLayer" => {
            let size = f.opt_counts("InputSize")?.unwrap_or_default();
            let n = match size.as_slice() {
                [n] => *n,
                // Image sequences ([h w c]) are not described by the network types.
                _ => {
                    return unsupported(format!(
                        "{short} with input size {size:?} (image sequences) is not supported"
                    ));
                }
            };
            match normalization(f, [1, 1, n])? {
                Ok(normalization) if short == "FeatureInputLayer" => K::FeatureInput {
                    size: n,
                    normalization,
                },
                Ok(normalization) => K::SequenceInput {
                    size: n,
                    normalization,
                },
                Err(reason) => return unsupported(reason),
            }
        }
        "Convolution2DLayer" | "GroupedConvolution2DLayer" => {
            if let Some(v) = nonzero_padding_value(f) {
                return unsupported(format!("PaddingValue {v} (only zero padding is supported)"));
            }
            let filter = f.pair("FilterSize")?;
            let stride = f.pair_or("Stride", [1, 1])?;
            let dilation = f.pair_or("DilationFactor", [1, 1])?;
            let padding = padding(f, "PaddingMode", "PaddingSize", declared)?;
            let weights_ref = f.param("Weights")?;
            let bias_ref = f.param("Bias")?;
            let [kh, kw] = filter;
            let (groups, in_channels, filters, weights, bias);
            if short == "Convolution2DLayer" {
                filters = f.usize("NumFilters")?;
                let stored_cin = weights_ref
                    .as_ref()
                    .map(|w| w.value.dims.get(2).copied().unwrap_or(1));
                in_channels = f.opt_usize("NumChannels")?.or(stored_cin).unwrap_or(0);
                groups = 1;
                weights = match &weights_ref {
                    Some(p) => Some(
                        p.with(
                            layout::conv2d_weights(p.value, kh, kw, in_channels, filters)
                                .map_err(|e| f.layout_err("Weights", e))?,
                        ),
                    ),
                    None => None,
                };
            } else {
                // NumGroups is a number, or 'channel-wise' (one group per channel, resolved later).
                let g = f.opt_usize("NumGroups")?;
                let fpg = f.usize("NumFiltersPerGroup")?;
                let stored = weights_ref.as_ref().map(|w| {
                    let d = &w.value.dims;
                    (
                        d.get(2).copied().unwrap_or(1),
                        d.get(4).copied().unwrap_or(1),
                    )
                });
                let cpg = f
                    .opt_usize("NumChannelsPerGroup")?
                    .or(stored.map(|s| s.0))
                    .unwrap_or(0);
                groups = g.or(stored.map(|s| s.1)).unwrap_or(0);
                filters = fpg * groups;
                in_channels = cpg * groups;
                weights = match &weights_ref {
                    Some(p) => Some(
                        p.with(
                            layout::grouped_conv2d_weights(p.value, kh, kw, cpg, fpg, groups)
                                .map_err(|e| f.layout_err("Weights", e))?,
                        ),
                    ),
                    None => None,
                };
                if groups == 0 {
                    return unsupported(
                        "channel-wise grouped convolution without trained weights".into(),
                    );
                }
            }
            bias = match &bias_ref {
                Some(p) => Some(
                    p.with(layout::vector(p.value, filters).map_err(|e| f.layout_err("Bias", e))?),
                ),
                None => None,
            };
            K::Conv2d(Conv2d {
                filter,
                in_channels,
                filters,
                stride,
                dilation,
                groups,
                padding,
                weights,
                bias,
            })
        }
        "TransposedConvolution2DLayer" => {
            let filter = f.pair("FilterSize")?;
            let filters = f.usize("NumFilters")?;
            let weights_ref = f.param("Weights")?;
            let stored_cin = weights_ref
                .as_ref()
                .map(|w| w.value.dims.get(3).copied().unwrap_or(1));
            let in_channels = f.opt_usize("NumChannels")?.or(stored_cin).unwrap_or(0);
            let stride = f.pair_or("Stride", [1, 1])?;
            let cropping = padding(f, "CroppingMode", "CroppingSize", declared)?;
            let weights = match &weights_ref {
                Some(p) => Some(
                    p.with(
                        layout::transposed_conv2d_weights(
                            p.value,
                            filter[0],
                            filter[1],
                            filters,
                            in_channels,
                        )
                        .map_err(|e| f.layout_err("Weights", e))?,
                    ),
                ),
                None => None,
            };
            let bias = match f.param("Bias")? {
                Some(p) => Some(
                    p.with(layout::vector(p.value, filters).map_err(|e| f.layout_err("Bias", e))?),
                ),
                None => None,
            };
            K::ConvTranspose2d(ConvTranspose2d {
                filter,
                in_channels,
                filters,
                stride,
                groups: 1,
                cropping,
                weights,
                bias,
            })
        }
        "FullyConnectedLayer" => {
            let out = f.opt_counts("OutputSize")?.unwrap_or_default();
            let outputs = match out.as_slice() {
                [k] => *k,
                [1, 1, k] => *k,
                _ => {
                    return Err(f.err(
                        "OutputSize",
                        "K or [1 1 K]",
                        f.get("OutputSize")
                            .map(super::fields::describe)
                            .unwrap_or_default(),
                    ));
                }
            };
            declared.input_size = f.opt_counts("InputSize")?;
            let weights = match f.param("Weights")? {
                Some(p) => {
                    let fc = layout::fc_weights(p.value, outputs)
                        .map_err(|e| f.layout_err("Weights", e))?;
                    declared.fc_input_hwc = fc.input_hwc;
                    Some(p.with(fc.weights))
                }
                None => None,
            };
            let bias = match f.param("Bias")? {
                Some(p) => Some(
                    p.with(layout::vector(p.value, outputs).map_err(|e| f.layout_err("Bias", e))?),
                ),
                None => None,
            };
            K::FullyConnected(FullyConnected {
                outputs,
                weights,
                bias,
            })
        }
        "BatchNormalizationLayer" => {
            let mean_a = f.numeric("TrainedMean")?;
            let channels = f
                .opt_usize("NumChannels")?
                .or(mean_a.map(|a| a.numel()))
                .unwrap_or(0);
            let vec_of = |name: &str,
                          a: Option<&crate::mat::value::NumericArray>|
             -> Result<Option<Tensor>, NetError> {
                a.map(|a| layout::vector(a, channels).map_err(|e| f.layout_err(name, e)))
                    .transpose()
            };
            let param = |name: &str| -> Result<Option<Param>, NetError> {
                match f.param(name)? {
                    Some(p) => Ok(Some(p.with(
                        layout::vector(p.value, channels).map_err(|e| f.layout_err(name, e))?,
                    ))),
                    None => Ok(None),
                }
            };
            K::BatchNorm(BatchNorm {
                channels,
                epsilon: f.f64_or("Epsilon", 1e-5)?,
                mean: vec_of("TrainedMean", mean_a)?,
                variance: vec_of("TrainedVariance", f.numeric("TrainedVariance")?)?,
                scale: param("Scale")?,
                offset: param("Offset")?,
                mean_decay: f.f64_or("MeanDecay", 0.1)?,
                variance_decay: f.f64_or("VarianceDecay", 0.1)?,
            })
        }
        "LayerNormalizationLayer" | "GroupNormalizationLayer" | "InstanceNormalizationLayer" => {
            let scale_ref = f.param("Scale")?;
            let channels = f
                .opt_usize("NumChannels")?
                .or(scale_ref.as_ref().map(|p| p.value.numel()))
                .unwrap_or(0);
            let groups = match short {
                "LayerNormalizationLayer" => 1,
                "InstanceNormalizationLayer" => 0,
                _ => match f.string("NumGroups").as_deref() {
                    Some("all-channels") => 1,
                    Some("channel-wise") => 0,
                    _ => f.opt_usize("NumGroups")?.unwrap_or(0),
                },
            };
            let scale = match scale_ref {
                Some(p) => Some(p.with(
                    layout::vector(p.value, channels).map_err(|e| f.layout_err("Scale", e))?,
                )),
                None => None,
            };
            let offset = match f.param("Offset")? {
                Some(p) => Some(p.with(
                    layout::vector(p.value, channels).map_err(|e| f.layout_err("Offset", e))?,
                )),
                None => None,
            };
            K::GroupNorm(GroupNorm {
                groups,
                channels,
                epsilon: f.f64_or("Epsilon", 1e-5)?,
                scale,
                offset,
            })
        }
        "CrossChannelNormalizationLayer" => K::Lrn(Lrn {
            window: f.usize("WindowChannelSize")?,
            alpha: f.f64_or("Alpha", 1e-4)?,
            beta: f.f64_or("Beta", 0.75)?,
            k: f.f64_or("K", 2.0)?,
        }),
        "ReLULayer" => K::Activation(Activation::Relu),
        "LeakyReLULayer" => K::Activation(Activation::LeakyRelu {
            scale: f.f64_or("Scale", 0.01)?,
        }),
        "ClippedReLULayer" => K::Activation(Activation::ClippedRelu {
            ceiling: f.f64("Ceiling")?,
        }),
        "ELULayer" => K::Activation(Activation::Elu {
            alpha: f.f64_or("Alpha", 1.0)?,
        }),
        "TanhLayer" => K::Activation(Activation::Tanh),
        "SigmoidLayer" => K::Activation(Activation::Sigmoid),
        "SwishLayer" => K::Activation(Activation::Swish),
        "GELULayer" => K::Activation(Activation::Gelu {
            tanh: f.string("Approximation").as_deref() == Some("tanh"),
        }),
        "MaxPooling2DLayer" | "AveragePooling2DLayer" => {
            let size = f.pair("PoolSize")?;
            // MATLAB's default pooling stride is [1 1], not the pool size.
            let stride = f.pair_or("Stride", [1, 1])?;
            let padding = padding(f, "PaddingMode", "PaddingSize", declared)?;
            // PaddingValue 0 (and older layers without it): padded zeros count in the mean.
            let count_include_pad = f.string("PaddingValue").as_deref() != Some("mean");
            let p = Pool2d {
                size,
                stride,
                padding,
                count_include_pad,
            };
            if short == "MaxPooling2DLayer" {
                K::MaxPool2d(p)
            } else {
                K::AvgPool2d(p)
            }
        }
        "GlobalAveragePooling2DLayer" => K::GlobalAvgPool,
        "GlobalMaxPooling2DLayer" => K::GlobalMaxPool,
        "AdditionLayer" => K::Addition {
            inputs: f.usize("NumInputs")?,
        },
        "MultiplicationLayer" => K::Multiplication {
            inputs: f.usize("NumInputs")?,
        },
        "DepthConcatenationLayer" => K::DepthConcat {
            inputs: f.usize("NumInputs")?,
        },
        "ConcatenationLayer" => {
            let dim = f.usize("Dim")?;
            if !(1..=3).contains(&dim) {
                return unsupported(format!("concatenation along dimension {dim}"));
            }
            K::Concat {
                dim,
                inputs: f.usize("NumInputs")?,
            }
        }
        "DropoutLayer" => K::Dropout {
            probability: f.f64_or("Probability", 0.5)?,
        },
        "FlattenLayer" => K::Flatten,
        "Resize2DLayer" => {
            if f.flag("EnableReferenceInput") == Some(true) {
                return unsupported("Resize2DLayer with a reference input".into());
            }
            let scale = match f
                .get("Scale")
                .and_then(|v| v.to_f64_vec())
                .unwrap_or_default()
                .as_slice()
            {
                [s] => Some([*s, *s]),
                [a, b] => Some([*a, *b]),
                _ => None,
            };
            K::Resize2d {
                scale,
                output_size: f.opt_pair("OutputSize")?,
                method: f.string("Method").unwrap_or_else(|| "nearest".into()),
                transform: f
                    .string("GeometricTransformMode")
                    .unwrap_or_else(|| "half-pixel".into()),
            }
        }
        "SoftmaxLayer" => K::Softmax,
        "ClassificationOutputLayer" | "PixelClassificationLayer" => {
            let classes = ["Categories", "Classes", "ClassNames"]
                .iter()
                .find_map(|n| f.get(n))
                .map(class_names)
                .unwrap_or_default();
            K::ClassificationOutput { classes }
        }
        "RegressionOutputLayer" => K::RegressionOutput,
        "LSTMLayer" => K::Lstm(recurrent(f, 4, false)?),
        "BiLSTMLayer" => K::Lstm(recurrent(f, 4, true)?),
        "GRULayer" => K::Gru(recurrent(f, 3, false)?),
        "FunctionLayer" => return unsupported(function_layer_reason(f)),
        other => {
            return unsupported(format!(
                "built-in layer class {LAYER_PACKAGE}{other} is not supported by matcnn"
            ));
        }
    })
}
