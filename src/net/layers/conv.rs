//! Convolution-like layers: 2-D convolution (plain, grouped, channel-wise), transposed
//! convolution and fully connected layers.

use serde::{Deserialize, Serialize};

use crate::net::error::{Ctx, NetError};
use crate::net::fields::{self, Fields};
use crate::net::layer::{LayerKind, Padding, PaddingMode, Param, Shape, Tensor};
use crate::net::layout;
use crate::net::matconvnet::{Params, get};
use crate::net::shape::{self, Declared};

use super::{
    Imported, Names, dlt_padding, padding_text, pads_text, pair_text, param_numel, param_tensor,
    plural, unsupported,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2d {
    /// `[kh, kw]`.
    pub filter: [usize; 2],
    pub in_channels: usize,
    pub filters: usize,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub padding: PaddingMode,
    /// Canonical `[Cout, Cin/groups, kh, kw]`; None in untrained layer arrays.
    pub weights: Option<Param>,
    pub bias: Option<Param>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvTranspose2d {
    pub filter: [usize; 2],
    pub in_channels: usize,
    pub filters: usize,
    pub stride: [usize; 2],
    pub groups: usize,
    /// Output cropping ('same' crops so that out = in * stride).
    pub cropping: PaddingMode,
    /// Canonical `[Cin, Cout/groups, kh, kw]`.
    pub weights: Option<Param>,
    pub bias: Option<Param>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullyConnected {
    pub outputs: usize,
    /// Canonical `[K, C*H*W]` (NCHW flatten order).
    pub weights: Option<Param>,
    pub bias: Option<Param>,
}

pub const CONV_TRANSPOSE_2D: Names = Names {
    kind: "ConvTranspose2d",
    stem: "transposed-conv",
};
pub const FULLY_CONNECTED: Names = Names {
    kind: "FullyConnected",
    stem: "fc",
};

impl Conv2d {
    pub(crate) fn names(&self) -> Names {
        Names {
            kind: "Conv2d",
            stem: if self.groups != 1 {
                "groupedconv"
            } else {
                "conv"
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        let mut s = format!(
            "{}x{} conv, {} filters",
            self.filter[0], self.filter[1], self.filters
        );
        if self.groups != 1 {
            s += &format!(", {} groups", self.groups);
        }
        s += &format!(", stride {}", pair_text(self.stride));
        if self.dilation != [1, 1] {
            s += &format!(", dilation {}", pair_text(self.dilation));
        }
        s + &format!(", padding {}", padding_text(&self.padding))
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        param_tensor(&mut self.weights)
            .into_iter()
            .chain(param_tensor(&mut self.bias))
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.weights) + param_numel(&self.bias)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.weights.is_some()
    }

    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        decl: &Declared,
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(None);
        };
        let c = self;
        if let Some(cpg) = decl.channels_per_group
            && c.in_channels == 0
            && x.c != 0
        {
            if cpg == 0 || !x.c.is_multiple_of(cpg) || !c.filters.is_multiple_of((x.c / cpg).max(1))
            {
                return Err(ctx.shape(
                    "input channels",
                    format!(
                        "a multiple of the filters' depth {cpg} that divides the {} filters into groups",
                        c.filters
                    ),
                    format!("{} channels", x.c),
                ));
            }
            c.groups = x.c / cpg;
        }
        shape::check_channels(&mut c.in_channels, "NumChannels", x.c, ctx)?;
        if c.groups == 0 {
            // 'channel-wise' grouped convolution: one group per input channel.
            c.groups = x.c;
        }
        let pad =
            shape::resolve_padding(&mut c.padding, x, c.filter, c.stride, c.dilation, decl, ctx)?;
        let (h, w) = shape::window_output(x, pad, c.filter, c.stride, c.dilation, ctx)?;
        Ok(Some(Shape::image(h, w, c.filters)))
    }
}

impl ConvTranspose2d {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}x{} transposed conv, {}, stride {}, cropping {}",
            self.filter[0],
            self.filter[1],
            plural(self.filters, "filter"),
            pair_text(self.stride),
            padding_text(&self.cropping)
        )
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        param_tensor(&mut self.weights)
            .into_iter()
            .chain(param_tensor(&mut self.bias))
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.weights) + param_numel(&self.bias)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.weights.is_some()
    }

    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        decl: &Declared,
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(None);
        };
        let c = self;
        shape::check_channels(&mut c.in_channels, "NumChannels", x.c, ctx)?;
        let crop = match c.cropping {
            PaddingMode::Manual(p) => Some(p),
            PaddingMode::Same if x.h == 0 || x.w == 0 => None,
            PaddingMode::Same => {
                let (top, bottom) = shape::same_cropping(c.filter[0], c.stride[0]);
                let (left, right) = shape::same_cropping(c.filter[1], c.stride[1]);
                let p = Padding {
                    top,
                    bottom,
                    left,
                    right,
                };
                if let Some(stored) = decl.same_padding
                    && stored != p
                {
                    return Err(ctx.shape(
                        "'same' cropping",
                        pads_text(&p),
                        format!("CroppingSize {}", pads_text(&stored)),
                    ));
                }
                c.cropping = PaddingMode::Manual(p);
                Some(p)
            }
        };
        let (h, w) = match crop {
            None => (0, 0),
            Some(p) => {
                let h = shape::transposed_output(x.h, c.filter[0], c.stride[0], p.top, p.bottom);
                let w = shape::transposed_output(x.w, c.filter[1], c.stride[1], p.left, p.right);
                match (h, w) {
                    (Some(h), Some(w)) => (h, w),
                    _ => {
                        return Err(ctx.shape(
                            "cropping",
                            format!("less than the output of a {x} input"),
                            pads_text(&p),
                        ));
                    }
                }
            }
        };
        Ok(Some(Shape::image(h, w, c.filters)))
    }
}

