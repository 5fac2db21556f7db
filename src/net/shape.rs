//! Shape inference with MATLAB's rules, and 'same' padding resolved to explicit pads.
//!
//! * Convolution and pooling: `out = floor((in + before + after - ((k - 1) d + 1)) / s) + 1`
//!   (no ceil mode in MATLAB).
//! * 'same': `out = ceil(in / s)`, total padding `max((out - 1) s + (k - 1) d + 1 - in, 0)`, top/left
//!   get `floor(total / 2)`, the extra row/column goes to the bottom/right (ONNX `SAME_UPPER`).
//! * Transposed convolution: `out = (in - 1) s + k - crop_before - crop_after`; 'same' cropping gives
//!   `out = in * s`, split like 'same' padding (odd side **[UNVERIFIED]**: no fixture has one).
//! * A spatial size of 0 means "any size" (MatConvNet networks store no input size); it propagates
//!   as 0 through spatial layers, and 'same' padding then stays unresolved.
//! * A layer whose output cannot be known (an unsupported layer, or anything after one) gets `None`.
//!
//! Whatever the file declares (`NumChannels`, `InputSize`, `OutputSize`, the `PaddingSize` MATLAB
//! stored for 'same' after training, the `[H, W, C]` of 4-D fully connected weights) must agree
//! with the inferred shapes; a disagreement is an error naming the layer.

use super::error::{Ctx, NetError};
use super::layer::{LayerKind, Network, Padding, PaddingMode, Shape};
use super::layers::pads_text;

/// Sizes the file declares for one layer, beyond those kept in its [`LayerKind`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    /// The `PaddingSize` (or `CroppingSize`) stored with mode 'same': must equal the resolved pads.
    pub same_padding: Option<Padding>,
    /// A stored `InputSize` (`[H W C]` or `[N]`) the layer's input must have.
    pub input_size: Option<Vec<usize>>,
    /// A stored `OutputSize` (`[1 1 K]`, `[K]`) the layer's output must have.
    pub output_size: Option<Vec<usize>>,
    /// The `[H, W, C]` that 4-D fully connected weights were stored for.
    pub fc_input_hwc: Option<[usize; 3]>,
    /// MatConvNet convolutions: the input channels per group stored in the filters
    /// (`size(W, 3)`); the number of groups is the input's channels divided by it.
    pub channels_per_group: Option<usize>,
}

/// Output length of a convolution or pooling window along one axis, or `None` when the padded
/// input is shorter than the (dilated) window. An input of 0 ("any size") gives 0.
pub fn conv_output(
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    before: usize,
    after: usize,
) -> Option<usize> {
    if input == 0 {
        return Some(0);
    }
    let window = (k.max(1) - 1) * dilation.max(1) + 1;
    let padded = input + before + after;
    if padded < window || stride == 0 {
        return None;
    }
    Some((padded - window) / stride + 1)
}

