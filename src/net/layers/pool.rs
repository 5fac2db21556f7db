//! Pooling layers: max and average pooling over a window, global average and max pooling.

use serde::{Deserialize, Serialize};

use crate::net::error::{Ctx, NetError};
use crate::net::fields::Fields;
use crate::net::layer::{LayerKind, PaddingMode, Shape};
use crate::net::matconvnet::Params;
use crate::net::shape::{self, Declared};

use super::conv::{Padding1d, padding_1d, sequence_input};
use super::{Imported, Names, dlt_padding, padding_text, pair_text};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool2d {
    pub size: [usize; 2],
    pub stride: [usize; 2],
    pub padding: PaddingMode,
    /// Average pooling only: padded zeros count in the mean (MATLAB's default `PaddingValue` 0).
    pub count_include_pad: bool,
}

pub const MAX_POOL_2D: Names = Names {
    kind: "MaxPool2d",
    stem: "maxpool",
};
pub const AVG_POOL_2D: Names = Names {
    kind: "AvgPool2d",
    stem: "avgpool",
};
pub const GLOBAL_AVG_POOL: Names = Names {
    kind: "GlobalAvgPool",
    stem: "gapool",
};
pub const GLOBAL_MAX_POOL: Names = Names {
    kind: "GlobalMaxPool",
    stem: "gmpool",
};

impl Pool2d {
    /// `what`: `max` or `average`.
    pub(crate) fn describe(&self, what: &str) -> String {
        format!(
            "{}x{} {what} pooling, stride {}, padding {}",
            self.size[0],
            self.size[1],
            pair_text(self.stride),
            padding_text(&self.padding)
        )
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
        let p = self;
        let pad = shape::resolve_padding(&mut p.padding, x, p.size, p.stride, [1, 1], decl, ctx)?;
        let (h, w) = shape::window_output(x, pad, p.size, p.stride, [1, 1], ctx)?;
        Ok(Some(Shape::image(h, w, x.c)))
    }
}

/// Global pooling: `1x1xC`.
pub(crate) fn global_output(ins: &[Option<Shape>], ctx: &Ctx) -> Result<Option<Shape>, NetError> {
    Ok(shape::one_input(ins, ctx)?.map(|x| Shape::image(1, 1, x.c)))
}

/// Pooling layer classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, declared: &mut Declared) -> Imported {
    Ok(Some(match short {
        "MaxPooling2DLayer" | "AveragePooling2DLayer" => {
            let size = f.pair("PoolSize")?;
            // MATLAB's default pooling stride is [1 1], not the pool size.
            let stride = f.pair_or("Stride", [1, 1])?;
            let padding = dlt_padding(f, "PaddingMode", "PaddingSize", declared)?;
            // PaddingValue 0 (and older layers without it): padded zeros count in the mean.
            let count_include_pad = f.string("PaddingValue").as_deref() != Some("mean");
            let p = Pool2d {
                size,
                stride,
                padding,
                count_include_pad,
            };
            if short == "MaxPooling2DLayer" {
                LayerKind::MaxPool2d(p)
            } else {
                LayerKind::AvgPool2d(p)
            }
        }
        "GlobalAveragePooling2DLayer" => LayerKind::GlobalAvgPool,
        "GlobalMaxPooling2DLayer" => LayerKind::GlobalMaxPool,
        "MaxPooling1DLayer" | "AveragePooling1DLayer" => pool1d(short, f)?,
        "GlobalAveragePooling1DLayer" => LayerKind::GlobalAvgPool1d,
        "GlobalMaxPooling1DLayer" => LayerKind::GlobalMaxPool1d,
        "MaxUnpooling2DLayer" => LayerKind::MaxUnpool2d(Unpool2d::unconnected()),
        _ => return Ok(None),
    }))
}

