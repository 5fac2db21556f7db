//! Typed access to a layer's stored properties (a `saveobj` `any` struct, an object's own
//! properties, or a MatConvNet layer struct), with errors that name the layer and property.

use crate::mat::value::{NumericArray, Object, StructArray, Value};

use super::error::{Ctx, NetError};
use super::layer::{Padding, Param, Tensor};
use super::layout::{LayoutError, dims_str};

/// A short description of a value for error messages: `double 1x3 [1 2 3]`, `char 'same'`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Numeric(a) if a.numel() <= 4 => {
            let vals: Vec<String> = a.real.to_f64_vec().iter().map(|x| format!("{x}")).collect();
            format!(
                "{} {} [{}]",
                a.class_name(),
                dims_str(&a.dims),
                vals.join(" ")
            )
        }
        Value::Char(c) => format!("char '{}'", c.to_string_lossy()),
        other => format!("{} {}", other.class_name(), dims_str(&other.dims())),
    }
}

/// One place properties are looked up in.
#[derive(Clone, Copy)]
enum Source<'a> {
    Struct(&'a StructArray),
    Object(&'a Object),
}

/// A stored parameter: its value array and training factors.
pub struct ParamRef<'a> {
    pub value: &'a NumericArray,
    pub lr_factor: f32,
    pub l2_factor: f32,
}

impl ParamRef<'_> {
    /// The canonical parameter, given the tensor a layout rule made of `value`.
    pub fn with(&self, value: Tensor) -> Param {
        Param {
            value,
            lr_factor: self.lr_factor,
            l2_factor: self.l2_factor,
        }
    }
}

/// A layer's properties, looked up in order in each source.
pub struct Fields<'a> {
    pub ctx: Ctx,
    sources: Vec<Source<'a>>,
}

impl<'a> Fields<'a> {
    pub fn new(ctx: Ctx) -> Self {
        Fields {
            ctx,
            sources: Vec::new(),
        }
    }
    pub fn with_struct(mut self, s: &'a StructArray) -> Self {
        self.sources.push(Source::Struct(s));
        self
    }
    pub fn with_object(mut self, o: &'a Object) -> Self {
        self.sources.push(Source::Object(o));
        self
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.sources.iter().find_map(|s| match s {
            Source::Struct(st) => st.field(name),
            Source::Object(o) => o.prop(name),
        })
    }

    pub fn err(
        &self,
        property: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> NetError {
        self.ctx.property(property, expected, found)
    }

    pub fn layout_err(&self, property: &str, e: LayoutError) -> NetError {
        self.ctx.property(property, e.expected, e.found)
    }

    pub fn req(&self, name: &str) -> Result<&'a Value, NetError> {
        self.get(name)
            .ok_or_else(|| self.err(name, "a stored value", "no such property"))
    }

