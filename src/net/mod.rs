//! MATLAB values → the network description. Knows nothing of Burn.
//!
//! [`import`] finds the network in a decoded `.mat` file (a Deep Learning Toolbox container, a bare
//! layer array, or a MatConvNet struct), maps every layer to a [`LayerKind`] with typed
//! hyperparameters and canonical weights ([`layout`]), orders the layers topologically, and runs
//! shape inference ([`shape`]), which sets every layer's `output` and resolves 'same' padding.

pub mod container;
pub mod dlt;
pub mod error;
mod fields;
pub mod layer;
pub mod layers;
pub mod layout;
pub mod matconvnet;
pub mod shape;

pub use error::NetError;
pub use layer::*;

use crate::mat::MatFile;

use shape::Declared;

pub use container::{Candidate, candidates, choose, path_variable};

/// Every network in the file: top-level variables, and networks held anywhere inside objects,
/// structs and cells (named by their path, `var.prop(2).field{3}`), with the container kind of
/// each. [`candidates`] says more (what holds each one, which one [`import`] prefers).
pub fn find_networks(file: &MatFile) -> Vec<(String, SourceKind)> {
    candidates(file)
        .into_iter()
        .map(|c| (c.path, c.source))
        .collect()
}

/// Imports the network at `var`: a variable or a path into one (`model.model`,
/// `detector.Network`, `s(2).net`, `nets{3}`; see [`container`]), or a value holding one
/// network of the best rank. Without `var`, the file's preferred network: trained containers
/// (SeriesNetwork, DAGNetwork, dlnetwork, MatConvNet, a detector's network) over untrained
/// LayerGraphs over bare layer arrays, so a workspace that saved both `layers` and the trained
/// `net` imports `net`. Several candidates of the best rank are an error listing them; so is a
/// file without any network. A network inside an object detector gets the detector's metadata
/// ([`Network::detector`]).
pub fn import(file: &MatFile, var: Option<&str>) -> Result<Network, NetError> {
    import_with(file, var)
}

/// As [`import`], consuming the file: the large weight arrays are moved out of the decoded
/// values and reordered in their own buffers, not copied, so that the file's values and the
/// network never hold the same weights twice (peak memory about one copy of the weights).
pub fn import_owned(file: MatFile, var: Option<&str>) -> Result<Network, NetError> {
    let mut net = {
        let _defer = layout::DeferGuard::new();
        import_with(&file, var)?
    };
    layout::materialize(&mut net, file).map_err(|message| NetError::Weights {
        variable: net.variable.clone(),
        message,
    })?;
    Ok(net)
}

fn import_with(file: &MatFile, var: Option<&str>) -> Result<Network, NetError> {
    container::import(file, var)
}

/// The MATLAB name of a container kind.
pub fn source_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::SeriesNetwork => "SeriesNetwork",
        SourceKind::DAGNetwork => "DAGNetwork",
        SourceKind::DlNetwork => "dlnetwork",
        SourceKind::LayerGraph => "LayerGraph",
        SourceKind::LayerArray => "Layer array",
        SourceKind::MatConvNetSimpleNN => "MatConvNet SimpleNN",
        SourceKind::MatConvNetDagNN => "MatConvNet DagNN",
        SourceKind::BranchedLayers => "Layer array with a regression branch",
    }
}