impl FullyConnected {
    pub(crate) fn describe(&self) -> String {
        format!("{} fully connected", self.outputs)
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        param_tensor(&mut self.weights)
            .into_iter()
            .chain(param_tensor(&mut self.bias))
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.weights) + param_numel(&self.bias)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.weights.is_some()
    }

    /// The output is known even when the input is not.
    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        decl: &Declared,
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let fc = self;
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(Some(if decl.fc_input_hwc.is_some() {
                Shape::image(1, 1, fc.outputs)
            } else {
                Shape::features(fc.outputs)
            }));
        };
        if x.h != 0 && x.w != 0 {
            if let Some(w) = &fc.weights
                && w.value.shape.get(1) != Some(&x.numel())
            {
                return Err(ctx.shape(
                    "input size",
                    format!(
                        "{} elements (Weights {:?})",
                        w.value.shape.get(1).copied().unwrap_or(0),
                        w.value.shape
                    ),
                    format!("{x} = {} elements", x.numel()),
                ));
            }
            if let Some([h, w, c]) = decl.fc_input_hwc
                && (h, w, c) != (x.h, x.w, x.c)
            {
                return Err(ctx.shape(
                    "input size",
                    format!("{h}x{w}x{c} (4-D Weights)"),
                    x.to_string(),
                ));
            }
            if let Some(want) = &decl.input_size {
                let ok = match want.as_slice() {
                    [n] => *n == x.numel(),
                    [h, w] => (*h, *w, 1) == (x.h, x.w, x.c),
                    [h, w, c, ..] => (*h, *w, *c) == (x.h, x.w, x.c),
                    _ => true,
                };
                if !ok {
                    return Err(ctx.shape(
                        "input size",
                        format!("InputSize {want:?}"),
                        x.to_string(),
                    ));
                }
            }
        }
        Ok(Some(if x.spatial {
            Shape::image(1, 1, fc.outputs)
        } else {
            Shape::features(fc.outputs)
        }))
    }
}

// Deep Learning Toolbox import.

/// Convolution, transposed convolution and fully connected layer classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, declared: &mut Declared) -> Imported {
    match short {
        "Convolution2DLayer" | "GroupedConvolution2DLayer" => conv2d(short, f, declared),
        "TransposedConvolution2DLayer" => conv_transpose2d(f, declared),
        "FullyConnectedLayer" => fully_connected(f, declared),
        "Convolution1DLayer" => conv1d(f),
        "TransposedConvolution1DLayer" => conv_transpose1d(f),
        _ => Ok(None),
    }
}

