//! The network description → a Burn module, on a backend chosen at run time.
//!
//! Burn 0.22 carries the backend in the tensor's `Device`, so one [`MatNet`] runs on whichever
//! backend the user picks ([`backend`]). Every activation is kept as a 4-D `[N, C, H, W]` tensor;
//! feature vectors are `[N, C, 1, 1]`. Layers run in the description's topological order.

pub mod backend;
mod fold;
mod ops;
mod prepare;
pub mod saved;

/// The CPU kernels, now [`crate::cpu`] (this path is kept for older uses).
pub use crate::cpu;
pub use backend::{Backend, device_for};
pub use ops::{ADD_RELU, Op, Rnn};

use crate::net::layer::{LayerKind, Network, PaddingMode};
use burn::module::Module;
use burn::prelude::*;
use thiserror::Error;

/// Refuses a network with layers matcnn cannot convert, naming each one (layer, class, why):
/// the check a command makes before it reads any input, so a user first learns what cannot run.
pub fn check_supported(net: &Network) -> Result<(), ModelError> {
    let unsupported: Vec<_> = net
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Unsupported { reason } => {
                Some((l.name.clone(), l.class.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect();
    if unsupported.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Unsupported(unsupported))
    }
}

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("the network cannot be converted: {}", describe_unsupported(.0))]
    Unsupported(Vec<(String, String, String)>),
    #[error(
        "layer '{layer}' ({class}) has no trained weights ('{property}' is empty): is this an untrained layer array?"
    )]
    NoWeights {
        layer: String,
        class: String,
        property: String,
    },
    #[error("layer '{layer}' ({class}): {msg}")]
    Layer {
        layer: String,
        class: String,
        msg: String,
    },
    #[error("input of shape {found:?} does not fit the network's input {expected}")]
    InputShape { expected: String, found: Vec<usize> },
    #[error("backend: {0}")]
    Backend(String),
    #[error("record {path}: {msg}")]
    Record { path: String, msg: String },
}