/// Orders layers topologically, keeping the stored order wherever the graph allows (Kahn's
/// algorithm taking the lowest stored index first). `inputs[i]` are the producers of layer `i`.
/// Returns the new order (old indices), or the name-less index of a layer on a cycle.
pub(crate) fn topo_order(inputs: &[Vec<usize>]) -> Result<Vec<usize>, usize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = inputs.len();
    let mut pending: Vec<usize> = inputs.iter().map(|v| v.len()).collect();
    let mut consumers = vec![Vec::new(); n];
    for (i, ins) in inputs.iter().enumerate() {
        for &j in ins {
            consumers[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| pending[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &c in &consumers[i] {
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    if order.len() < n {
        return Err((0..n).find(|&i| pending[i] > 0).unwrap_or(0));
    }
    Ok(order)
}

/// Layers, their declared sizes, and the output layers' indices.
type Ordered = (Vec<Layer>, Vec<Declared>, Vec<usize>);

/// Puts `layers` (whose `inputs` index the stored order) into topological order, remapping inputs
/// and `outputs`. Returns the layers, their declared sizes and outputs in the new order.
pub(crate) fn into_topological(
    variable: &str,
    source: SourceKind,
    layers: Vec<Layer>,
    declared: Vec<Declared>,
    outputs: Vec<usize>,
) -> Result<Ordered, NetError> {
    let ins: Vec<Vec<usize>> = layers.iter().map(|l| l.inputs.clone()).collect();
    let order = topo_order(&ins).map_err(|i| NetError::Graph {
        variable: variable.into(),
        container: source_name(source).into(),
        message: format!(
            "the connections form a cycle through layer '{}'",
            layers[i].name
        ),
    })?;
    let mut new_index = vec![0; layers.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut slots: Vec<Option<(Layer, Declared)>> =
        layers.into_iter().zip(declared).map(Some).collect();
    let mut out_layers = Vec::with_capacity(order.len());
    let mut out_decl = Vec::with_capacity(order.len());
    for &old in &order {
        if let Some((mut l, d)) = slots[old].take() {
            l.inputs = l.inputs.iter().map(|&j| new_index[j]).collect();
            out_layers.push(l);
            out_decl.push(d);
        }
    }
    let outputs = outputs.iter().map(|&o| new_index[o]).collect();
    Ok((out_layers, out_decl, outputs))
}

/// Layers whose output no layer consumes, in order.
pub(crate) fn sinks(layers: &[Layer]) -> Vec<usize> {
    let mut used = vec![false; layers.len()];
    for l in layers {
        for &j in &l.inputs {
            if j < used.len() {
                used[j] = true;
            }
        }
    }
    (0..layers.len()).filter(|&i| !used[i]).collect()
}

/// MATLAB's default name stem for a layer left unnamed (untrained layer arrays).
fn default_stem(kind: &LayerKind) -> &'static str {
    layers::names(kind).stem
}

/// Names unnamed layers as MATLAB does when it assembles a network: the stem alone when one layer
/// has it, `stem_1`, `stem_2`, ... when several do; names already taken are skipped.
pub(crate) fn assign_default_names(layers: &mut [Layer]) {
    let unnamed: Vec<usize> = (0..layers.len())
        .filter(|&i| layers[i].name.is_empty())
        .collect();
    if unnamed.is_empty() {
        return;
    }
    let mut taken: std::collections::HashSet<String> =
        layers.iter().map(|l| l.name.clone()).collect();
    let mut counts: std::collections::HashMap<&'static str, usize> = Default::default();
    for &i in &unnamed {
        *counts.entry(default_stem(&layers[i].kind)).or_default() += 1;
    }
    let mut next: std::collections::HashMap<&'static str, usize> = Default::default();
    for &i in &unnamed {
        let stem = default_stem(&layers[i].kind);
        let name = if counts[stem] == 1 && !taken.contains(stem) {
            stem.to_string()
        } else {
            loop {
                let n = next.entry(stem).or_insert(0);
                *n += 1;
                let candidate = format!("{stem}_{n}");
                if !taken.contains(&candidate) {
                    break candidate;
                }
            }
        };
        taken.insert(name.clone());
        layers[i].name = name;
    }
}

/// The common end of every importer: topological order, names, shape inference, class names.
pub(crate) fn finish(
    variable: &str,
    source: SourceKind,
    mut layers: Vec<Layer>,
    declared: Vec<Declared>,
    outputs: Option<Vec<usize>>,
) -> Result<Network, NetError> {
    assign_default_names(&mut layers);
    let outputs = outputs.unwrap_or_else(|| sinks(&layers));
    let (layers, declared, outputs) =
        into_topological(variable, source, layers, declared, outputs)?;
    let classes = layers
        .iter()
        .find_map(|l| match &l.kind {
            LayerKind::ClassificationOutput { classes } if !classes.is_empty() => {
                Some(classes.clone())
            }
            _ => None,
        })
        .unwrap_or_default();
    let mut net = Network {
        variable: variable.into(),
        source,
        layers,
        outputs,
        classes,
        detector: None,
        notes: Vec::new(),
    };
    shape::infer(&mut net, &declared)?;
    Ok(net)
}

impl Network {
    /// Number of learnable parameters of layer `i`, as MATLAB's `analyzeNetwork` counts them:
    /// `Weights`, `Bias`, `Scale`, `Offset`, `InputWeights`, `RecurrentWeights` (not the batch
    /// normalization running statistics).
    pub fn layer_learnables(&self, i: usize) -> usize {
        self.layers
            .get(i)
            .map_or(0, |l| layers::learnables(&l.kind))
    }

    /// Total learnable parameters.
    pub fn learnables(&self) -> usize {
        (0..self.layers.len())
            .map(|i| self.layer_learnables(i))
            .sum()
    }

    /// Layers matcnn cannot convert.
    pub fn unsupported(&self) -> Vec<&Layer> {
        self.layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Unsupported { .. }))
            .collect()
    }

    /// Whether the network takes sequences (its input is a `sequenceInputLayer`): activations
    /// are then `[N, C, 1, T]` and fully connected layers apply to each time step.
    pub fn is_sequence(&self) -> bool {
        matches!(
            self.input().map(|l| &l.kind),
            Some(LayerKind::SequenceInput { .. })
        )
    }

    /// Per layer, whether its output is a sequence (time steps kept): true from a sequence
    /// input until a recurrent layer with OutputMode 'last'. All false in other networks.
    pub fn sequence_outputs(&self) -> Vec<bool> {
        let mut seq = vec![false; self.layers.len()];
        if !self.is_sequence() {
            return seq;
        }
        for (i, l) in self.layers.iter().enumerate() {
            seq[i] = match &l.kind {
                LayerKind::SequenceInput { .. } => true,
                LayerKind::Lstm(r) | LayerKind::Gru(r) => r.return_sequence,
                _ => l
                    .inputs
                    .iter()
                    .any(|&j| seq.get(j).copied().unwrap_or(false)),
            };
        }
        seq
    }

    /// Whether the network's output is a sequence.
    pub fn outputs_sequence(&self) -> bool {
        let out = self
            .outputs
            .first()
            .copied()
            .unwrap_or(self.layers.len().saturating_sub(1));
        self.sequence_outputs().get(out).copied().unwrap_or(false)
    }

    /// The (first) input layer.
    pub fn input(&self) -> Option<&Layer> {
        self.layers.iter().find(|l| {
            matches!(
                l.kind,
                LayerKind::ImageInput { .. }
                    | LayerKind::FeatureInput { .. }
                    | LayerKind::SequenceInput { .. }
            )
        })
    }

    /// True when every layer with parameters or statistics has them stored (false for untrained
    /// layer arrays).
    pub fn is_trained(&self) -> bool {
        self.layers.iter().all(|l| layers::is_trained(&l.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topological_order_keeps_stored_order_when_possible() {
        // 0 → 2 → 1 (stored out of order), 3 independent.
        let ins = vec![vec![], vec![2], vec![0], vec![]];
        assert_eq!(topo_order(&ins).unwrap(), vec![0, 2, 1, 3]);
        assert_eq!(topo_order(&[vec![1], vec![0]]), Err(0));
    }

    fn named(name: &str, kind: LayerKind) -> Layer {
        Layer {
            name: name.into(),
            class: "c".into(),
            kind,
            inputs: vec![],
            output: None,
        }
    }

    #[test]
    fn default_names_follow_matlab() {
        let mut layers = vec![
            named("", LayerKind::Activation(Activation::Relu)),
            named("", LayerKind::Softmax),
            named("", LayerKind::Activation(Activation::Relu)),
            named("relu_1", LayerKind::Flatten),
        ];
        assign_default_names(&mut layers);
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["relu_2", "softmax", "relu_3", "relu_1"]);
    }
}
