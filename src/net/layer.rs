//! The network description: layers with typed hyperparameters and weights in one canonical
//! layout. Framework-neutral: knows nothing of Burn, ONNX or PyTorch.
//!
//! Canonical layouts (row-major, `f32`), produced only by `net::layout`:
//! - convolution weight `[Cout, Cin/groups, kh, kw]`, bias `[Cout]`
//! - transposed convolution weight `[Cin, Cout/groups, kh, kw]`, bias `[Cout]`
//! - fully connected weight `[K, C*H*W]` whose columns follow an NCHW flatten (`c*H*W + h*W + w`),
//!   MATLAB's column-major flatten order folded in; bias `[K]`
//! - batch normalization mean, variance (not std), scale (gamma), offset (beta): `[C]`
//! - input normalization statistics `[C, H, W]`, `[C, 1, 1]` or `[1, 1, 1]` (broadcast over the input)
//! - recurrent weights as MATLAB stores them: input `[G*H, C]`, recurrent `[G*H, H]`, bias `[G*H]`,
//!   gate blocks in MATLAB's order (LSTM: input, forget, cell candidate, output; GRU: reset,
//!   update, candidate); a BiLSTM stacks the forward direction's blocks, then the backward's.
//! - 1-D convolution weight `[Cout, Cin, K]`, 1-D transposed convolution weight `[Cin, Cout, K]`
//!   (PyTorch's `Conv1d`/`ConvTranspose1d` layouts), bias `[Cout]`; layer normalization `[C]`
//! - projected recurrent layers: input weights `[G*H, InputProjectorSize]`, recurrent weights
//!   `[G*H, OutputProjectorSize]`, `InputProjector` `[C, InputProjectorSize]`, `OutputProjector`
//!   `[H, OutputProjectorSize]` (`layout::projector`)
//! - transformer layers as MATLAB stores them (`layout::matrix`/`vector`): self-attention
//!   `QueryWeights`/`KeyWeights` `[NumKeyChannels, C]`, `ValueWeights` `[NumValueChannels, C]`,
//!   `OutputWeights` `[OutputSize, NumValueChannels]`, biases `[rows]`; position embedding
//!   `[OutputSize, MaxPosition]`; word embedding `[Dimension, NumWords]`; embedding
//!   concatenation `[C]`.

use serde::{Deserialize, Serialize};

// The layer families' hyperparameter types, at their historical paths.
pub use super::layers::activation::Activation;
pub use super::layers::conv::{Conv1d, ConvTranspose1d, Padding1d};
pub use super::layers::conv::{Conv2d, ConvTranspose2d, FullyConnected};
pub use super::layers::io::Normalization;
pub use super::layers::norm::LayerNorm;
pub use super::layers::norm::{BatchNorm, GroupNorm, Lrn};
pub use super::layers::pool::Pool1d;
pub use super::layers::pool::{Pool2d, Unpool2d};
pub use super::layers::recurrent::Projected;
pub use super::layers::recurrent::Recurrent;
pub use super::layers::transformer::Transformer;

/// A dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub shape: Vec<usize>,
    #[serde(skip)]
    pub data: Vec<f32>,
    /// While a network is imported by [`import_owned`](super::import_owned): the stored array
    /// the values will be moved from (`data` is empty until then).
    #[serde(skip)]
    pub(crate) pending: Option<Pending>,
}

