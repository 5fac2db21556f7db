//! Networks anywhere in a file: top-level variables, properties of objects of any class (object
//! detectors, Reinforcement Learning Toolbox agents and their actor/critic representations, user
//! classes), fields of structs, elements of struct arrays, object arrays and cells.
//!
//! # Paths
//!
//! A network is named by a MATLAB-like path from a variable: `.name` for a property or a field,
//! `(i)` for element `i` (1-based, column-major) of a struct or object array, `{i}` for element
//! `i` of a cell: `model.model`, `detector.Network`, `s(2).net`, `nets{3}`, `agent.Actor.Model`.
//! The `any` struct in which built-in classes save their properties is looked through
//! (`detector.Network` is stored as `detector.any.Network`); naming it explicitly also works.
//!
//! # Which network without `--var`
//!
//! Every network found gets a rank; the one network of the best rank is imported, several of the
//! best rank are an error listing all. Ranks, best first: trained containers (SeriesNetwork,
//! DAGNetwork, dlnetwork, MatConvNet, a detector's layer struct) held where a user would run
//! them; the same held in a secondary role (a detector's region proposal network, an agent's
//! critic, target networks); LayerGraph (an untrained graph); bare layer arrays.

use std::fmt;

use crate::mat::MatFile;
use crate::mat::value::{Object, StructArray, Value};

use super::error::NetError;
use super::layer::{Detector, Network, SourceKind};
use super::shape::Declared;
use super::{Layer, dlt, matconvnet, source_name};

/// How deep the search looks inside objects, structs and cells.
const MAX_NESTING: usize = 8;
/// How many values the search visits at most (bounds the work on hostile files).
const MAX_VISITS: usize = 200_000;

/// A network found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where it is (see the module documentation for the syntax).
    pub path: String,
    pub source: SourceKind,
    /// The MATLAB class of the nearest object holding it (`yolov2ObjectDetector`, `bci_model`),
    /// `None` for a top-level variable or one held only in structs and cells.
    pub holder: Option<String>,
    /// Preference: lower is preferred when no path is given.
    pub rank: u8,
}

impl Candidate {
    /// `DAGNetwork in yolov2ObjectDetector`, `SeriesNetwork`.
    pub fn kind(&self) -> String {
        match &self.holder {
            Some(h) => format!("{} in {h}", source_name(self.source)),
            None => source_name(self.source).to_string(),
        }
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path, self.kind())
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    /// `(i)`, 1-based.
    Paren(usize),
    /// `{i}`, 1-based.
    Brace(usize),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Field(n) => write!(f, ".{n}"),
            Step::Paren(i) => write!(f, "({i})"),
            Step::Brace(i) => write!(f, "{{{i}}}"),
        }
    }
}

/// A place in the value tree: a value, one object of an object array, or one element of a
/// struct array.
#[derive(Clone, Copy)]
enum Node<'a> {
    Value(&'a Value),
    Object(&'a Object),
    Elem(&'a StructArray, usize),
}

impl<'a> Node<'a> {
    fn object(self) -> Option<&'a Object> {
        match self {
            Node::Value(v) => v.as_object(),
            Node::Object(o) => Some(o),
            Node::Elem(..) => None,
        }
    }

    fn class_name(self) -> String {
        match self {
            Node::Value(v) => v.class_name(),
            Node::Object(o) => o.class.clone(),
            Node::Elem(..) => "struct".into(),
        }
    }

    /// The parts one step below, in stored order.
    fn children(self) -> Vec<(Step, Node<'a>)> {
        match self {
            Node::Value(Value::Object(arr)) if arr.elements.len() == 1 => {
                object_children(&arr.elements[0])
            }
            Node::Value(Value::Object(arr)) => arr
                .elements
                .iter()
                .enumerate()
                .map(|(i, o)| (Step::Paren(i + 1), Node::Object(o)))
                .collect(),
            Node::Value(Value::Struct(s)) if s.len() == 1 => struct_children(s, 0),
            Node::Value(Value::Struct(s)) => (0..s.len())
                .map(|i| (Step::Paren(i + 1), Node::Elem(s, i)))
                .collect(),
            Node::Value(Value::Cell(c)) => c
                .data
                .iter()
                .enumerate()
                .map(|(i, v)| (Step::Brace(i + 1), Node::Value(v)))
                .collect(),
            Node::Value(_) => Vec::new(),
            Node::Object(o) => object_children(o),
            Node::Elem(s, i) => struct_children(s, i),
        }
    }

    /// The part `step` names, if any. `(1)` of a single value is the value itself; `.any` names
    /// the `any` struct even though [`children`](Self::children) looks through it.
    fn child(self, step: &Step) -> Option<Node<'a>> {
        if let Step::Field(name) = step
            && name == "any"
            && let Some(any) = self.object().and_then(|o| o.prop("any"))
        {
            return Some(Node::Value(any));
        }
        let single = match self {
            Node::Value(v) => {
                !matches!(v, Value::Cell(_)) && v.dims().iter().product::<usize>() == 1
            }
            _ => true,
        };
        if *step == Step::Paren(1) && single {
            return Some(self);
        }
        self.children()
            .into_iter()
            .find(|(s, _)| s == step)
            .map(|(_, n)| n)
    }
}