/// MATLAB's 'same' padding along one axis: `(before, after)`, the extra one after.
pub fn same_padding(input: usize, k: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let s = stride.max(1);
    let out = input.div_ceil(s);
    let window = (k.max(1) - 1) * dilation.max(1) + 1;
    let total = ((out.max(1) - 1) * s + window).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// Output length of a transposed convolution along one axis, or `None` when the cropping exceeds
/// the full output.
pub fn transposed_output(
    input: usize,
    k: usize,
    stride: usize,
    before: usize,
    after: usize,
) -> Option<usize> {
    if input == 0 {
        return Some(0);
    }
    ((input - 1) * stride + k).checked_sub(before + after)
}

/// 'same' cropping of a transposed convolution (output `in * s`): `(before, after)`.
pub fn same_cropping(k: usize, stride: usize) -> (usize, usize) {
    let total = k.saturating_sub(stride);
    (total / 2, total - total / 2)
}

fn pads_2d(input: Shape, k: [usize; 2], s: [usize; 2], d: [usize; 2]) -> Padding {
    let (top, bottom) = same_padding(input.h, k[0], s[0], d[0]);
    let (left, right) = same_padding(input.w, k[1], s[1], d[1]);
    Padding {
        top,
        bottom,
        left,
        right,
    }
}

/// Resolves 'same' from the input size (when known) and checks it against the stored pads.
pub(crate) fn resolve_padding(
    mode: &mut PaddingMode,
    input: Shape,
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    declared: &Declared,
    ctx: &Ctx,
) -> Result<Option<Padding>, NetError> {
    match *mode {
        PaddingMode::Manual(p) => Ok(Some(p)),
        PaddingMode::Same if input.h == 0 || input.w == 0 => Ok(None),
        PaddingMode::Same => {
            let p = pads_2d(input, k, s, d);
            if let Some(stored) = declared.same_padding
                && stored != p
            {
                return Err(ctx.shape(
                    format!("'same' padding for a {input} input"),
                    pads_text(&p),
                    format!("PaddingSize {}", pads_text(&stored)),
                ));
            }
            *mode = PaddingMode::Manual(p);
            Ok(Some(p))
        }
    }
}

/// A spatial output `[oh, ow]` of a window layer, or an error naming the input and window.
pub(crate) fn window_output(
    input: Shape,
    pad: Option<Padding>,
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    ctx: &Ctx,
) -> Result<(usize, usize), NetError> {
    let Some(p) = pad else {
        // 'same' with an unknown input size: ceil(in / s), and the input is "any size".
        return Ok((0, 0));
    };
    let oh = conv_output(input.h, k[0], s[0], d[0], p.top, p.bottom);
    let ow = conv_output(input.w, k[1], s[1], d[1], p.left, p.right);
    match (oh, ow) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(ctx.shape(
            "input size",
            format!(
                "at least the {}x{} window (padding {})",
                k[0],
                k[1],
                pads_text(&p)
            ),
            input.to_string(),
        )),
    }
}

pub(crate) fn check_channels(
    field: &mut usize,
    what: &str,
    input_c: usize,
    ctx: &Ctx,
) -> Result<(), NetError> {
    if *field == 0 {
        *field = input_c;
    } else if input_c != 0 && *field != input_c {
        return Err(ctx.shape(
            what,
            format!("{field} channels"),
            format!("an input with {input_c} channels"),
        ));
    }
    Ok(())
}

/// Runs shape inference over a network whose layers are in topological order: sets every layer's
/// `output`, fills channel counts left 'auto' (0), and turns 'same' padding into explicit pads
/// where the input size is known. `declared[i]` (if present) holds layer `i`'s stored sizes.
pub fn infer(net: &mut Network, declared: &[Declared]) -> Result<(), NetError> {
    let default = Declared::default();
    for i in 0..net.layers.len() {
        let ins: Vec<Option<Shape>> = net.layers[i]
            .inputs
            .iter()
            .map(|&j| if j < i { net.layers[j].output } else { None })
            .collect();
        if let Some(&j) = net.layers[i].inputs.iter().find(|&&j| j >= i) {
            return Err(NetError::Graph {
                variable: net.variable.clone(),
                container: format!("{:?}", net.source),
                message: format!(
                    "layer '{}' takes its input from layer {} which does not come before it",
                    net.layers[i].name, j
                ),
            });
        }
        let layer = &mut net.layers[i];
        let ctx = Ctx::new(&net.variable, &layer.name, &layer.class);
        let decl = declared.get(i).unwrap_or(&default);
        let was_same = has_same_padding(&layer.kind);
        let out = super::layers::output(&mut layer.kind, &ins, decl, &ctx)?;
        if was_same && !has_same_padding(&layer.kind) && !net.same_padding.contains(&layer.name) {
            net.same_padding.push(layer.name.clone());
        }
        if let (Some(o), Some(want)) = (out, &decl.output_size) {
            let got = if want.len() == 1 {
                vec![o.numel()]
            } else {
                vec![o.h, o.w, o.c]
            };
            let want_full: Vec<usize> = if want.len() == 1 {
                want.clone()
            } else {
                want.iter().copied().chain([1, 1, 1]).take(3).collect()
            };
            if o.h != 0 && o.w != 0 && got != want_full {
                return Err(ctx.shape(
                    "output size",
                    format!("OutputSize {want:?}"),
                    o.to_string(),
                ));
            }
        }
        layer.output = out;
    }
    Ok(())
}