/// A tensor's values still in the decoded file: the stored `single` array whose buffer starts
/// at address `key`, to be reordered from MATLAB `dims` by `axes` (see
/// [`permute_col_major`](crate::mat::permute_col_major)).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub key: usize,
    pub dims: Vec<usize>,
    pub axes: Vec<usize>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor {
            shape,
            data,
            pending: None,
        }
    }
    /// The same values under another shape of as many elements (pending values stay pending).
    pub(crate) fn reshape(self, shape: Vec<usize>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), self.numel());
        Tensor { shape, ..self }
    }
    pub(crate) fn pending(shape: Vec<usize>, pending: Pending) -> Self {
        Tensor {
            shape,
            data: Vec::new(),
            pending: Some(pending),
        }
    }
    /// Element count from the shape (a tensor read from a saved description has its shape but
    /// no data: the values come from the Burn record).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A learnable parameter and MATLAB's per-parameter training factors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub value: Tensor,
    /// `LearnRateFactor` (0 freezes the parameter).
    pub lr_factor: f32,
    /// `L2Factor`.
    pub l2_factor: f32,
}

/// Activation shape without the batch dimension. Image data is `H x W x C` (as MATLAB reports
/// it); feature and sequence data have `h = w = 1` and `spatial = false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub spatial: bool,
}

impl Shape {
    pub fn image(h: usize, w: usize, c: usize) -> Self {
        Shape {
            h,
            w,
            c,
            spatial: true,
        }
    }
    pub fn features(c: usize) -> Self {
        Shape {
            h: 1,
            w: 1,
            c,
            spatial: false,
        }
    }
    pub fn numel(&self) -> usize {
        self.h * self.w * self.c
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.spatial {
            write!(f, "{}x{}x{}", self.h, self.w, self.c)
        } else {
            write!(f, "{}", self.c)
        }
    }
}

/// Explicit padding in MATLAB's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Padding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

/// How a layer's padding was specified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaddingMode {
    /// Explicit sizes (`PaddingSize`).
    Manual(Padding),
    /// 'same': resolved from the input size during shape inference.
    Same,
}

/// What a layer computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LayerKind {
    ImageInput {
        size: Shape,
        normalization: Normalization,
    },
    FeatureInput {
        size: usize,
        normalization: Normalization,
    },
    SequenceInput {
        /// Features per time step: `C`, or `H*W*C` for image sequences.
        size: usize,
        normalization: Normalization,
        /// The frame of an image sequence (`InputSize` `[H W C]`), `None` for vector sequences.
        /// Image sequences run as `[N, C*H*W, 1, T]`, each frame's features in `[C, H, W]`
        /// row-major order; `sequenceFoldingLayer` makes them `[N*T, C, H, W]` images.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frame: Option<Shape>,
    },
    Conv2d(Conv2d),
    ConvTranspose2d(ConvTranspose2d),
    FullyConnected(FullyConnected),
    BatchNorm(BatchNorm),
    GroupNorm(GroupNorm),
    Lrn(Lrn),
    Activation(Activation),
    MaxPool2d(Pool2d),
    AvgPool2d(Pool2d),
    GlobalAvgPool,
    GlobalMaxPool,
    Addition {
        inputs: usize,
    },
    Multiplication {
        inputs: usize,
    },
    /// Concatenation along channels.
    DepthConcat {
        inputs: usize,
    },
    /// Concatenation along MATLAB dimension `dim` (1 = H, 2 = W, 3 = C).
    Concat {
        dim: usize,
        inputs: usize,
    },
    Dropout {
        probability: f64,
    },
    Flatten,
    Resize2d {
        scale: Option<[f64; 2]>,
        output_size: Option<[usize; 2]>,
        method: String,
        transform: String,
    },
    Softmax,
    ClassificationOutput {
        classes: Vec<String>,
    },
    RegressionOutput,
    Lstm(Recurrent),
    Gru(Recurrent),
    /// `sequenceFoldingLayer`: a batch of image sequences → one image per time step (the
    /// `out` port; its `miniBatchSize` port feeds the matching unfolding layer).
    SequenceFolding,
    /// `sequenceUnfoldingLayer`: images back to sequences (inputs `in`, then `miniBatchSize`
    /// from the folding layer).
    SequenceUnfolding,
    /// 1-D layers over the time dimension of `C x T` sequences.
    Conv1d(Conv1d),
    ConvTranspose1d(ConvTranspose1d),
    MaxPool1d(Pool1d),
    AvgPool1d(Pool1d),
    /// Global pooling over time: `C x T` → `C`.
    GlobalAvgPool1d,
    GlobalMaxPool1d,
    /// `layerNormalizationLayer` (images, features and sequences).
    LayerNorm(LayerNorm),
    /// `lstmProjectedLayer`.
    LstmProjected(Projected),
    /// `gruProjectedLayer`.
    GruProjected(Projected),
    /// Transformer layers (position embeddings, self-attention, 1-D indexing, word embedding).
    Transformer(Transformer),
    /// Max unpooling: inputs `[x, the max pooling layer's input]` (see [`Unpool2d`]).
    MaxUnpool2d(Unpool2d),
    /// YOLO v2 transform with `anchors` anchor boxes (`net::layers::detect`).
    Yolov2Transform {
        anchors: usize,
    },
    /// YOLO v2 output (loss) layer: its input passes through at inference. `anchor_boxes`:
    /// `[height, width]` rows in pixels of the network input.
    Yolov2Output {
        anchor_boxes: Vec<[f64; 2]>,
        classes: Vec<String>,
    },
    /// A layer matcnn cannot convert: kept so that `inspect` shows the whole network.
    Unsupported {
        reason: String,
    },
}