/// An object's properties: those it saved in its `any` struct first (built-in classes), then its
/// own, each name once.
fn object_children(o: &Object) -> Vec<(Step, Node<'_>)> {
    let mut out: Vec<(Step, Node)> = match o.prop("any").and_then(|v| v.as_struct()) {
        Some(s) if s.len() == 1 => struct_children(s, 0),
        _ => Vec::new(),
    };
    for (name, v) in &o.props {
        if name == "any" || out.iter().any(|(s, _)| *s == Step::Field(name.clone())) {
            continue;
        }
        out.push((Step::Field(name.clone()), Node::Value(v)));
    }
    out
}

fn struct_children(s: &StructArray, i: usize) -> Vec<(Step, Node<'_>)> {
    let Some(values) = s.elements.get(i) else {
        return Vec::new();
    };
    s.fields
        .iter()
        .zip(values)
        .map(|(n, v)| (Step::Field(n.clone()), Node::Value(v)))
        .collect()
}

/// Parses `var.prop(2).field{3}` into the variable name and its steps.
fn parse_path(path: &str) -> Result<(String, Vec<Step>), NetError> {
    let bad = |why: &str| NetError::BadPath {
        path: path.into(),
        message: why.into(),
    };
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_';
    let mut chars = path.char_indices().peekable();
    let mut root = String::new();
    while let Some(&(_, c)) = chars.peek() {
        if !is_name_char(c) {
            break;
        }
        root.push(c);
        chars.next();
    }
    if root.is_empty() {
        return Err(bad("it does not start with a variable name"));
    }
    let mut steps = Vec::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '.' => {
                let mut name = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if !is_name_char(c) {
                        break;
                    }
                    name.push(c);
                    chars.next();
                }
                if name.is_empty() {
                    return Err(bad("a '.' is not followed by a name"));
                }
                steps.push(Step::Field(name));
            }
            '(' | '{' => {
                let close = if c == '(' { ')' } else { '}' };
                let mut digits = String::new();
                loop {
                    match chars.next() {
                        Some((_, d)) if d == close => break,
                        Some((_, d)) if d.is_ascii_digit() => digits.push(d),
                        _ => {
                            return Err(bad(&format!(
                                "'{c}' must hold one index from 1 and be closed by '{close}'"
                            )));
                        }
                    }
                }
                let i: usize = digits.parse().unwrap_or(0);
                if i == 0 {
                    return Err(bad("indices start at 1"));
                }
                steps.push(if c == '(' {
                    Step::Paren(i)
                } else {
                    Step::Brace(i)
                });
            }
            other => return Err(bad(&format!("unexpected '{other}'"))),
        }
    }
    Ok((root, steps))
}

/// The variable part of a path (`model` of `model.model`, `s` of `s(2).net`).
pub fn path_variable(path: &str) -> &str {
    let end = path.find(['.', '(', '{']).unwrap_or(path.len());
    &path[..end]
}

/// The value a path names, with the objects passed on the way (outermost first, the value
/// itself excluded).
struct Resolved<'a> {
    node: Node<'a>,
    holders: Vec<&'a Object>,
}