fn conv2d(short: &str, f: &Fields, declared: &mut Declared) -> Imported {
    if let Some(v) = nonzero_padding_value(f) {
        return unsupported(format!("PaddingValue {v} (only zero padding is supported)"));
    }
    let filter = f.pair("FilterSize")?;
    let stride = f.pair_or("Stride", [1, 1])?;
    let dilation = f.pair_or("DilationFactor", [1, 1])?;
    let padding = dlt_padding(f, "PaddingMode", "PaddingSize", declared)?;
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
            let cpg = d.get(2).copied().unwrap_or(1);
            // MATLAB may merge [F/G, G] into one dim (11x1x1x16 for 11x1x1x2x8): the element
            // count then gives G.
            let per_group = kh * kw * cpg * fpg;
            let groups = match d.get(4) {
                Some(&g) => g,
                None if per_group > 0 && w.value.numel() % per_group == 0 => {
                    w.value.numel() / per_group
                }
                None => 1,
            };
            (cpg, groups)
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
            return unsupported("channel-wise grouped convolution without trained weights".into());
        }
    }
    bias = match &bias_ref {
        Some(p) => {
            Some(p.with(layout::vector(p.value, filters).map_err(|e| f.layout_err("Bias", e))?))
        }
        None => None,
    };
    Ok(Some(LayerKind::Conv2d(Conv2d {
        filter,
        in_channels,
        filters,
        stride,
        dilation,
        groups,
        padding,
        weights,
        bias,
    })))
}

fn conv_transpose2d(f: &Fields, declared: &mut Declared) -> Imported {
    let filter = f.pair("FilterSize")?;
    let filters = f.usize("NumFilters")?;
    let weights_ref = f.param("Weights")?;
    let stored_cin = weights_ref
        .as_ref()
        .map(|w| w.value.dims.get(3).copied().unwrap_or(1));
    let in_channels = f.opt_usize("NumChannels")?.or(stored_cin).unwrap_or(0);
    let stride = f.pair_or("Stride", [1, 1])?;
    let cropping = dlt_padding(f, "CroppingMode", "CroppingSize", declared)?;
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
        Some(p) => {
            Some(p.with(layout::vector(p.value, filters).map_err(|e| f.layout_err("Bias", e))?))
        }
        None => None,
    };
    Ok(Some(LayerKind::ConvTranspose2d(ConvTranspose2d {
        filter,
        in_channels,
        filters,
        stride,
        groups: 1,
        cropping,
        weights,
        bias,
    })))
}