/// Whether a layer's padding (a transposed convolution's cropping) is 'same' and unresolved.
fn has_same_padding(kind: &LayerKind) -> bool {
    match kind {
        LayerKind::Conv2d(c) => c.padding == PaddingMode::Same,
        LayerKind::ConvTranspose2d(c) => c.cropping == PaddingMode::Same,
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => p.padding == PaddingMode::Same,
        _ => false,
    }
}

/// Sets a layer's resolved 'same' padding back to 'same', for [`Network::set_input_size`].
fn reset_same_padding(kind: &mut LayerKind) {
    match kind {
        LayerKind::Conv2d(c) => c.padding = PaddingMode::Same,
        LayerKind::ConvTranspose2d(c) => c.cropping = PaddingMode::Same,
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => p.padding = PaddingMode::Same,
        _ => {}
    }
}

/// Why an image network only takes the input size it declares (`None`: it takes any size).
/// A fully connected or flatten layer fixes the size when its input at the declared size is
/// more than 1x1 (one after a global pooling does not), and so does a per-pixel normalization
/// mean; a spatial input size of 0 (MatConvNet) is open unless such a layer follows.
pub fn size_fixed_by(net: &Network) -> Option<String> {
    let input = net.input()?;
    let LayerKind::ImageInput {
        size,
        normalization,
    } = &input.kind
    else {
        return Some(format!("'{}' does not take images", input.name));
    };
    use super::layers::io::Normalization as N;
    let tensors: Vec<&super::layer::Tensor> = match normalization {
        N::None => vec![],
        N::ZeroCenter { mean } => vec![mean],
        N::ZScore { mean, std } => vec![mean, std],
        N::RescaleSymmetric { min, max } | N::RescaleZeroOne { min, max } => vec![min, max],
    };
    let per_pixel = tensors
        .iter()
        .any(|t| t.shape.iter().product::<usize>() > size.c.max(1));
    if per_pixel {
        return Some(format!(
            "the {} normalization of '{}' has a value per pixel",
            normalization.name(),
            input.name
        ));
    }
    net.layers.iter().find_map(|l| {
        let fixing = matches!(l.kind, LayerKind::FullyConnected(_) | LayerKind::Flatten);
        let inp = l.inputs.first().and_then(|&j| net.layers.get(j)?.output);
        match inp {
            Some(s) if fixing && s.spatial && (s.h != 1 || s.w != 1) => Some(format!(
                "layer '{}' ({}) takes a {} input",
                l.name,
                l.class,
                describe(&Some(s))
            )),
            None if fixing => Some(format!(
                "layer '{}' ({}) has an unknown input",
                l.name, l.class
            )),
            _ => None,
        }
    })
}

impl Network {
    /// Whether the network takes images of any height and width (see [`size_fixed_by`]).
    pub fn open_size(&self) -> bool {
        size_fixed_by(self).is_none()
    }

    /// The input size an image network declares, `(H, W)`; 0 means any size.
    pub fn declared_input_size(&self) -> Option<(usize, usize)> {
        match &self.input()?.kind {
            LayerKind::ImageInput { size, .. } => Some((size.h, size.w)),
            _ => None,
        }
    }