fn resolve<'a>(file: &'a MatFile, path: &str) -> Result<Resolved<'a>, NetError> {
    let (root, steps) = parse_path(path)?;
    let var = file
        .variables
        .iter()
        .find(|v| v.name == root)
        .ok_or_else(|| NetError::NoSuchVariable {
            variable: path.into(),
            available: file
                .variables
                .iter()
                .map(|v| v.name.clone())
                .chain(file.skipped.iter().cloned())
                .collect(),
        })?;
    let mut node = Node::Value(&var.value);
    let mut holders = Vec::new();
    let mut at = root.clone();
    for step in &steps {
        let next = node.child(step).ok_or_else(|| NetError::NoSuchPath {
            path: path.into(),
            at: at.clone(),
            class: node.class_name(),
            available: node
                .children()
                .iter()
                .map(|(s, _)| format!("{at}{s}"))
                .take(40)
                .collect(),
            networks: candidates(file).iter().map(|c| c.to_string()).collect(),
        })?;
        if let Some(o) = node.object()
            && !std::ptr::eq(node_ptr(next), node_ptr(node))
        {
            holders.push(o);
        }
        node = next;
        at += &step.to_string();
    }
    Ok(Resolved { node, holders })
}

fn node_ptr(n: Node) -> *const u8 {
    match n {
        Node::Value(v) => v as *const Value as *const u8,
        Node::Object(o) => o as *const Object as *const u8,
        Node::Elem(s, i) => s
            .elements
            .get(i)
            .map_or(std::ptr::null(), |e| e.as_ptr() as *const u8),
    }
}

/// The network kind of a value, if it holds one directly.
pub(crate) fn classify(v: &Value) -> Option<SourceKind> {
    dlt::classify(v)
        .or_else(|| matconvnet::classify(v))
        .or_else(|| classify_branched(v))
}

/// Whether a class is an object detector (`yolov2ObjectDetector`, `fasterRCNNObjectDetector`,
/// `ssdObjectDetector`, ...).
fn is_detector(class: &str) -> bool {
    let short = class.rsplit('.').next().unwrap_or(class);
    short.ends_with("ObjectDetector")
}

/// Whether a class is a Reinforcement Learning Toolbox agent (`rlDQNAgent`, `rl.agent.rlPPOAgent`).
fn is_agent(class: &str) -> bool {
    let short = class.rsplit('.').next().unwrap_or(class);
    short.starts_with("rl") && short.ends_with("Agent")
}

fn rank(source: SourceKind, holders: &[&Object], last: Option<&Step>, path: &str) -> u8 {
    let base = match source {
        SourceKind::LayerArray => 3,
        SourceKind::LayerGraph => 2,
        _ => 0,
    };
    let detector = holders.last().is_some_and(|o| is_detector(&o.class));
    let role = if detector && last != Some(&Step::Field("Network".into())) {
        1
    } else if holders.iter().any(|o| is_agent(&o.class)) {
        if path.contains("Target") {
            2
        } else if path.contains("Critic") {
            1
        } else {
            0
        }
    } else {
        0
    };
    base * 3 + role
}

fn search<'a>(
    node: Node<'a>,
    path: &str,
    last: Option<&Step>,
    holders: &mut Vec<&'a Object>,
    depth: usize,
    visits: &mut usize,
    out: &mut Vec<Candidate>,
) {
    if let Node::Value(v) = node
        && let Some(source) = classify(v)
    {
        out.push(Candidate {
            path: path.into(),
            source,
            holder: holders.last().map(|o| o.class.clone()),
            rank: rank(source, holders, last, path),
        });
        return;
    }
    if depth == 0 {
        return;
    }
    let object = node.object();
    if let Some(o) = object {
        holders.push(o);
    }
    for (step, child) in node.children() {
        if *visits == 0 {
            break;
        }
        *visits -= 1;
        let p = format!("{path}{step}");
        search(child, &p, Some(&step), holders, depth - 1, visits, out);
    }
    if object.is_some() {
        holders.pop();
    }
}

/// Every network in the file, in stored order, with where it is and what holds it.
pub fn candidates(file: &MatFile) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut visits = MAX_VISITS;
    for var in &file.variables {
        search(
            Node::Value(&var.value),
            &var.name,
            None,
            &mut Vec::new(),
            MAX_NESTING,
            &mut visits,
            &mut out,
        );
    }
    out
}

/// The one candidate of the best rank, or the error listing them.
fn pick(found: &[Candidate]) -> Result<&Candidate, NetError> {
    let best = found.iter().map(|c| c.rank).min();
    let top: Vec<&Candidate> = found.iter().filter(|c| Some(c.rank) == best).collect();
    match top.as_slice() {
        [one] => Ok(one),
        _ => Err(NetError::SeveralNetworks {
            candidates: found.iter().map(|c| c.to_string()).collect(),
        }),
    }
}