/// `pool`/`dagnn.Pooling` (`method` 'max' or 'avg').
pub(in crate::net) fn from_matconvnet(
    ty: &str,
    f: &Fields,
    _params: &Params,
    _declared: &mut Declared,
) -> Imported {
    if !matches!(ty, "pool" | "Pooling") {
        return Ok(None);
    }
    let size = match f.opt_pair("pool")? {
        Some(s) => s,
        None => f.pair("poolSize")?,
    };
    let p = Pool2d {
        size,
        stride: f.pair_or("stride", [1, 1])?,
        padding: PaddingMode::Manual(f.opt_padding("pad")?.unwrap_or_default()),
        // vl_nnpool averages over the window inside the input only.
        count_include_pad: false,
    };
    Ok(Some(match f.string("method").as_deref() {
        Some("avg") => LayerKind::AvgPool2d(p),
        _ => LayerKind::MaxPool2d(p),
    }))
}

// 1-D pooling over the time dimension of `C x T` sequences.

/// `maxPooling1dLayer` / `averagePooling1dLayer` over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool1d {
    pub size: usize,
    pub stride: usize,
    /// 'same' (resolved per input length when the layer runs) or explicit `[left right]`.
    pub padding: Padding1d,
    /// Average pooling only: padded zeros count in the mean (`PaddingValue` 0, the default).
    pub count_include_pad: bool,
}

pub const MAX_POOL_1D: Names = Names {
    kind: "MaxPool1d",
    stem: "maxpool1d",
};
pub const AVG_POOL_1D: Names = Names {
    kind: "AvgPool1d",
    stem: "avgpool1d",
};
pub const GLOBAL_AVG_POOL_1D: Names = Names {
    kind: "GlobalAvgPool1d",
    stem: "gapool1d",
};
pub const GLOBAL_MAX_POOL_1D: Names = Names {
    kind: "GlobalMaxPool1d",
    stem: "gmpool1d",
};

impl Pool1d {
    /// `what`: `max` or `average`.
    pub(crate) fn describe(&self, what: &str) -> String {
        format!(
            "{} {what} pooling over time, stride {}, padding {}",
            self.size,
            self.stride,
            self.padding.text()
        )
    }

    /// `C x T` → `C x T'`.
    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        Ok(sequence_input(ins, ctx)?.map(|x| Shape::features(x.c)))
    }
}

/// Global pooling over time: `C x T` → `C` (the time dimension is gone).
pub(crate) fn global_1d_output(
    ins: &[Option<Shape>],
    ctx: &Ctx,
) -> Result<Option<Shape>, NetError> {
    Ok(sequence_input(ins, ctx)?.map(|x| Shape::features(x.c)))
}

fn pool1d(short: &str, f: &Fields) -> Result<LayerKind, NetError> {
    let one = |name: &str, default: Option<usize>| -> Result<usize, NetError> {
        match (f.opt_counts(name)?.as_deref(), default) {
            (Some([n]), _) => Ok(*n),
            (None, Some(d)) => Ok(d),
            _ => Err(f.err(
                name,
                "a scalar",
                f.get(name)
                    .map(crate::net::fields::describe)
                    .unwrap_or_else(|| "nothing".into()),
            )),
        }
    };
    let size = one("PoolSize", None)?;
    // MATLAB's default 1-D pooling stride is 1, as in 2-D.
    let stride = one("Stride", Some(1))?;
    let padding = padding_1d(f)?;
    let p = Pool1d {
        size,
        stride,
        padding,
        count_include_pad: f.string("PaddingValue").as_deref() != Some("mean"),
    };
    Ok(if short == "MaxPooling1DLayer" {
        LayerKind::MaxPool1d(p)
    } else {
        LayerKind::AvgPool1d(p)
    })
}

// --- max unpooling ---

/// Max unpooling (`MaxUnpooling2DLayer`).
///
/// MATLAB wires a max pooling layer's `indices` and `size` outputs (`HasUnpoolingOutputs`) into the
/// unpooling layer's `indices` and `size` inputs by name in `Connections`. matcnn's layers have one
/// output each, so import ([`resolve_unpooling`]) turns those two inputs into one: **the pooling
/// layer's own input**. The unpooling layer keeps the pooling layer's name and window, and
/// recomputes the indices from that input (max pooling is deterministic, so they are the indices
/// the pooling layer computed) and takes the size from it. Its inputs are `[x, pooling input]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unpool2d {
    /// The max pooling layer whose indices and size this layer uses (empty until connected).
    pub pool: String,
    /// That pooling layer's window.
    pub window: Pool2d,
}

