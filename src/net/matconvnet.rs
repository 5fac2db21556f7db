//! MatConvNet networks (MAT-FORMAT.md §4): plain structs, no objects.
//!
//! * SimpleNN: `net.layers` is a cell of layer structs (`type`, `weights`, `stride`, `pad`, ...),
//!   applied in order.
//! * DagNN (`net.saveobj()`): `vars`, `params` and `layers` struct arrays; the graph is implied by
//!   each layer's `inputs`/`outputs` variable names, and parameters are looked up by name.
//!
//! Neither stores an input layer: one is made (named after the input variable, `input` for
//! SimpleNN) from `meta.normalization` (`imageSize`, `averageImage`) when present, otherwise with
//! an unknown ("any", 0) height and width and the channels of the first convolution.
//! Loss layers become output layers that keep only their prediction input (labels are not network
//! inputs at inference).

use std::collections::HashMap;

use crate::mat::value::{NumericArray, StructArray, Value};

use super::error::{Ctx, NetError};
use super::fields::{Fields, ParamRef};
use super::layer::*;
use super::layers::{Imported, activation, combine, conv, io, norm, pool, reshape};
use super::layout;
use super::shape::Declared;

/// The MatConvNet network kind of a struct, if it is one.
pub fn classify(v: &Value) -> Option<SourceKind> {
    let s = v.as_struct().filter(|s| s.len() == 1)?;
    match s.field("layers")? {
        Value::Cell(c)
            if !c.data.is_empty()
                && c.data
                    .iter()
                    .all(|l| l.as_struct().is_some_and(|l| l.field("type").is_some())) =>
        {
            Some(SourceKind::MatConvNetSimpleNN)
        }
        Value::Struct(l)
            if ["name", "type", "inputs", "outputs"]
                .iter()
                .all(|f| l.fields.iter().any(|x| x == f))
                && s.field("params").is_some()
                && s.field("vars").is_some() =>
        {
            Some(SourceKind::MatConvNetDagNN)
        }
        _ => None,
    }
}

/// Imports a MatConvNet network held in `v`.
pub fn import(variable: &str, v: &Value, kind: SourceKind) -> Result<Network, NetError> {
    let not_a_network = || NetError::NotANetwork {
        variable: variable.into(),
        class: v.class_name(),
    };
    let s = v
        .as_struct()
        .filter(|s| s.len() == 1)
        .ok_or_else(not_a_network)?;
    match kind {
        SourceKind::MatConvNetSimpleNN => simple_nn(variable, s),
        SourceKind::MatConvNetDagNN => dag_nn(variable, s),
        _ => Err(not_a_network()),
    }
}

/// What `meta` says about the input: `[H, W, C]` (0 = unknown) and the average image.
struct Meta<'a> {
    image_size: Option<Vec<usize>>,
    average_image: Option<&'a NumericArray>,
    classes: Vec<String>,
}

fn meta(s: &StructArray) -> Meta<'_> {
    let m = s
        .field("meta")
        .and_then(|m| m.as_struct())
        .filter(|m| m.len() == 1);
    let norm = m
        .and_then(|m| m.field("normalization"))
        .and_then(|n| n.as_struct())
        .filter(|n| n.len() == 1);
    let image_size = norm
        .and_then(|n| n.field("imageSize"))
        .and_then(|v| v.to_f64_vec())
        .filter(|v| !v.is_empty())
        .map(|v| v.iter().map(|&x| x.max(0.0) as usize).collect());
    let average_image = norm
        .and_then(|n| n.field("averageImage"))
        .and_then(|v| v.as_numeric())
        .filter(|a| !a.is_empty());
    let classes = m
        .and_then(|m| m.field("classes"))
        .and_then(|c| c.as_struct())
        .filter(|c| c.len() == 1)
        .and_then(|c| c.field("description").or_else(|| c.field("name")))
        .and_then(|d| d.as_string_list())
        .unwrap_or_default();
    Meta {
        image_size,
        average_image,
        classes,
    }
}

