//! The ONNX graph under construction: nodes, initializers, value names, and the protobuf
//! attribute and value-info helpers.

use crate::export::{Plan, Val};
use crate::net::layer::{Layer, Padding};
use onnx_ir::{AttributeProto, AttributeType, NodeProto, TensorProto, TypeProto, ValueInfoProto};

// TensorProto.DataType
const FLOAT: i32 = 1;
const INT64: i32 = 7;

pub(super) fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    let mut a = AttributeProto::default();
    a.name = name.into();
    a.type_ = ty.into();
    a
}

pub(super) fn a_int(name: &str, v: i64) -> AttributeProto {
    let mut a = attr(name, AttributeType::INT);
    a.i = v;
    a
}

pub(super) fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = attr(name, AttributeType::INTS);
    a.ints = v.to_vec();
    a
}

pub(super) fn a_float(name: &str, v: f64) -> AttributeProto {
    let mut a = attr(name, AttributeType::FLOAT);
    a.f = v as f32;
    a
}

pub(super) fn a_str(name: &str, v: &str) -> AttributeProto {
    let mut a = attr(name, AttributeType::STRING);
    a.s = v.as_bytes().to_vec().into();
    a
}

pub(super) fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let mut v = ValueInfoProto::default();
    v.name = name.into();
    let mut ty = TypeProto::default();
    let t = ty.mut_tensor_type();
    t.elem_type = FLOAT;
    let shape = t.shape.mut_or_insert_default();
    for d in dims {
        shape.dim.push(Default::default());
        let last = shape.dim.last_mut().expect("pushed");
        match d {
            Dim::Fixed(n) => last.set_dim_value(*n as i64),
            Dim::Named(s) => last.set_dim_param((*s).into()),
        }
    }
    v.type_ = Some(ty).into();
    v
}

pub(super) enum Dim {
    Fixed(usize),
    Named(&'static str),
}

pub(super) fn dim(n: usize, name: &'static str) -> Dim {
    if n == 0 {
        Dim::Named(name)
    } else {
        Dim::Fixed(n)
    }
}

/// The graph under construction.
pub(super) struct Graph {
    pub nodes: Vec<NodeProto>,
    pub inits: Vec<TensorProto>,
    /// Names of shared constants already added.
    consts: std::collections::HashSet<String>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph {
            nodes: Vec::new(),
            inits: Vec::new(),
            consts: Default::default(),
        }
    }

    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<AttributeProto>,
    ) {
        let mut n = NodeProto::default();
        n.op_type = op.into();
        n.name = name.into();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![output.to_string()];
        n.attribute = attrs;
        self.nodes.push(n);
    }

    pub fn f32_init(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let mut t = TensorProto::default();
        t.name = name.into();
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.data_type = FLOAT;
        t.raw_data = data
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>()
            .into();
        self.inits.push(t);
        name.into()
    }

    pub fn i64_init(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let mut t = TensorProto::default();
        t.name = name.into();
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.data_type = INT64;
        t.raw_data = data
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>()
            .into();
        self.inits.push(t);
        name.into()
    }

    /// A scalar f32 constant shared by every node that uses the same value.
    pub fn scalar(&mut self, v: f32) -> String {
        let name = format!("const_{v:e}");
        if self.consts.insert(name.clone()) {
            self.f32_init(&name, &[], &[v]);
        }
        name
    }

    pub fn axes_2_3(&mut self) -> String {
        let name = "axes_2_3".to_string();
        if self.consts.insert(name.clone()) {
            self.i64_init(&name, &[2], &[2, 3]);
        }
        name
    }
}

/// Names of the values in the graph: the graph input is `input`, a layer's output is named after
/// the layer (renamed if that collides), and the network's output is `output`.
pub(super) struct Names {
    layer: Vec<String>,
}

impl Names {
    pub fn new(plan: &Plan) -> Names {
        let mut used: std::collections::HashSet<String> =
            ["input", "output"].iter().map(|s| s.to_string()).collect();
        let mut layer = Vec::new();
        for l in &plan.net.layers {
            let base = if l.name.is_empty() {
                "layer".to_string()
            } else {
                l.name.clone()
            };
            let mut cand = base.clone();
            let mut k = 1;
            while !used.insert(cand.clone()) {
                cand = format!("{base}_{k}");
                k += 1;
            }
            layer.push(cand);
        }
        if let (Val::Layer(j), false) = (plan.out, plan.out_flatten) {
            layer[j] = "output".into();
        }
        Names { layer }
    }

    pub fn of(&self, v: Val) -> &str {
        match v {
            Val::Input => "input",
            Val::Layer(j) => &self.layer[j],
        }
    }
}

/// The layer whose nodes are being emitted.
pub(super) struct Ctx<'a> {
    pub plan: &'a Plan<'a>,
    names: &'a Names,
    /// The layer's index.
    pub i: usize,
    pub l: &'a Layer,
    /// The layer's name, which its (main) node takes.
    pub name: &'a str,
    /// The name of the layer's output value.
    pub out: String,
}

impl<'a> Ctx<'a> {
    pub fn new(plan: &'a Plan<'a>, names: &'a Names, i: usize) -> Ctx<'a> {
        let l = &plan.net.layers[i];
        Ctx {
            plan,
            names,
            i,
            l,
            name: l.name.as_str(),
            out: names.layer[i].clone(),
        }
    }

    /// The name of layer `j`'s output value.
    pub fn value_of(&self, j: usize) -> String {
        self.names.of(self.plan.value[j]).to_string()
    }

    /// Input `k`, as `[N, C, H, W]` when `four`.
    pub fn arg(&self, g: &mut Graph, k: usize, four: bool) -> String {
        let name = self.name;
        let v = self.names.of(self.plan.value[self.l.inputs[k]]).to_string();
        if four && self.plan.in_rank(self.i, k) == 2 {
            let axes = g.axes_2_3();
            let lifted = format!("{name}/unsqueeze{k}");
            g.node(
                "Unsqueeze",
                &format!("{name}/unsqueeze{k}"),
                &[&v, &axes],
                &lifted,
                vec![],
            );
            lifted
        } else {
            v
        }
    }
}

/// ONNX pads `[top, left, bottom, right]` from MATLAB's `[top bottom left right]`.
pub(super) fn onnx_pads(p: Padding) -> Vec<i64> {
    vec![p.top as i64, p.left as i64, p.bottom as i64, p.right as i64]
}

pub(super) fn ints(v: [usize; 2]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}