    /// A number; `None` when missing, empty, or text such as 'auto'.
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, NetError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(Value::Char(_)) | Some(Value::String(_)) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(name, "a scalar number", describe(v))),
        }
    }

    pub fn f64(&self, name: &str) -> Result<f64, NetError> {
        match self.get(name) {
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.err(name, "a scalar number", describe(v))),
            None => Err(self.err(name, "a scalar number", "no such property")),
        }
    }

    pub fn f64_or(&self, name: &str, default: f64) -> Result<f64, NetError> {
        Ok(self.opt_f64(name)?.unwrap_or(default))
    }

    fn found(&self, name: &str) -> String {
        self.get(name)
            .map(describe)
            .unwrap_or_else(|| "no such property".into())
    }

    fn to_count(&self, name: &str, x: f64) -> Result<usize, NetError> {
        if x >= 0.0 && x.fract() == 0.0 && x < 1e12 {
            Ok(x as usize)
        } else {
            Err(self.err(name, "a non-negative integer", self.found(name)))
        }
    }

    /// A non-negative integer; `None` when missing, empty or 'auto'.
    pub fn opt_usize(&self, name: &str) -> Result<Option<usize>, NetError> {
        match self.opt_f64(name)? {
            None => Ok(None),
            Some(x) => self.to_count(name, x).map(Some),
        }
    }

    pub fn usize(&self, name: &str) -> Result<usize, NetError> {
        self.opt_usize(name)?
            .ok_or_else(|| self.err(name, "a non-negative integer", self.found(name)))
    }

    /// All elements as non-negative integers; `None` when missing or empty.
    pub fn opt_counts(&self, name: &str) -> Result<Option<Vec<usize>>, NetError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if v.is_empty() || matches!(v, Value::Char(_) | Value::String(_)) {
            return Ok(None);
        }
        let xs = v
            .to_f64_vec()
            .ok_or_else(|| self.err(name, "numbers", describe(v)))?;
        xs.iter()
            .map(|&x| self.to_count(name, x))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `[a, b]` from a scalar (both the same) or a 2-element vector; `None` when missing or empty.
    pub fn opt_pair(&self, name: &str) -> Result<Option<[usize; 2]>, NetError> {
        match self.opt_counts(name)?.as_deref() {
            None => Ok(None),
            Some([a]) => Ok(Some([*a, *a])),
            Some([a, b]) => Ok(Some([*a, *b])),
            Some(_) => Err(self.err(name, "a scalar or a 2-element vector", self.found(name))),
        }
    }

    pub fn pair(&self, name: &str) -> Result<[usize; 2], NetError> {
        self.opt_pair(name)?
            .ok_or_else(|| self.err(name, "a scalar or a 2-element vector", self.found(name)))
    }

    pub fn pair_or(&self, name: &str, default: [usize; 2]) -> Result<[usize; 2], NetError> {
        Ok(self.opt_pair(name)?.unwrap_or(default))
    }

    /// Padding `[t b l r]`, `[tb lr]` or a scalar; `None` when missing or empty.
    pub fn opt_padding(&self, name: &str) -> Result<Option<Padding>, NetError> {
        Ok(match self.opt_counts(name)?.as_deref() {
            None => None,
            Some([p]) => Some(Padding {
                top: *p,
                bottom: *p,
                left: *p,
                right: *p,
            }),
            Some([v, h]) => Some(Padding {
                top: *v,
                bottom: *v,
                left: *h,
                right: *h,
            }),
            Some([t, b, l, r]) => Some(Padding {
                top: *t,
                bottom: *b,
                left: *l,
                right: *r,
            }),
            Some(_) => {
                return Err(self.err(
                    name,
                    "[top bottom left right], [vertical horizontal] or a scalar",
                    self.found(name),
                ));
            }
        })
    }

    /// Text of a char array or a 1x1 string; `None` when missing or not text.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|v| v.as_string())
    }

    pub fn flag(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(|v| v.as_f64()).map(|x| x != 0.0)
    }

    /// A numeric array; `None` when missing or empty.
    pub fn numeric(&self, name: &str) -> Result<Option<&'a NumericArray>, NetError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(Value::Numeric(a)) => Ok(Some(a)),
            Some(v) => Err(self.err(name, "a numeric array", describe(v))),
        }
    }

    /// A learnable parameter: a struct `{Value, LearnRateFactor, L2Factor, ...}` (or a bare numeric
    /// array, factors 1). `None` when missing or when `Value` is empty (an untrained layer).
    pub fn param(&self, name: &str) -> Result<Option<ParamRef<'a>>, NetError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v {
            Value::Numeric(a) if a.is_empty() => Ok(None),
            Value::Numeric(a) => Ok(Some(ParamRef {
                value: a,
                lr_factor: 1.0,
                l2_factor: 1.0,
            })),
            Value::Struct(s) if s.len() == 1 => {
                let sub = Fields::new(self.ctx.clone()).with_struct(s);
                let value = match s.field("Value") {
                    Some(v) if v.is_empty() => return Ok(None),
                    Some(Value::Numeric(a)) => a,
                    Some(other) => {
                        return Err(self.err(
                            &format!("{name}.Value"),
                            "a numeric array",
                            describe(other),
                        ));
                    }
                    None => {
                        return Err(self.err(
                            &format!("{name}.Value"),
                            "a stored value",
                            "no such field",
                        ));
                    }
                };
                Ok(Some(ParamRef {
                    value,
                    lr_factor: sub.f64_or("LearnRateFactor", 1.0)? as f32,
                    l2_factor: sub.f64_or("L2Factor", 1.0)? as f32,
                }))
            }
            Value::Struct(_) => Err(self.err(
                name,
                "a 1x1 struct {Value, LearnRateFactor, L2Factor}",
                describe(v),
            )),
            other if other.is_empty() => Ok(None),
            other => Err(self.err(
                name,
                "a parameter struct or a numeric array",
                describe(other),
            )),
        }
    }
}