/// The synthesized input layer for input variable `name` with `channels` (when the meta data does
/// not say).
fn input_layer(
    variable: &str,
    name: &str,
    meta: &Meta,
    channels: usize,
) -> Result<Layer, NetError> {
    let (h, w, c) = match meta.image_size.as_deref() {
        Some([h, w]) => (*h, *w, channels.max(1)),
        Some([h, w, c, ..]) => (*h, *w, *c),
        _ => (0, 0, channels),
    };
    let normalization = match meta.average_image {
        None => Normalization::None,
        Some(a) => {
            let ctx = Ctx::new(variable, name, "MatConvNet input");
            // Besides [H,W,C], [1,1,C] and scalars, MatConvNet models store per-channel means as [C,1].
            let mean = if layout::dims_match(&a.dims, &[c, 1]) && c > 1 {
                Tensor::new(vec![c, 1, 1], a.real.to_f32_vec())
            } else {
                layout::input_statistic(a, [h, w, c]).map_err(|e| {
                    ctx.property("meta.normalization.averageImage", e.expected, e.found)
                })?
            };
            Normalization::ZeroCenter { mean }
        }
    };
    Ok(Layer {
        name: name.into(),
        class: "MatConvNet input".into(),
        kind: LayerKind::ImageInput {
            size: Shape::image(h, w, c),
            normalization,
        },
        inputs: vec![],
        output: None,
    })
}

/// A parameter from a SimpleNN `weights` cell or a DagNN `params` entry.
#[derive(Clone, Copy)]
pub(in crate::net) struct Stored<'a> {
    pub value: &'a NumericArray,
    lr: f32,
    wd: f32,
}

impl Stored<'_> {
    pub(in crate::net) fn param(&self, t: Tensor) -> Param {
        ParamRef {
            value: self.value,
            lr_factor: self.lr,
            l2_factor: self.wd,
        }
        .with(t)
    }
}

fn stored_array<'a>(
    f: &Fields,
    what: &str,
    v: &'a Value,
) -> Result<Option<&'a NumericArray>, NetError> {
    match v {
        v if v.is_empty() => Ok(None),
        Value::Numeric(a) => Ok(Some(a)),
        other => Err(f.err(what, "a numeric array", super::fields::describe(other))),
    }
}

/// The per-type parameters of one MatConvNet layer, in MatConvNet's order.
pub(in crate::net) type Params<'a> = Vec<Option<Stored<'a>>>;

/// Parameter `i` (0-based), when stored.
pub(in crate::net) fn get<'a, 'b>(params: &'b Params<'a>, i: usize) -> Option<&'b Stored<'a>> {
    params.get(i).and_then(|p| p.as_ref())
}

/// The families' importers of MatConvNet layer types, each answering for its own types.
type Import = fn(&str, &Fields, &Params, &mut Declared) -> Imported;
const FAMILIES: [Import; 6] = [
    conv::from_matconvnet,
    norm::from_matconvnet,
    activation::from_matconvnet,
    pool::from_matconvnet,
    io::from_matconvnet,
    reshape::from_matconvnet,
];

/// Maps one layer. `f` reads the layer's options (SimpleNN: the layer struct; DagNN: `block`,
/// then the layer struct). Types are SimpleNN names or DagNN block classes without `dagnn.`.
fn layer_kind(
    ty: &str,
    f: &Fields,
    params: &Params,
    declared: &mut Declared,
) -> Result<LayerKind, NetError> {
    for import in FAMILIES {
        if let Some(kind) = import(ty, f, params, declared)? {
            return Ok(kind);
        }
    }
    Ok(LayerKind::Unsupported {
        reason: format!("MatConvNet layer type '{ty}' is not supported by matcnn"),
    })
}

/// Channels the network input must have for a first layer `kind` (0 when it does not say).
fn input_channels(kind: &LayerKind, declared: &Declared) -> usize {
    match kind {
        LayerKind::Conv2d(_) => declared.channels_per_group.unwrap_or(0),
        LayerKind::ConvTranspose2d(c) => c.in_channels,
        LayerKind::BatchNorm(b) => b.channels,
        _ => 0,
    }
}