fn describe_unsupported(v: &[(String, String, String)]) -> String {
    v.iter()
        .map(|(n, c, r)| format!("layer '{n}' ({c}): {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One layer of the module and the indices of the layers that feed it.
#[derive(Module, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<usize>,
    /// MATLAB layer name (a constant: not saved in records).
    pub name: String,
    /// The CPU inference kernel that replaces `op` (see [`MatNet::prepare_cpu`]).
    #[module(skip)]
    pub fast: Option<cpu::FastConv>,
    /// This convolution writes straight into the output of channel concatenation `.0`, at
    /// channel `.1` of `.2` (see [`MatNet::prepare_cpu`]).
    #[module(skip)]
    pub concat_into: Option<(usize, usize, usize)>,
}

/// A MATLAB network as a Burn module.
#[derive(Module, Debug)]
pub struct MatNet {
    pub nodes: Vec<Node>,
    /// Index of the output node.
    pub output: usize,
}

/// Keeps rayon's other threads looking for work for the length of a forward pass (until
/// dropped). A rayon thread that finds no work for a few microseconds goes to sleep, and
/// waking it took 30-70 µs here, longer than most layers of a small network at batch 1: the
/// parallel loop of the next layer then ran on one thread while the other was still waking
/// (measured: two 30 µs halves after a 15 µs serial gap took 68 µs instead of 30). Each other
/// thread runs a task that takes whatever work appears (`rayon::yield_now`) and otherwise spins,
/// until the pass ends.
///
/// Rayon runs such a task wherever a thread looks for work, also inside a job it is waiting
/// on, so that a spinning task can sit above a job that the pass needs. Two rules keep that
/// from blocking: a pass ends only when its spinning tasks have (so none is still spinning,
/// holding a job of the next pass, when that pass starts its own), and a task that has found
/// no work for `IDLE` stops anyway.
struct Hot {
    state: std::sync::Arc<HotState>,
}

#[derive(Default)]
struct HotState {
    done: std::sync::atomic::AtomicBool,
    /// Spinning tasks started and not yet stopped.
    running: std::sync::atomic::AtomicUsize,
}

impl Hot {
    /// How long a spinning task goes on without finding work.
    const IDLE: std::time::Duration = std::time::Duration::from_micros(500);

    fn start() -> Hot {
        use std::sync::atomic::Ordering::SeqCst;
        let state = std::sync::Arc::new(HotState::default());
        if rayon::current_num_threads() > 1 {
            let me = rayon::current_thread_index();
            let shared = state.clone();
            rayon::spawn_broadcast(move |ctx| {
                if Some(ctx.index()) == me {
                    return;
                }
                shared.running.fetch_add(1, SeqCst);
                let mut last = std::time::Instant::now();
                while !shared.done.load(SeqCst) {
                    if rayon::yield_now() == Some(rayon::Yield::Executed) {
                        last = std::time::Instant::now();
                    } else if last.elapsed() > Self::IDLE {
                        break;
                    } else {
                        std::hint::spin_loop();
                    }
                }
                shared.running.fetch_sub(1, SeqCst);
            });
        }
        Hot { state }
    }
}

impl Drop for Hot {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.done.store(true, SeqCst);
        // Every job of the pass is done: a running task stops at its next check (bounded, in
        // case it is inside some other work of the caller's).
        let start = std::time::Instant::now();
        while self.state.running.load(SeqCst) > 0 && start.elapsed() < Self::IDLE {
            std::hint::spin_loop();
        }
    }
}

impl MatNet {
    /// Builds the module from a description, with its weights, on `device`.
    /// As [`from_network`](Self::from_network), moving the values out of `net` rather than
    /// copying them: afterwards `net` describes the network without its values, like one read
    /// back from a saved network (also when building fails).
    pub fn from_network_owned(net: &mut Network, device: &Device) -> Result<MatNet, ModelError> {
        let values = net
            .tensors_mut()
            .into_iter()
            .filter(|t| !t.data.is_empty())
            .map(|t| {
                let key = &*t as *const crate::net::Tensor as usize;
                (key, std::mem::take(&mut t.data))
            })
            .collect();
        let _moved = ops::TakeGuard::new(values);
        Self::from_network(net, device)
    }

    pub fn from_network(net: &Network, device: &Device) -> Result<MatNet, ModelError> {
        let unsupported: Vec<(String, String, String)> = net
            .layers
            .iter()
            .filter_map(|l| match &l.kind {
                LayerKind::Unsupported { reason } => {
                    Some((l.name.clone(), l.class.clone(), reason.clone()))
                }
                LayerKind::Conv2d(c) if matches!(c.padding, PaddingMode::Same) => Some((
                    l.name.clone(),
                    l.class.clone(),
                    "'same' padding could not be resolved (unknown input size)".into(),
                )),
                _ => None,
            })
            .collect();
        if !unsupported.is_empty() {
            return Err(ModelError::Unsupported(unsupported));
        }
        let mut nodes = Vec::with_capacity(net.layers.len());
        for layer in &net.layers {
            let op = Op::build(layer, net, device)?;
            nodes.push(Node {
                op,
                inputs: ops::node_inputs(layer, net),
                name: layer.name.clone(),
                fast: None,
                concat_into: None,
            });
        }
        let output = net
            .outputs
            .first()
            .copied()
            .unwrap_or(nodes.len().saturating_sub(1));
        Ok(MatNet { nodes, output })
    }

    /// Runs the network on `[N, C, H, W]` input (features as `[N, C, 1, 1]`) and returns the
    /// output node's activation.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_node(input, self.output)
    }

    /// Runs the network up to node `target` and returns its activation (nodes after it, which
    /// cannot feed it in topological order, are skipped).
    pub fn forward_node(&self, input: Tensor<4>, target: usize) -> Tensor<4> {
        self.run(input, target, None)
    }

    /// As [`forward`](Self::forward), adding each node's wall time in milliseconds to
    /// `times[node]` (`times` has one entry per node). On the CPU backends the ops run when
    /// called, so this is each layer's own cost; on the GPU it is only the time to queue it.
    pub fn forward_timed(&self, input: Tensor<4>, times: &mut [f64]) -> Tensor<4> {
        self.run(input, self.output, Some(times))
    }

    /// The nodes' names, in the order of [`forward_timed`](Self::forward_timed)'s times.
    pub fn node_names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    fn run(&self, input: Tensor<4>, target: usize, times: Option<&mut [f64]>) -> Tensor<4> {
        if !self.nodes.iter().any(|n| n.fast.is_some()) {
            return self.run_here(input, target, times);
        }
        // With the CPU kernels, the whole pass runs on one of rayon's threads: each kernel's
        // parallel loop is then entered from inside the pool, instead of the caller's thread
        // handing it over and sleeping until it is done, twice per layer (at batch 1 that
        // hand-over cost SqueezeNet ~18 % of its time in the scheduler).
        if rayon::current_thread_index().is_none() {
            return rayon::scope(|_| {
                let _hot = Hot::start();
                self.run_here(input, target, times)
            });
        }
        let _hot = Hot::start();
        self.run_here(input, target, times)
    }

    fn run_here(
        &self,
        input: Tensor<4>,
        target: usize,
        mut times: Option<&mut [f64]>,
    ) -> Tensor<4> {
        let nodes = &self.nodes[..=target.min(self.nodes.len() - 1)];
        let mut acts: Vec<Option<Tensor<4>>> = vec![None; nodes.len()];
        // How many consumers still need each activation, to free memory early.
        let mut uses = vec![0usize; nodes.len()];
        for n in nodes {
            for &i in &n.inputs {
                uses[i] += 1;
            }
        }
        uses[nodes.len() - 1] += 1;
        // Concatenations whose convolutions write into them (prepare_cpu), by node.
        let mut concat_bufs: Vec<Option<cpu::ConcatBuf>> = (0..nodes.len()).map(|_| None).collect();
        for (k, node) in nodes.iter().enumerate() {
            if acts[k].is_some() {
                // Computed with the node before it (its ReLU, see `fused_train`).
                continue;
            }
            if let (None, Some((into, ..))) = (&node.fast, node.concat_into)
                && into < nodes.len()
            {
                // An identity between a convolution and the concatenation it writes into.
                continue;
            }
            if let Some(buf) = concat_bufs[k].take() {
                // Every input wrote its channels already.
                let device = input.device();
                acts[k] = Some(buf.into_tensor(&device));
                continue;
            }
            let ins: Vec<Tensor<4>> = if node.inputs.is_empty() {
                vec![input.clone()]
            } else {
                node.inputs
                    .iter()
                    .map(|&i| {
                        uses[i] -= 1;
                        let t = if uses[i] == 0 {
                            acts[i].take()
                        } else {
                            acts[i].clone()
                        };
                        t.expect("topological order guarantees inputs are computed")
                    })
                    .collect()
            };
            let t0 = std::time::Instant::now();
            if let Some(y) = self.fused_train(nodes, k, &ins, &uses) {
                acts[k + 1] = Some(y);
                if let Some(t) = times.as_deref_mut()
                    && let Some(slot) = t.get_mut(k)
                {
                    *slot += t0.elapsed().as_secs_f64() * 1e3;
                }
                continue;
            }
            acts[k] = match (&node.fast, node.concat_into) {
                (Some(f), Some((into, offset, channels))) if into < nodes.len() => {
                    let x = ins.into_iter().next().expect("one input");
                    cpu::conv2d_part(x, f, &mut concat_bufs[into], offset, channels);
                    None
                }
                (Some(f), _) => {
                    let mut ins = ins.into_iter();
                    let x = ins.next().expect("one input");
                    // A second input: the residual the convolution adds (prepare_cpu).
                    Some(match ins.next() {
                        Some(r) => cpu::conv2d_add(x, r, f),
                        None => cpu::conv2d(x, f),
                    })
                }
                (None, _) => Some(node.op.forward(ins)),
            };
            if let Some(t) = times.as_deref_mut()
                && let Some(slot) = t.get_mut(k)
            {
                *slot += t0.elapsed().as_secs_f64() * 1e3;
            }
        }
        acts[nodes.len() - 1].take().expect("output computed")
    }

    /// In training on the CPU: node `k`, a batch normalization or convolution whose only
    /// consumer is the ReLU at `k + 1`, computed together with it (`cpu::train::batch_norm_relu`
    /// and `conv2d_relu`: passes over the activation saved each way); the ReLU's output, or
    /// `None` where this does not apply.
    fn fused_train(
        &self,
        nodes: &[Node],
        k: usize,
        ins: &[Tensor<4>],
        uses: &[usize],
    ) -> Option<Tensor<4>> {
        let (Some(next), [x]) = (nodes.get(k + 1), ins) else {
            return None;
        };
        let relu = matches!(&next.op, Op::Func(f) if f.code == ops::RELU);
        if !relu || next.inputs != [k] || uses[k] != 1 {
            return None;
        }
        match &nodes[k].op {
            Op::BatchNorm(bn) => crate::cpu::train::batch_norm_relu(bn, x),
            Op::Conv(c) => crate::cpu::train::conv2d_relu(c, x),
            _ => None,
        }
    }

    /// The node whose output are the class scores before the softmax (the output node when the
    /// network ends without a softmax), walking back over output layers.
    pub fn logits_node(&self) -> usize {
        let mut k = self.output;
        loop {
            match &self.nodes[k].op {
                Op::Func(f) if f.code == ops::IDENTITY && self.nodes[k].inputs.len() == 1 => {
                    k = self.nodes[k].inputs[0]
                }
                Op::Func(f) if f.code == ops::SOFTMAX && self.nodes[k].inputs.len() == 1 => {
                    return self.nodes[k].inputs[0];
                }
                _ => return k,
            }
        }
    }

    /// Output as `[N, K]` for networks whose output is a vector per observation.
    pub fn forward_flat(&self, input: Tensor<4>) -> Tensor<2> {
        let out = self.forward(input);
        let [n, c, h, w] = out.dims();
        out.reshape([n, c * h * w])
    }
}