fn fully_connected(f: &Fields, declared: &mut Declared) -> Imported {
    let out = f.opt_counts("OutputSize")?.unwrap_or_default();
    let outputs = match out.as_slice() {
        [k] => *k,
        [1, 1, k] => *k,
        _ => {
            return Err(f.err(
                "OutputSize",
                "K or [1 1 K]",
                f.get("OutputSize")
                    .map(fields::describe)
                    .unwrap_or_default(),
            ));
        }
    };
    declared.input_size = f.opt_counts("InputSize")?;
    let weights = match f.param("Weights")? {
        Some(p) => {
            let fc =
                layout::fc_weights(p.value, outputs).map_err(|e| f.layout_err("Weights", e))?;
            declared.fc_input_hwc = fc.input_hwc;
            Some(p.with(fc.weights))
        }
        None => None,
    };
    let bias = match f.param("Bias")? {
        Some(p) => {
            Some(p.with(layout::vector(p.value, outputs).map_err(|e| f.layout_err("Bias", e))?))
        }
        None => None,
    };
    Ok(Some(LayerKind::FullyConnected(FullyConnected {
        outputs,
        weights,
        bias,
    })))
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

// MatConvNet import.

/// `conv`/`dagnn.Conv` and `convt`/`dagnn.ConvTranspose`.
pub(in crate::net) fn from_matconvnet(
    ty: &str,
    f: &Fields,
    params: &Params,
    declared: &mut Declared,
) -> Imported {
    match ty {
        "conv" | "Conv" => matconvnet_conv(f, params, declared),
        "convt" | "ConvTranspose" => matconvnet_convt(f, params),
        _ => Ok(None),
    }
}

fn matconvnet_conv(f: &Fields, params: &Params, declared: &mut Declared) -> Imported {
    let Some(w) = get(params, 0) else {
        return unsupported("convolution without stored filters".into());
    };
    let d = &w.value.dims;
    let dim = |i: usize| d.get(i).copied().unwrap_or(1);
    let (kh, kw, cpg) = (dim(0), dim(1), dim(2));
    // One filter: MATLAB drops the trailing 1 ([3,3,64] in DnCNN), so the bias tells.
    let filters = match get(params, 1) {
        Some(b) if d.len() < 4 => b.value.numel(),
        _ => dim(3),
    };
    let weights = w.param(
        layout::conv2d_weights(w.value, kh, kw, cpg, filters)
            .map_err(|e| f.layout_err("weights{1}", e))?,
    );
    let bias = match get(params, 1) {
        Some(b) => Some(
            b.param(layout::vector(b.value, filters).map_err(|e| f.layout_err("weights{2}", e))?),
        ),
        None => None,
    };
    declared.channels_per_group = Some(cpg);
    Ok(Some(LayerKind::Conv2d(Conv2d {
        filter: [kh, kw],
        in_channels: 0,
        filters,
        stride: f.pair_or("stride", [1, 1])?,
        dilation: f.pair_or("dilate", [1, 1])?,
        groups: 1,
        padding: PaddingMode::Manual(f.opt_padding("pad")?.unwrap_or_default()),
        weights: Some(weights),
        bias,
    })))
}

fn matconvnet_convt(f: &Fields, params: &Params) -> Imported {
    let groups = f.opt_usize("numGroups")?.unwrap_or(1);
    if groups != 1 {
        return unsupported(format!("transposed convolution with {groups} groups"));
    }
    let Some(w) = get(params, 0) else {
        return unsupported("transposed convolution without stored filters".into());
    };
    let d = &w.value.dims;
    let dim = |i: usize| d.get(i).copied().unwrap_or(1);
    // vl_nnconvt filters are [kh, kw, K (outputs), C (inputs)], like MATLAB's.
    let (kh, kw, filters, channels) = (dim(0), dim(1), dim(2), dim(3));
    let weights = w.param(
        layout::transposed_conv2d_weights(w.value, kh, kw, filters, channels)
            .map_err(|e| f.layout_err("weights{1}", e))?,
    );
    let bias = match get(params, 1) {
        Some(b) => Some(
            b.param(layout::vector(b.value, filters).map_err(|e| f.layout_err("weights{2}", e))?),
        ),
        None => None,
    };
    Ok(Some(LayerKind::ConvTranspose2d(ConvTranspose2d {
        filter: [kh, kw],
        in_channels: channels,
        filters,
        stride: f.pair_or("upsample", [1, 1])?,
        groups: 1,
        cropping: PaddingMode::Manual(f.opt_padding("crop")?.unwrap_or_default()),
        weights: Some(weights),
        bias,
    })))
}

// 1-D convolutions over the time dimension of `C x T` sequences.

/// Padding of a 1-D window layer along time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Padding1d {
    /// `[left right]` time steps.
    Manual([usize; 2]),
    /// 'same': the output has `ceil(T / stride)` steps; the pads depend on `T`, so they are
    /// resolved for each input length when the layer runs (extra step on the right, as in 2-D).
    Same,
    /// 'causal': `(FilterSize - 1) * DilationFactor` steps on the left, none on the right.
    Causal,
}

impl Padding1d {
    /// `[left, right]` for an input of `t` steps.
    pub fn pads(&self, t: usize, k: usize, stride: usize, dilation: usize) -> [usize; 2] {
        match *self {
            Padding1d::Manual(p) => p,
            Padding1d::Causal => [(k.max(1) - 1) * dilation.max(1), 0],
            Padding1d::Same => {
                let (a, b) = shape::same_padding(t, k, stride, dilation);
                [a, b]
            }
        }
    }

    /// `[left, right]` when they do not depend on the input length: explicit and 'causal'
    /// pads, and 'same' with stride 1 (`(K - 1) d` split, the extra step on the right).
    pub fn static_pads(&self, k: usize, stride: usize, dilation: usize) -> Option<[usize; 2]> {
        match *self {
            Padding1d::Same if stride > 1 => None,
            Padding1d::Same => {
                let total = (k.max(1) - 1) * dilation.max(1);
                Some([total / 2, total - total / 2])
            }
            p => Some(p.pads(0, k, stride, dilation)),
        }
    }