    /// Prepares the description for `h x w` inputs: for a network of open size, sets the input
    /// layer's size, resolves 'same' padding again for it and infers every shape; a network
    /// that fixes its size accepts only the size it declares (the error names both sizes).
    pub fn set_input_size(&mut self, h: usize, w: usize) -> Result<(), NetError> {
        let ctx = match self.input() {
            Some(l) => Ctx::new(&self.variable, &l.name, &l.class),
            None => Ctx::new(&self.variable, "", ""),
        };
        let Some((dh, dw)) = self.declared_input_size() else {
            return Err(ctx.shape(
                "input size",
                "a network with an image input",
                format!("{h}x{w} images"),
            ));
        };
        if (dh, dw) == (h, w) {
            return Ok(());
        }
        if let Some(why) = size_fixed_by(self) {
            return Err(ctx.shape(
                "input size",
                format!("{dh}x{dw} ({why})"),
                format!("{h}x{w}"),
            ));
        }
        if h == 0 || w == 0 {
            return Err(ctx.shape("input size", "a non-empty image", format!("{h}x{w}")));
        }
        let same = self.same_padding.clone();
        for l in &mut self.layers {
            match &mut l.kind {
                LayerKind::ImageInput { size, .. } => {
                    size.h = h;
                    size.w = w;
                }
                k if same.contains(&l.name) => reset_same_padding(k),
                _ => {}
            }
        }
        infer(self, &[])?;
        if let Some(why) = size_fixed_by(self) {
            return Err(ctx.shape(
                "input size",
                format!("{dh}x{dw} ({why} at {h}x{w})"),
                format!("{h}x{w}"),
            ));
        }
        Ok(())
    }
}

/// The shapes of a layer's `n` inputs (port order): `None` when one is unknown or none is
/// connected, an error when another number is connected.
pub(crate) fn known_inputs(
    ins: &[Option<Shape>],
    n: usize,
    ctx: &Ctx,
) -> Result<Option<Vec<Shape>>, NetError> {
    if ins.len() != n && !(ins.is_empty()) {
        return Err(ctx.shape("number of inputs", n.to_string(), ins.len().to_string()));
    }
    if ins.is_empty() || ins.iter().any(|s| s.is_none()) {
        return Ok(None);
    }
    Ok(Some(
        ins.iter()
            .map(|s| s.unwrap_or(Shape::features(0)))
            .collect(),
    ))
}

/// The shape of a one-input layer's input (`None` when unknown): also the output of a layer that
/// keeps its input's shape.
pub(crate) fn one_input(ins: &[Option<Shape>], ctx: &Ctx) -> Result<Option<Shape>, NetError> {
    Ok(known_inputs(ins, 1, ctx)?.and_then(|s| s.first().copied()))
}