/// The network `import` takes for `var` (or, without it, for the whole file), among `found`
/// (the file's candidates).
pub fn choose(file: &MatFile, var: Option<&str>) -> Result<Candidate, NetError> {
    let Some(path) = var else {
        let found = candidates(file);
        if found.is_empty() {
            return Err(NetError::NoNetwork {
                variables: file.variables.iter().map(|v| v.name.clone()).collect(),
            });
        }
        return pick(&found).cloned();
    };
    let r = resolve(file, path)?;
    let mut holders = r.holders.clone();
    if let Node::Value(v) = r.node
        && let Some(source) = classify(v)
    {
        let last = parse_path(path)?.1.pop();
        return Ok(Candidate {
            path: path.into(),
            source,
            holder: holders.last().map(|o| o.class.clone()),
            rank: rank(source, &holders, last.as_ref(), path),
        });
    }
    let mut nested = Vec::new();
    let mut visits = MAX_VISITS;
    search(
        r.node,
        path,
        None,
        &mut holders,
        MAX_NESTING,
        &mut visits,
        &mut nested,
    );
    if nested.is_empty() {
        return Err(NetError::NoNetworkAt {
            path: path.into(),
            class: r.node.class_name(),
            networks: candidates(file).iter().map(|c| c.to_string()).collect(),
        });
    }
    pick(&nested).cloned()
}

/// Imports the network `var` names (or the file's preferred one), with the metadata of the
/// object detector holding it.
pub(crate) fn import(file: &MatFile, var: Option<&str>) -> Result<Network, NetError> {
    let chosen = choose(file, var)?;
    let r = resolve(file, &chosen.path)?;
    let Node::Value(value) = r.node else {
        return Err(NetError::NotANetwork {
            variable: chosen.path.clone(),
            class: r.node.class_name(),
        });
    };
    let mut net = match chosen.source {
        SourceKind::MatConvNetSimpleNN | SourceKind::MatConvNetDagNN => {
            matconvnet::import(&chosen.path, value, chosen.source)?
        }
        SourceKind::BranchedLayers => import_branched(&chosen.path, value)?,
        _ => dlt::import(&chosen.path, value, chosen.source)?,
    };
    if let Some(d) = r.holders.iter().rev().find(|o| is_detector(&o.class)) {
        net.detector = Some(detector(d, &net));
    }
    Ok(net)
}

/// A property of a built-in object: in its `any` struct, else its own.
fn prop<'a>(o: &'a Object, name: &str) -> Option<&'a Value> {
    o.prop("any")
        .and_then(|v| v.as_struct())
        .filter(|s| s.len() == 1)
        .and_then(|s| s.field(name))
        .or_else(|| o.prop(name))
}

/// `[height, width]` rows of an M-by-2 array, or of a cell of them (one per detection head).
fn anchor_rows(v: &Value) -> Vec<[f64; 2]> {
    match v {
        Value::Cell(c) => c.data.iter().flat_map(anchor_rows).collect(),
        Value::Numeric(a) if a.dims.len() == 2 && a.dims[1] == 2 => {
            let m = a.dims[0];
            let d = a.real.to_f64_vec();
            (0..m).map(|i| [d[i], d[m + i]]).collect()
        }
        _ => Vec::new(),
    }
}

/// The metadata of detector `o` holding `net`.
fn detector(o: &Object, net: &Network) -> Detector {
    let class_names = match prop(o, "ClassNames") {
        Some(v) => dlt::class_names(v),
        // fasterRCNNObjectDetector (2017) stores no ClassNames: its classifier's classes less
        // the background class.
        None => {
            let background = prop(o, "BackgroundLabel").and_then(|v| v.as_string());
            net.classes
                .iter()
                .filter(|c| Some(c.as_str()) != background.as_deref())
                .cloned()
                .collect()
        }
    };
    let size = prop(o, "TrainingImageSize")
        .or_else(|| prop(o, "InputSize"))
        .and_then(|v| v.as_numeric())
        .and_then(|a| {
            let d = a.real.to_f64_vec();
            // TrainingImageSize is M-by-2 (first row), InputSize [H W C].
            let rows = if a.dims.len() == 2 && a.dims[1] == 2 {
                a.dims[0]
            } else {
                1
            };
            let (h, w) = (*d.first()?, *d.get(rows)?);
            (h >= 1.0 && w >= 1.0).then_some([h as usize, w as usize])
        });
    Detector {
        class: o.class.clone(),
        model_name: prop(o, "ModelName")
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty()),
        class_names,
        anchor_boxes: prop(o, "AnchorBoxes").map(anchor_rows).unwrap_or_default(),
        training_image_size: size,
    }
}