    pub(crate) fn text(&self) -> String {
        match self {
            Padding1d::Manual(p) => pair_text(*p),
            Padding1d::Same => "'same'".into(),
            Padding1d::Causal => "'causal'".into(),
        }
    }
}

/// `convolution1dLayer` over time: `y[f, t] = b[f] + sum_{c,k} W[f, c, k] x[c, t*s + k*d - left]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv1d {
    pub filter: usize,
    pub in_channels: usize,
    pub filters: usize,
    pub stride: usize,
    pub dilation: usize,
    pub padding: Padding1d,
    /// Canonical `[Cout, Cin, K]` (PyTorch's `Conv1d` layout); None in untrained layer arrays.
    pub weights: Option<Param>,
    pub bias: Option<Param>,
}

/// `transposedConv1dLayer` over time: the full transposed convolution (`(T - 1) s + K` steps),
/// then `cropping[0]` steps removed at the start and `cropping[1]` at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvTranspose1d {
    pub filter: usize,
    pub in_channels: usize,
    pub filters: usize,
    pub stride: usize,
    /// `[start, end]`: 'same' cropping is resolved at import (`K - s` split, the extra step
    /// at the end), as it does not depend on the input length.
    pub cropping: [usize; 2],
    /// The file asked for 'same' cropping (for `inspect`).
    pub same: bool,
    /// Canonical `[Cin, Cout, K]` (PyTorch's `ConvTranspose1d` layout).
    pub weights: Option<Param>,
    pub bias: Option<Param>,
}

pub const CONV_1D: Names = Names {
    kind: "Conv1d",
    stem: "conv1d",
};
pub const CONV_TRANSPOSE_1D: Names = Names {
    kind: "ConvTranspose1d",
    stem: "transposed-conv1d",
};

/// A 1-D layer's input: a sequence (or feature) shape, `None` when unknown.
pub(crate) fn sequence_input(ins: &[Option<Shape>], ctx: &Ctx) -> Result<Option<Shape>, NetError> {
    let Some(x) = shape::one_input(ins, ctx)? else {
        return Ok(None);
    };
    if x.spatial {
        return Err(ctx.shape("input", "a sequence (C x T) input", format!("a {x} image")));
    }
    Ok(Some(x))
}

impl Conv1d {
    pub(crate) fn describe(&self) -> String {
        let mut s = format!(
            "{} 1-D conv over time, {}, stride {}",
            self.filter,
            plural(self.filters, "filter"),
            self.stride
        );
        if self.dilation != 1 {
            s += &format!(", dilation {}", self.dilation);
        }
        s + &format!(", padding {}", self.padding.text())
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        param_tensor(&mut self.weights)
            .into_iter()
            .chain(param_tensor(&mut self.bias))
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.weights) + param_numel(&self.bias)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.weights.is_some()
    }

    /// `C x T` → `NumFilters x T'` (the time length is not tracked by shape inference).
    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = sequence_input(ins, ctx)? else {
            return Ok(None);
        };
        shape::check_channels(&mut self.in_channels, "NumChannels", x.c, ctx)?;
        Ok(Some(Shape::features(self.filters)))
    }
}

impl ConvTranspose1d {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} 1-D transposed conv over time, {}, stride {}, cropping {}",
            self.filter,
            plural(self.filters, "filter"),
            self.stride,
            if self.same {
                format!("'same' {}", pair_text(self.cropping))
            } else {
                pair_text(self.cropping)
            }
        )
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        param_tensor(&mut self.weights)
            .into_iter()
            .chain(param_tensor(&mut self.bias))
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.weights) + param_numel(&self.bias)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.weights.is_some()
    }

    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = sequence_input(ins, ctx)? else {
            return Ok(None);
        };
        shape::check_channels(&mut self.in_channels, "NumChannels", x.c, ctx)?;
        Ok(Some(Shape::features(self.filters)))
    }
}

/// A scalar size stored as `n` or `[n]`.
fn scalar_or(f: &Fields, name: &str, default: usize) -> Result<usize, NetError> {
    match f.opt_counts(name)?.as_deref() {
        None => Ok(default),
        Some([n]) => Ok(*n),
        Some(_) => Err(f.err(
            name,
            "a scalar",
            f.get(name).map(fields::describe).unwrap_or_default(),
        )),
    }
}