pub const MAX_UNPOOL_2D: Names = Names {
    kind: "MaxUnpool2d",
    stem: "maxunpool",
};

impl Unpool2d {
    /// As read from the layer object, before its connections are known.
    fn unconnected() -> Unpool2d {
        Unpool2d {
            pool: String::new(),
            window: Pool2d {
                size: [1, 1],
                stride: [1, 1],
                padding: PaddingMode::Manual(Default::default()),
                count_include_pad: false,
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        if self.pool.is_empty() {
            return "max unpooling (not connected to a max pooling layer)".into();
        }
        format!(
            "max unpooling of '{}' ({}x{}, stride {}, padding {})",
            self.pool,
            self.window.size[0],
            self.window.size[1],
            pair_text(self.window.stride),
            padding_text(&self.window.padding)
        )
    }

    /// `ins`: `[x, the pooling layer's input]`. The output is the pooling input's size with x's
    /// channels; x must have the pooled size.
    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        if self.pool.is_empty() {
            return Ok(None);
        }
        let Some(s) = shape::known_inputs(ins, 2, ctx)? else {
            return Ok(None);
        };
        let (x, p) = (s[0], s[1]);
        let pooled = self
            .window
            .output(&[Some(p)], &Declared::default(), ctx)?
            .unwrap_or(p);
        let fits = |a: usize, b: usize| a == 0 || b == 0 || a == b;
        if !fits(pooled.h, x.h) || !fits(pooled.w, x.w) || !fits(p.c, x.c) {
            return Err(ctx.shape(
                "input 'in'",
                format!(
                    "the output size of max pooling layer '{}' ({pooled})",
                    self.pool
                ),
                x.to_string(),
            ));
        }
        Ok(Some(Shape::image(p.h, p.w, x.c)))
    }
}

/// Connects every max unpooling layer of a layer graph: its inputs `[in, indices, size]` (port
/// order, `layers[i].inputs` indexing the stored order) become `[in, the pooling layer's input]`
/// and it takes the pooling layer's name and window (see [`Unpool2d`]). `indices` and `size` must
/// both come from one max pooling layer.
pub(in crate::net) fn resolve_unpooling(
    variable: &str,
    container: &str,
    layers: &mut [crate::net::layer::Layer],
) -> Result<(), NetError> {
    for i in 0..layers.len() {
        if !matches!(layers[i].kind, LayerKind::MaxUnpool2d(_)) {
            continue;
        }
        let err = |m: String| NetError::Graph {
            variable: variable.into(),
            container: container.into(),
            message: format!("max unpooling layer '{}': {m}", layers[i].name),
        };
        let ins = layers[i].inputs.clone();
        let [x, p, q] = ins[..] else {
            return Err(err(format!(
                "its inputs 'in', 'indices' and 'size' must all be connected ({} are)",
                ins.len()
            )));
        };
        if p != q {
            return Err(err(format!(
                "'indices' and 'size' come from two layers, '{}' and '{}'",
                layers[p].name, layers[q].name
            )));
        }
        let LayerKind::MaxPool2d(window) = &layers[p].kind else {
            return Err(err(format!(
                "'indices' comes from '{}' ({}), not a max pooling layer with HasUnpoolingOutputs",
                layers[p].name, layers[p].class
            )));
        };
        let [src] = layers[p].inputs[..] else {
            return Err(err(format!(
                "max pooling layer '{}' has no input",
                layers[p].name
            )));
        };
        let u = Unpool2d {
            pool: layers[p].name.clone(),
            window: window.clone(),
        };
        layers[i].kind = LayerKind::MaxUnpool2d(u);
        layers[i].inputs = vec![x, src];
    }
    Ok(())
}