impl MatNet {
    /// Runs `batch` (row-major `[N, C, H, W]`) through the network in chunks of `batch_size`
    /// observations and returns the outputs as a row-major `[N, K]` buffer and K.
    /// `progress` is called with the number of observations done after each chunk.
    pub fn predict(
        &self,
        data: &[f32],
        shape: [usize; 4],
        batch_size: usize,
        device: &Device,
        mut progress: impl FnMut(usize),
    ) -> (Vec<f32>, usize) {
        let [n, c, h, w] = shape;
        let per = c * h * w;
        let batch_size = batch_size.max(1);
        let mut out = Vec::new();
        let mut k = 0;
        for start in (0..n).step_by(batch_size) {
            let end = (start + batch_size).min(n);
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    data[start * per..end * per].to_vec(),
                    [end - start, c, h, w],
                ),
                device,
            );
            let y = self.forward_flat(x);
            k = y.dims()[1];
            out.extend(tensor_values(y));
            progress(end);
        }
        (out, k)
    }
}

impl MatNet {
    /// As [`predict`](Self::predict), keeping the output's shape: returns a row-major
    /// `[N, C, H, W]` buffer and `[C, H, W]` (image-to-image networks give `H, W > 1`).
    pub fn predict_spatial(
        &self,
        data: &[f32],
        shape: [usize; 4],
        batch_size: usize,
        device: &Device,
        mut progress: impl FnMut(usize),
    ) -> (Vec<f32>, [usize; 3]) {
        let [n, c, h, w] = shape;
        let per = c * h * w;
        let batch_size = batch_size.max(1);
        let mut out = Vec::new();
        let mut chw = [0, 1, 1];
        for start in (0..n).step_by(batch_size) {
            let end = (start + batch_size).min(n);
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    data[start * per..end * per].to_vec(),
                    [end - start, c, h, w],
                ),
                device,
            );
            let y = self.forward(x);
            let [_, oc, oh, ow] = y.dims();
            chw = [oc, oh, ow];
            out.extend(tensor_values(y));
            progress(end);
        }
        (out, chw)
    }
}