/// One layer: its MATLAB name and class, what it computes, and where its inputs come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    /// The MATLAB class (`nnet.cnn.layer.Convolution2DLayer`) or MatConvNet type (`dagnn.Conv`, `conv`).
    pub class: String,
    pub kind: LayerKind,
    /// Producing layers, in port order (`in1`, `in2`, ...): indices into `Network::layers`.
    pub inputs: Vec<usize>,
    /// Output size, set by shape inference.
    pub output: Option<Shape>,
}

/// Which kind of MATLAB container the network came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    SeriesNetwork,
    DAGNetwork,
    DlNetwork,
    LayerGraph,
    LayerArray,
    MatConvNetSimpleNN,
    MatConvNetDagNN,
    /// A struct of a layer chain (`Layers`) and a box regression chain (`RegLayers`) branching
    /// off layer `BranchLayerIdx`: the networks of a 2017 `fasterRCNNObjectDetector`.
    BranchedLayers,
}

/// A whole network, layers in topological order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// The variable it was read from.
    pub variable: String,
    pub source: SourceKind,
    pub layers: Vec<Layer>,
    /// Indices of the layers whose outputs are the network's outputs.
    pub outputs: Vec<usize>,
    /// Class names of a classification network (empty otherwise).
    pub classes: Vec<String>,
    /// The object detector the network was found in (`yolov2ObjectDetector`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<Detector>,
    /// What import changed or left out, in words (e.g. a user-defined output layer dropped
    /// because it only computes a training loss). Shown by `inspect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Names of the layers whose padding (cropping) is MATLAB's 'same', resolved to explicit
    /// pads for the declared input size; [`Network::set_input_size`] resolves them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub same_padding: Vec<String>,
}

/// Metadata of an object detector that holds a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    /// MATLAB class of the detector object (`yolov2ObjectDetector`, `fasterRCNNObjectDetector`).
    pub class: String,
    /// `ModelName`, when stored.
    pub model_name: Option<String>,
    /// `ClassNames`, in the detector's order.
    pub class_names: Vec<String>,
    /// `AnchorBoxes` as MATLAB stores them: one `[height, width]` row per anchor, in pixels of
    /// the network input.
    pub anchor_boxes: Vec<[f64; 2]>,
    /// `TrainingImageSize` `[height, width]`, when stored.
    pub training_image_size: Option<[usize; 2]>,
}

impl Network {
    /// Every tensor of every layer (weights, statistics, normalization constants, states).
    pub fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        self.layers
            .iter_mut()
            .flat_map(|l| super::layers::tensors_mut(&mut l.kind))
            .collect()
    }
}