/// A shape as MATLAB writes it (`28x28x1`), `?` for an unknown spatial size, or "unknown".
pub fn describe(s: &Option<Shape>) -> String {
    match s {
        None => "unknown".into(),
        Some(s) if s.spatial && (s.h == 0 || s.w == 0) => format!("?x?x{}", s.c),
        Some(s) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::layer::{
        Conv2d, FullyConnected, Layer, LayerKind, Normalization, Pool2d, SourceKind,
    };

    #[test]
    fn output_size_formula() {
        assert_eq!(conv_output(28, 3, 1, 1, 1, 1), Some(28));
        assert_eq!(conv_output(28, 2, 2, 1, 0, 0), Some(14));
        assert_eq!(conv_output(227, 3, 2, 1, 0, 0), Some(113));
        assert_eq!(conv_output(113, 3, 2, 1, 0, 0), Some(56));
        // Floor, not ceil: 55 - 3 = 52 / 2 + 1 = 27.
        assert_eq!(conv_output(55, 3, 2, 1, 0, 1), Some(27));
        // Dilation 2 makes a 3-tap kernel 5 wide.
        assert_eq!(conv_output(10, 3, 1, 2, 0, 0), Some(6));
        // eegnet: 1x10 conv over 6000, then stride 3.
        assert_eq!(conv_output(6000, 10, 1, 1, 0, 0), Some(5991));
        assert_eq!(conv_output(5991, 1, 3, 1, 0, 0), Some(1997));
        assert_eq!(conv_output(2, 3, 1, 1, 0, 0), None);
        assert_eq!(conv_output(0, 3, 1, 1, 1, 1), Some(0));
    }

    #[test]
    fn same_padding_stride_one_is_symmetric_for_odd_kernels() {
        assert_eq!(same_padding(28, 3, 1, 1), (1, 1));
        assert_eq!(same_padding(28, 5, 1, 1), (2, 2));
        assert_eq!(same_padding(28, 1, 1, 1), (0, 0));
        // Even kernel: odd total, the extra one at the bottom/right.
        assert_eq!(same_padding(28, 4, 1, 1), (1, 2));
        // Dilation: effective kernel (3-1)*2+1 = 5.
        assert_eq!(same_padding(20, 3, 1, 2), (2, 2));
    }

    #[test]
    fn same_padding_odd_totals_with_stride_two() {
        // fuma28-speech max pools 3x3 stride 2: 98x32 → [0 1 0 1], 49x16 → [1 1 0 1] as stored.
        assert_eq!(same_padding(98, 3, 2, 1), (0, 1));
        assert_eq!(same_padding(32, 3, 2, 1), (0, 1));
        assert_eq!(same_padding(49, 3, 2, 1), (1, 1));
        assert_eq!(same_padding(16, 3, 2, 1), (0, 1));
        // CONVERSION.md: odd input, kernels 8 and 4, stride 2 → [3 4] and [1 2].
        assert_eq!(same_padding(75, 8, 2, 1), (3, 4));
        assert_eq!(same_padding(75, 4, 2, 1), (1, 2));
        // Output is ceil(in / s) in every case.
        for input in 1..40 {
            for k in 1..7 {
                for s in 1..4 {
                    let (a, b) = same_padding(input, k, s, 1);
                    assert!(b == a || b == a + 1);
                    assert_eq!(
                        conv_output(input, k, s, 1, a, b),
                        Some(input.div_ceil(s)),
                        "in {input} k {k} s {s}"
                    );
                }
            }
        }
        // A stride larger than the kernel can need no padding at all.
        assert_eq!(same_padding(10, 1, 3, 1), (0, 0));
    }

    #[test]
    fn transposed_output_and_same_cropping() {
        assert_eq!(transposed_output(7, 4, 2, 1, 1), Some(14));
        assert_eq!(same_cropping(4, 2), (1, 1));
        assert_eq!(same_cropping(3, 2), (0, 1));
        let (a, b) = same_cropping(3, 2);
        assert_eq!(transposed_output(7, 3, 2, a, b), Some(14));
        assert_eq!(transposed_output(1, 2, 1, 2, 1), None);
    }

    fn layer(name: &str, kind: LayerKind, inputs: Vec<usize>) -> Layer {
        Layer {
            name: name.into(),
            class: "test".into(),
            kind,
            inputs,
            output: None,
        }
    }

    fn net(layers: Vec<Layer>) -> Network {
        Network {
            variable: "net".into(),
            source: SourceKind::DAGNetwork,
            layers,
            outputs: vec![],
            classes: vec![],
            detector: None,
            notes: Vec::new(),
            same_padding: Vec::new(),
        }
    }

    fn conv(k: usize, s: usize, filters: usize, padding: PaddingMode) -> LayerKind {
        LayerKind::Conv2d(Conv2d {
            filter: [k, k],
            in_channels: 0,
            filters,
            stride: [s, s],
            dilation: [1, 1],
            groups: 1,
            padding,
            weights: None,
            bias: None,
        })
    }

    #[test]
    fn infer_resolves_same_and_checks_stored_pads() {
        let input = LayerKind::ImageInput {
            size: Shape::image(98, 32, 1),
            normalization: Normalization::None,
        };
        let pool = LayerKind::MaxPool2d(Pool2d {
            size: [3, 3],
            stride: [2, 2],
            padding: PaddingMode::Same,
            count_include_pad: true,
        });
        let mut n = net(vec![
            layer("in", input.clone(), vec![]),
            layer("conv", conv(3, 1, 12, PaddingMode::Same), vec![0]),
            layer("pool", pool.clone(), vec![1]),
        ]);
        let decl = vec![
            Declared::default(),
            Declared {
                same_padding: Some(Padding {
                    top: 1,
                    bottom: 1,
                    left: 1,
                    right: 1,
                }),
                ..Default::default()
            },
            Declared {
                same_padding: Some(Padding {
                    top: 0,
                    bottom: 1,
                    left: 0,
                    right: 1,
                }),
                ..Default::default()
            },
        ];
        infer(&mut n, &decl).unwrap();
        assert_eq!(n.layers[1].output, Some(Shape::image(98, 32, 12)));
        assert_eq!(n.layers[2].output, Some(Shape::image(49, 16, 12)));
        match &n.layers[2].kind {
            LayerKind::MaxPool2d(p) => assert_eq!(
                p.padding,
                PaddingMode::Manual(Padding {
                    top: 0,
                    bottom: 1,
                    left: 0,
                    right: 1
                })
            ),
            _ => unreachable!(),
        }
        match &n.layers[1].kind {
            LayerKind::Conv2d(c) => assert_eq!(c.in_channels, 1),
            _ => unreachable!(),
        }
        // A stored pad that disagrees names the layer.
        let mut n = net(vec![
            layer("in", input, vec![]),
            layer("pool", pool, vec![0]),
        ]);
        let decl = vec![
            Declared::default(),
            Declared {
                same_padding: Some(Padding {
                    top: 1,
                    bottom: 1,
                    left: 1,
                    right: 1,
                }),
                ..Default::default()
            },
        ];
        let e = infer(&mut n, &decl).unwrap_err().to_string();
        assert!(e.contains("'pool'") && e.contains("[0 1 0 1]"), "{e}");
    }

    #[test]
    fn infer_concat_add_and_fc() {
        let input = LayerKind::ImageInput {
            size: Shape::image(8, 8, 3),
            normalization: Normalization::None,
        };
        let fc = LayerKind::FullyConnected(FullyConnected {
            outputs: 10,
            weights: None,
            bias: None,
        });
        let mut n = net(vec![
            layer("in", input.clone(), vec![]),
            layer(
                "a",
                conv(1, 1, 4, PaddingMode::Manual(Padding::default())),
                vec![0],
            ),
            layer("b", conv(3, 1, 6, PaddingMode::Same), vec![0]),
            layer("cat", LayerKind::DepthConcat { inputs: 2 }, vec![1, 2]),
            layer("gap", LayerKind::GlobalAvgPool, vec![3]),
            layer("fc", fc.clone(), vec![4]),
        ]);
        let mut decl = vec![Declared::default(); 6];
        decl[5].input_size = Some(vec![1, 1, 12]);
        decl[5].output_size = Some(vec![1, 1, 10]);
        let e = infer(&mut n, &decl).unwrap_err().to_string();
        assert!(e.contains("'fc'") && e.contains("InputSize"), "{e}");
        decl[5].input_size = Some(vec![1, 1, 10]);
        infer(&mut n, &decl).unwrap();
        assert_eq!(n.layers[3].output, Some(Shape::image(8, 8, 10)));
        assert_eq!(n.layers[5].output, Some(Shape::image(1, 1, 10)));

        // Addition of different sizes is an error naming the layer.
        let mut n = net(vec![
            layer("in", input, vec![]),
            layer(
                "a",
                conv(1, 1, 4, PaddingMode::Manual(Padding::default())),
                vec![0],
            ),
            layer("b", conv(3, 2, 4, PaddingMode::Same), vec![0]),
            layer("add", LayerKind::Addition { inputs: 2 }, vec![1, 2]),
        ]);
        let e = infer(&mut n, &[]).unwrap_err().to_string();
        assert!(e.contains("'add'") && e.contains("4x4x4"), "{e}");
    }

    #[test]
    fn unknown_shapes_propagate_as_none() {
        let mut n = net(vec![
            layer(
                "in",
                LayerKind::FeatureInput {
                    size: 1000,
                    normalization: Normalization::None,
                },
                vec![],
            ),
            layer("f", LayerKind::Unsupported { reason: "x".into() }, vec![0]),
            layer(
                "relu",
                LayerKind::Activation(crate::net::layer::Activation::Relu),
                vec![1],
            ),
            layer(
                "fc",
                LayerKind::FullyConnected(FullyConnected {
                    outputs: 6,
                    weights: None,
                    bias: None,
                }),
                vec![2],
            ),
        ]);
        infer(&mut n, &[]).unwrap();
        assert_eq!(n.layers[1].output, None);
        assert_eq!(n.layers[2].output, None);
        assert_eq!(n.layers[3].output, Some(Shape::features(6)));
    }
}