fn simple_nn(variable: &str, s: &StructArray) -> Result<Network, NetError> {
    let meta = meta(s);
    let cell =
        s.field("layers")
            .and_then(|l| l.as_cell())
            .ok_or_else(|| NetError::NotANetwork {
                variable: variable.into(),
                class: "struct without a layers cell".into(),
            })?;
    let mut layers = Vec::with_capacity(cell.data.len() + 1);
    let mut declared = vec![Declared::default()];
    for (i, lv) in cell.data.iter().enumerate() {
        let ls = lv.as_struct().filter(|l| l.len() == 1).ok_or_else(|| {
            Ctx::new(variable, &format!("layers{{{}}}", i + 1), "").property(
                "layers",
                "a 1x1 struct",
                lv.class_name(),
            )
        })?;
        let ty = ls
            .field("type")
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        let name = ls
            .field("name")
            .and_then(|n| n.as_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("layer{}", i + 1));
        let f = Fields::new(Ctx::new(variable, &name, &ty)).with_struct(ls);
        let lr = f
            .get("learningRate")
            .and_then(|v| v.to_f64_vec())
            .unwrap_or_default();
        let wd = f
            .get("weightDecay")
            .and_then(|v| v.to_f64_vec())
            .unwrap_or_default();
        let params: Params = match f.get("weights") {
            Some(Value::Cell(c)) => c
                .data
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    Ok(
                        stored_array(&f, &format!("weights{{{}}}", k + 1), v)?.map(|value| {
                            Stored {
                                value,
                                lr: lr.get(k).copied().unwrap_or(1.0) as f32,
                                wd: wd.get(k).copied().unwrap_or(1.0) as f32,
                            }
                        }),
                    )
                })
                .collect::<Result<_, NetError>>()?,
            Some(v) if v.is_empty() => vec![],
            Some(v) => {
                return Err(f.err("weights", "a cell of arrays", super::fields::describe(v)));
            }
            // Very old SimpleNN conv layers keep `filters` and `biases` fields.
            None => ["filters", "biases"]
                .iter()
                .map(|n| {
                    f.numeric(n).map(|a| {
                        a.map(|value| Stored {
                            value,
                            lr: 1.0,
                            wd: 1.0,
                        })
                    })
                })
                .collect::<Result<_, NetError>>()?,
        };
        let mut d = Declared::default();
        let kind = layer_kind(&ty, &f, &params, &mut d)?;
        layers.push(Layer {
            name,
            class: ty.clone(),
            kind,
            inputs: vec![],
            output: None,
        });
        declared.push(d);
    }
    let channels = layers
        .first()
        .map(|l| input_channels(&l.kind, &declared[1]))
        .unwrap_or(0);
    let mut all = vec![input_layer(variable, "input", &meta, channels)?];
    all.extend(layers);
    for (i, l) in all.iter_mut().enumerate().skip(1) {
        l.inputs = vec![i - 1];
    }
    let mut net = super::finish(
        variable,
        SourceKind::MatConvNetSimpleNN,
        all,
        declared,
        None,
    )?;
    if net.classes.is_empty() {
        net.classes = meta.classes;
    }
    Ok(net)
}