/// A 1x1 struct `{Layers, RegLayers, BranchLayerIdx}`, as `fasterRCNNObjectDetector` (2017)
/// stores its networks: a layer chain and a regression chain branching off layer
/// `BranchLayerIdx`.
fn classify_branched(v: &Value) -> Option<SourceKind> {
    let s = v.as_struct().filter(|s| s.len() == 1)?;
    let layers = dlt::classify(s.field("Layers")?) == Some(SourceKind::LayerArray);
    let reg = dlt::classify(s.field("RegLayers")?) == Some(SourceKind::LayerArray);
    (layers && reg && s.field("BranchLayerIdx").is_some()).then_some(SourceKind::BranchedLayers)
}

/// Imports a [`SourceKind::BranchedLayers`] struct: the classification chain and the box
/// regression chain, both outputs.
fn import_branched(variable: &str, v: &Value) -> Result<Network, NetError> {
    let not_a_network = || NetError::NotANetwork {
        variable: variable.into(),
        class: v.class_name(),
    };
    let s = v
        .as_struct()
        .filter(|s| s.len() == 1)
        .ok_or_else(not_a_network)?;
    let field = |n: &str| s.field(n).ok_or_else(not_a_network);
    let (main, mut declared) = dlt::read_layers(variable, field("Layers")?)?;
    let (reg, reg_declared) = dlt::read_layers(variable, field("RegLayers")?)?;
    let bad_branch = |found: String| {
        super::error::Ctx::new(variable, "(container)", "struct").property(
            "BranchLayerIdx",
            format!("a layer index from 1 to {}", main.len()),
            found,
        )
    };
    let branch = field("BranchLayerIdx")?
        .as_f64()
        .ok_or_else(|| bad_branch("no number".into()))?;
    if !(branch >= 1.0 && branch <= main.len() as f64 && branch.fract() == 0.0) {
        return Err(bad_branch(branch.to_string()));
    }
    let n = main.len();
    let mut layers: Vec<Layer> = dlt::chain(main);
    for (i, mut l) in dlt::chain(reg).into_iter().enumerate() {
        l.inputs = if i == 0 {
            vec![branch as usize - 1]
        } else {
            vec![n + i - 1]
        };
        layers.push(l);
    }
    declared.extend::<Vec<Declared>>(reg_declared);
    super::finish(variable, SourceKind::BranchedLayers, layers, declared, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_as_matlab_writes_them() {
        let (root, steps) = parse_path("agent.Critic(2).Model{3}").unwrap();
        assert_eq!(root, "agent");
        assert_eq!(
            steps,
            vec![
                Step::Field("Critic".into()),
                Step::Paren(2),
                Step::Field("Model".into()),
                Step::Brace(3)
            ]
        );
        let shown: String = steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(format!("{root}{shown}"), "agent.Critic(2).Model{3}");
        for bad in ["", ".x", "a.", "a(0)", "a(x)", "a(1", "a{2)", "a b"] {
            assert!(
                matches!(parse_path(bad), Err(NetError::BadPath { .. })),
                "{bad}"
            );
        }
        assert_eq!(path_variable("s(2).net"), "s");
        assert_eq!(path_variable("model.model"), "model");
        assert_eq!(path_variable("net"), "net");
    }

    #[test]
    fn anchors_are_rows_of_height_and_width() {
        use crate::mat::value::{NumData, NumericArray};
        // MATLAB [8 8; 32 48] is stored column-major: 8 32 8 48.
        let a = Value::Numeric(NumericArray::new(
            vec![2, 2],
            NumData::F64(vec![8.0, 32.0, 8.0, 48.0]),
        ));
        assert_eq!(anchor_rows(&a), vec![[8.0, 8.0], [32.0, 48.0]]);
    }
}