/// One observation of a sequence network: a row-major `[C, T]` buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub data: Vec<f32>,
    pub channels: usize,
    pub steps: usize,
}

/// The output for one sequence: row-major `[T_out, K]` (time steps as rows), `T_out` = the
/// sequence's length for OutputMode 'sequence', 1 for 'last'.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceOutput {
    pub data: Vec<f32>,
    pub steps: usize,
    pub k: usize,
}

impl MatNet {
    /// Runs sequences through the network, batching sequences of equal length (at most
    /// `batch_size` at a time), and returns one output per sequence in the input order.
    /// `progress` gets the number of sequences done.
    pub fn predict_sequences(
        &self,
        seqs: &[Sequence],
        batch_size: usize,
        device: &Device,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<SequenceOutput>, ModelError> {
        // The first recurrent layer fixes the channel count (layers before it work per element).
        // (Not through sequence folding: image sequences are checked by their reader.)
        let channels = self
            .nodes
            .iter()
            .find_map(|n| match &n.op {
                Op::Rnn(r) => Some(Some(r.input_weights.dims()[1])),
                Op::RnnProjected(r) => Some(Some(r.input_size())),
                Op::Conv1d(c) => Some(Some(c.weight.dims()[1])),
                Op::SeqReshape(_) => Some(None),
                _ => None,
            })
            .flatten();
        for s in seqs {
            if s.data.len() != s.channels * s.steps || channels.is_some_and(|c| c != s.channels) {
                return Err(ModelError::InputShape {
                    expected: format!("[{}, T]", channels.unwrap_or(s.channels)),
                    found: vec![s.channels, s.steps],
                });
            }
        }
        ops::transformer::check_sequences(self, seqs)?;
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| (seqs[i].steps, seqs[i].channels, i));
        let mut out: Vec<Option<SequenceOutput>> = vec![None; seqs.len()];
        let mut done = 0;
        let mut start = 0;
        while start < order.len() {
            let first = &seqs[order[start]];
            if first.steps == 0 {
                return Err(ModelError::InputShape {
                    expected: "sequences of at least one time step".into(),
                    found: vec![first.channels, 0],
                });
            }
            if self.sequence_steps(first.steps).is_none() {
                let min = (1..=1 << 16).find(|&t| self.sequence_steps(t).is_some());
                return Err(ModelError::InputShape {
                    expected: match min {
                        Some(m) => format!("sequences of at least {m} time steps"),
                        None => "sequences long enough for the network's 1-D windows".into(),
                    },
                    found: vec![first.channels, first.steps],
                });
            }
            let mut end = start + 1;
            while end < order.len()
                && end - start < batch_size.max(1)
                && seqs[order[end]].steps == first.steps
                && seqs[order[end]].channels == first.channels
            {
                end += 1;
            }
            let (c, t) = (first.channels, first.steps);
            let mut buf = Vec::with_capacity((end - start) * c * t);
            for &i in &order[start..end] {
                buf.extend_from_slice(&seqs[i].data);
            }
            let x = Tensor::<4>::from_data(TensorData::new(buf, [end - start, c, 1, t]), device);
            let y = self.forward(x); // [n, K, 1, T_out]
            let [n, k, h, tw] = y.dims();
            let steps = h * tw;
            // → [n, T_out, K]
            let vals = tensor_values(y.reshape([n, k, steps]).swap_dims(1, 2));
            for (j, &i) in order[start..end].iter().enumerate() {
                out[i] = Some(SequenceOutput {
                    data: vals[j * steps * k..(j + 1) * steps * k].to_vec(),
                    steps,
                    k,
                });
            }
            done += end - start;
            progress(done);
            start = end;
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every sequence ran"))
            .collect())
    }
}

impl MatNet {
    /// Time steps of the output for a sequence of `t` steps, `None` when a 1-D convolution or
    /// pooling would get fewer steps than its window.
    pub fn sequence_steps(&self, t: usize) -> Option<usize> {
        let mut steps: Vec<Option<usize>> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let x = match n.inputs.first() {
                Some(&j) => steps.get(j).copied().flatten(),
                None => Some(t),
            };
            steps.push(x.and_then(|x| n.op.sequence_steps(x)));
        }
        steps.get(self.output).copied().flatten()
    }
}

/// A tensor's values as f32.
fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float tensors convert to f32")
}

impl MatNet {
    /// Copies the module's current parameters and statistics back into `net` (in the
    /// description's canonical layouts), so that exporters and saved descriptions see the
    /// weights of a fine-tuned or reloaded module.
    pub fn write_back(&self, net: &mut Network) {
        for (node, l) in self.nodes.iter().zip(net.layers.iter_mut()) {
            node.op.write_back(&mut l.kind);
        }
    }
}