fn dag_nn(variable: &str, s: &StructArray) -> Result<Network, NetError> {
    let meta = meta(s);
    let top = Fields::new(Ctx::new(variable, "(net)", "dagnn.DagNN")).with_struct(s);
    let struct_array = |name: &str| -> Result<&StructArray, NetError> {
        let v = top.req(name)?;
        v.as_struct()
            .ok_or_else(|| top.err(name, "a struct array", super::fields::describe(v)))
    };
    let (pstruct, lstruct) = (struct_array("params")?, struct_array("layers")?);
    let mut params: HashMap<String, Stored> = HashMap::new();
    for i in 0..pstruct.len() {
        let name = pstruct
            .get(i, "name")
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        let pf = Fields::new(Ctx::new(variable, &name, "dagnn param")).with_struct(pstruct);
        let Some(v) = pstruct.get(i, "value") else {
            continue;
        };
        if let Some(value) = stored_array(&pf, "value", v)? {
            let num = |f: &str| pstruct.get(i, f).and_then(|v| v.as_f64()).unwrap_or(1.0) as f32;
            params.insert(
                name,
                Stored {
                    value,
                    lr: num("learningRate"),
                    wd: num("weightDecay"),
                },
            );
        }
    }
    let strings = |i: usize, f: &str| -> Vec<String> {
        match lstruct.get(i, f) {
            Some(v) if v.is_empty() => vec![],
            Some(v) => v
                .as_string_list()
                .or_else(|| v.as_string().map(|s| vec![s]))
                .unwrap_or_default(),
            None => vec![],
        }
    };
    // Layers in stored order; inputs as variable names for now.
    let mut layers = Vec::new();
    let mut declared = Vec::new();
    let mut input_vars: Vec<Vec<String>> = Vec::new();
    let mut producer: HashMap<String, usize> = HashMap::new();
    for i in 0..lstruct.len() {
        let name = lstruct
            .get(i, "name")
            .and_then(|n| n.as_string())
            .unwrap_or_else(|| format!("layer{}", i + 1));
        let class = lstruct
            .get(i, "type")
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        let ty = class.strip_prefix("dagnn.").unwrap_or(&class).to_string();
        let ctx = Ctx::new(variable, &name, &class);
        let mut f = Fields::new(ctx.clone());
        if let Some(b) = lstruct
            .get(i, "block")
            .and_then(|b| b.as_struct())
            .filter(|b| b.len() == 1)
        {
            f = f.with_struct(b);
        }
        let p: Params = strings(i, "params")
            .iter()
            .map(|pn| {
                params.get(pn).map(|st| Some(*st)).ok_or_else(|| {
                    ctx.property(
                        "params",
                        format!("a parameter named '{pn}'"),
                        "none in net.params",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let mut ins = strings(i, "inputs");
        let mut d = Declared::default();
        let kind = match combine::from_dagnn(&ty, &f, ins.len())? {
            Some(kind) => kind,
            None => layer_kind(&ty, &f, &p, &mut d)?,
        };
        if matches!(
            kind,
            LayerKind::ClassificationOutput { .. } | LayerKind::RegressionOutput
        ) {
            // Only the prediction: the label input exists for training.
            ins.truncate(1);
        }
        layers.push(Layer {
            name,
            class,
            kind,
            inputs: vec![],
            output: None,
        });
        declared.push(d);
        input_vars.push(ins);
        for o in strings(i, "outputs") {
            producer.insert(o, layers.len() - 1);
        }
    }
    // Variables nobody produces are network inputs: one input layer each, first use first.
    let mut inputs_made: Vec<String> = Vec::new();
    for vars in &input_vars {
        for v in vars {
            if !producer.contains_key(v) && !inputs_made.contains(v) {
                inputs_made.push(v.clone());
            }
        }
    }
    let n_layers = layers.len();
    let mut all: Vec<Layer> = Vec::with_capacity(n_layers + inputs_made.len());
    let mut all_decl = Vec::with_capacity(n_layers + inputs_made.len());
    for v in &inputs_made {
        let channels = input_vars
            .iter()
            .enumerate()
            .find(|(_, vars)| vars.first() == Some(v))
            .map(|(li, _)| input_channels(&layers[li].kind, &declared[li]))
            .unwrap_or(0);
        all.push(input_layer(variable, v, &meta, channels)?);
        all_decl.push(Declared::default());
    }
    let offset = inputs_made.len();
    for (li, (mut l, d)) in layers.into_iter().zip(declared).enumerate() {
        l.inputs = input_vars[li]
            .iter()
            .map(|v| match producer.get(v) {
                Some(&p) => p + offset,
                None => inputs_made.iter().position(|x| x == v).unwrap_or(0),
            })
            .collect();
        all.push(l);
        all_decl.push(d);
    }
    let mut net = super::finish(variable, SourceKind::MatConvNetDagNN, all, all_decl, None)?;
    if net.classes.is_empty() {
        net.classes = meta.classes;
    }
    Ok(net)
}