/// `[left right]` of a 1-D layer's `PaddingSize`/`CroppingSize` (a scalar pads both sides).
fn pair_1d(f: &Fields, name: &str) -> Result<Option<[usize; 2]>, NetError> {
    match f.opt_counts(name)?.as_deref() {
        None => Ok(None),
        Some([n]) => Ok(Some([*n, *n])),
        Some([a, b]) => Ok(Some([*a, *b])),
        Some(_) => Err(f.err(
            name,
            "[left right]",
            f.get(name).map(fields::describe).unwrap_or_default(),
        )),
    }
}

/// A 1-D layer's `PaddingMode`/`PaddingSize` ('same', 'causal' or explicit `[left right]`).
pub(in crate::net) fn padding_1d(f: &Fields) -> Result<Padding1d, NetError> {
    Ok(match f.string("PaddingMode").as_deref() {
        Some("same") => Padding1d::Same,
        Some("causal") => Padding1d::Causal,
        _ => Padding1d::Manual(pair_1d(f, "PaddingSize")?.unwrap_or_default()),
    })
}

fn conv1d(f: &Fields) -> Imported {
    if let Some(v) = nonzero_padding_value(f) {
        return unsupported(format!("PaddingValue {v} (only zero padding is supported)"));
    }
    let filter = scalar_or(f, "FilterSize", 0)?;
    let filters = f.usize("NumFilters")?;
    let weights_ref = f.param("Weights")?;
    let stored_cin = weights_ref
        .as_ref()
        .map(|w| w.value.dims.get(1).copied().unwrap_or(1));
    let in_channels = f.opt_usize("NumChannels")?.or(stored_cin).unwrap_or(0);
    let weights = match &weights_ref {
        Some(p) => Some(
            p.with(
                layout::conv1d_weights(p.value, filter, in_channels, filters)
                    .map_err(|e| f.layout_err("Weights", e))?,
            ),
        ),
        None => None,
    };
    let bias = match f.param("Bias")? {
        Some(p) => {
            Some(p.with(layout::vector(p.value, filters).map_err(|e| f.layout_err("Bias", e))?))
        }
        None => None,
    };
    Ok(Some(LayerKind::Conv1d(Conv1d {
        filter,
        in_channels,
        filters,
        stride: scalar_or(f, "Stride", 1)?,
        dilation: scalar_or(f, "DilationFactor", 1)?,
        padding: padding_1d(f)?,
        weights,
        bias,
    })))
}

fn conv_transpose1d(f: &Fields) -> Imported {
    let filter = scalar_or(f, "FilterSize", 0)?;
    let filters = f.usize("NumFilters")?;
    let stride = scalar_or(f, "Stride", 1)?;
    let weights_ref = f.param("Weights")?;
    // Stored [K, NumFilters, NumChannels], as for 2-D.
    let stored_cin = weights_ref
        .as_ref()
        .map(|w| w.value.dims.get(2).copied().unwrap_or(1));
    let in_channels = f.opt_usize("NumChannels")?.or(stored_cin).unwrap_or(0);
    let stored = pair_1d(f, "CroppingSize")?;
    let same = f.string("CroppingMode").as_deref() == Some("same");
    let cropping = if same {
        let (a, b) = shape::same_cropping(filter, stride);
        if let Some(s) = stored
            && s != [a, b]
            && s != [0, 0]
        {
            return Err(f.err(
                "CroppingSize",
                format!("'same' cropping {}", pair_text([a, b])),
                pair_text(s),
            ));
        }
        [a, b]
    } else {
        stored.unwrap_or_default()
    };
    let weights = match &weights_ref {
        Some(p) => Some(
            p.with(
                layout::transposed_conv1d_weights(p.value, filter, filters, in_channels)
                    .map_err(|e| f.layout_err("Weights", e))?,
            ),
        ),
        None => None,
    };
    let bias = match f.param("Bias")? {
        Some(p) => {
            Some(p.with(layout::vector(p.value, filters).map_err(|e| f.layout_err("Bias", e))?))
        }
        None => None,
    };
    if f.opt_usize("OutputSizeOffset")?.is_some_and(|o| o != 0) {
        return unsupported("OutputSizeOffset other than 0".into());
    }
    Ok(Some(LayerKind::ConvTranspose1d(ConvTranspose1d {
        filter,
        in_channels,
        filters,
        stride,
        cropping,
        same,
        weights,
        bias,
    })))
}
