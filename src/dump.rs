//! `matcnn dump`: a MAT file's value tree as text (like `h5dump`) or as JSON.
//!
//! JSON schema (stable): `{ "file", "format": "v5"|"v7.3", "header", "variables": [Node + "name"] }`
//! where a Node is `{ "class", "size": [..], "kind", ... }` and `kind` is one of
//! `numeric` (`dtype`, `complex`, `min`, `max`, `first`: the first values in column-major order),
//! `logical` (`true_count`, `first`), `char` (`text`), `string` (`values`), `struct` (`fields`:
//! names; `elements`: one object of field nodes per element), `cell` (`elements`), `object`
//! (`elements`: `{ "class", "id", "properties": {name: Node} }`), `table` (`variables`: names,
//! `columns`: {name: Node}, `rows`), `categorical` (`categories`, `codes`), `sparse` (`nnz`),
//! `function_handle` (`value`), `opaque` (`type_system`, `value`), `cycle` (`id`).
//! Children beyond `--depth` are left out and the node gets `"truncated": true`.

use crate::mat::*;
use serde_json::{Map, Value as Json, json};
use std::fmt::Write;

/// How many leading values of an array to show.
const FIRST: usize = 6;
/// How many elements of a struct array, cell or object array to show.
const MAX_ELEMENTS: usize = 64;

pub fn size_str(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.6}")
    }
}

fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let mut it = v.iter().copied().filter(|x| !x.is_nan());
    let first = it.next()?;
    Some(it.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x))))
}

/// The value tree as indented text.
pub fn text(file: &MatFile, depth: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({} container{})",
        file.header,
        if file.version == MatVersion::V73 {
            "v7.3 HDF5"
        } else {
            "v5/v7"
        },
        if file.big_endian { ", big-endian" } else { "" }
    );
    for v in &file.variables {
        node_text(&mut out, &v.name, &v.value, 0, depth);
    }
    out
}

fn node_text(out: &mut String, label: &str, v: &Value, level: usize, depth: usize) {
    let pad = "  ".repeat(level);
    let size = size_str(&v.dims());
    match v {
        Value::Numeric(a) => {
            let vals = a.real.to_f64_vec();
            let first: Vec<String> = vals.iter().take(FIRST).map(|x| fmt_num(*x)).collect();
            let more = if vals.len() > FIRST { ", ..." } else { "" };
            let mm = match min_max(&vals) {
                Some((lo, hi)) if vals.len() > 1 => {
                    format!(" min={} max={}", fmt_num(lo), fmt_num(hi))
                }
                _ => String::new(),
            };
            let cx = if a.imag.is_some() { " complex" } else { "" };
            let _ = writeln!(
                out,
                "{pad}{label}: {}{cx} [{size}]{mm} = [{}{more}]",
                a.class_name(),
                first.join(", ")
            );
        }
        Value::Logical { data, .. } => {
            let first: Vec<&str> = data
                .iter()
                .take(FIRST)
                .map(|b| if *b { "true" } else { "false" })
                .collect();
            let _ = writeln!(
                out,
                "{pad}{label}: logical [{size}] = [{}]",
                first.join(", ")
            );
        }
        Value::Char(c) => {
            let _ = writeln!(
                out,
                "{pad}{label}: char [{size}] = {:?}",
                c.to_string_lossy()
            );
        }
        Value::String(s) => {
            let vals: Vec<String> = s
                .data
                .iter()
                .take(MAX_ELEMENTS)
                .map(|x| format!("{x:?}"))
                .collect();
            let _ = writeln!(out, "{pad}{label}: string [{size}] = [{}]", vals.join(", "));
        }
        Value::Categorical(c) => {
            let _ = writeln!(
                out,
                "{pad}{label}: categorical [{size}] categories={:?}",
                c.categories
            );
        }
        Value::Sparse(s) => {
            let _ = writeln!(
                out,
                "{pad}{label}: sparse {} [{size}] nnz={}",
                v.class_name(),
                s.real.len()
            );
        }
        Value::Struct(s) => {
            let _ = writeln!(out, "{pad}{label}: struct [{size}] fields={:?}", s.fields);
            if level < depth {
                for (i, el) in s.elements.iter().take(MAX_ELEMENTS).enumerate() {
                    let prefix = if s.elements.len() == 1 {
                        String::new()
                    } else {
                        format!("({})", i + 1)
                    };
                    for (f, fv) in s.fields.iter().zip(el) {
                        node_text(
                            out,
                            format!("{prefix}.{f}").trim_start_matches('.'),
                            fv,
                            level + 1,
                            depth,
                        );
                    }
                }
            }
        }
        Value::Cell(c) => {
            let _ = writeln!(out, "{pad}{label}: cell [{size}]");
            if level < depth {
                for (i, e) in c.data.iter().take(MAX_ELEMENTS).enumerate() {
                    node_text(out, &format!("{{{}}}", i + 1), e, level + 1, depth);
                }
            }
        }
        Value::Object(o) => {
            if o.elements.len() == 1 {
                let e = &o.elements[0];
                let _ = writeln!(out, "{pad}{label}: {} object #{}", e.class, e.id);
                if level < depth {
                    for (n, pv) in &e.props {
                        node_text(out, n, pv, level + 1, depth);
                    }
                }
            } else {
                let _ = writeln!(out, "{pad}{label}: {} [{size}] object array", o.class);
                if level < depth {
                    for (i, e) in o.elements.iter().take(MAX_ELEMENTS).enumerate() {
                        let _ = writeln!(out, "{pad}  ({}): {} object #{}", i + 1, e.class, e.id);
                        if level + 1 < depth {
                            for (n, pv) in &e.props {
                                node_text(out, n, pv, level + 2, depth);
                            }
                        }
                    }
                }
            }
        }
        Value::Table(t) => {
            let _ = writeln!(
                out,
                "{pad}{label}: table [{}x{}] variables={:?}",
                t.nrows,
                t.var_names.len(),
                t.var_names
            );
            if level < depth {
                for (n, c) in t.var_names.iter().zip(&t.columns) {
                    node_text(out, n, c, level + 1, depth);
                }
            }
        }
        Value::FunctionHandle(f) => {
            let _ = writeln!(out, "{pad}{label}: function_handle");
            if level < depth {
                node_text(out, "workspace", f, level + 1, depth);
            }
        }
        Value::ObjectCycle(id) => {
            let _ = writeln!(
                out,
                "{pad}{label}: (reference to object #{id}, already shown above)"
            );
        }
        Value::Opaque(o) => {
            let _ = writeln!(out, "{pad}{label}: opaque {} ({})", o.class, o.type_system);
            if level < depth {
                node_text(out, "data", &o.data, level + 1, depth);
            }
        }
    }
}

/// The value tree as JSON (see the module documentation for the schema).
pub fn json(file: &MatFile, path: &str, depth: usize) -> Json {
    let vars: Vec<Json> = file
        .variables
        .iter()
        .map(|v| {
            let mut n = node_json(&v.value, 0, depth);
            if let Json::Object(m) = &mut n {
                m.insert("name".into(), json!(v.name));
                m.insert("global".into(), json!(v.global));
            }
            n
        })
        .collect();
    json!({
        "file": path,
        "format": if file.version == MatVersion::V73 { "v7.3" } else { "v5" },
        "header": file.header,
        "variables": vars,
    })
}

fn node_json(v: &Value, level: usize, depth: usize) -> Json {
    let mut m = Map::new();
    m.insert("class".into(), json!(v.class_name()));
    m.insert("size".into(), json!(v.dims()));
    let deeper = level < depth;
    let kind = match v {
        Value::Numeric(a) => {
            let vals = a.real.to_f64_vec();
            m.insert("dtype".into(), json!(a.class_name()));
            m.insert("complex".into(), json!(a.imag.is_some()));
            if let Some((lo, hi)) = min_max(&vals) {
                m.insert("min".into(), json!(lo));
                m.insert("max".into(), json!(hi));
            }
            m.insert(
                "first".into(),
                json!(vals.iter().take(FIRST).collect::<Vec<_>>()),
            );
            "numeric"
        }
        Value::Logical { data, .. } => {
            m.insert(
                "true_count".into(),
                json!(data.iter().filter(|b| **b).count()),
            );
            m.insert(
                "first".into(),
                json!(data.iter().take(FIRST).collect::<Vec<_>>()),
            );
            "logical"
        }
        Value::Char(c) => {
            m.insert("text".into(), json!(c.to_string_lossy()));
            "char"
        }
        Value::String(s) => {
            m.insert("values".into(), json!(s.data));
            "string"
        }
        Value::Categorical(c) => {
            m.insert("categories".into(), json!(c.categories));
            m.insert(
                "codes".into(),
                json!(c.codes.iter().take(MAX_ELEMENTS).collect::<Vec<_>>()),
            );
            m.insert("ordinal".into(), json!(c.ordinal));
            "categorical"
        }
        Value::Sparse(s) => {
            m.insert("nnz".into(), json!(s.real.len()));
            "sparse"
        }
        Value::Struct(s) => {
            m.insert("fields".into(), json!(s.fields));
            if deeper {
                let els: Vec<Json> = s
                    .elements
                    .iter()
                    .take(MAX_ELEMENTS)
                    .map(|el| {
                        let mut f = Map::new();
                        for (name, fv) in s.fields.iter().zip(el) {
                            f.insert(name.clone(), node_json(fv, level + 1, depth));
                        }
                        Json::Object(f)
                    })
                    .collect();
                m.insert("elements".into(), Json::Array(els));
            } else {
                m.insert("truncated".into(), json!(true));
            }
            "struct"
        }
        Value::Cell(c) => {
            if deeper {
                let els: Vec<Json> = c
                    .data
                    .iter()
                    .take(MAX_ELEMENTS)
                    .map(|e| node_json(e, level + 1, depth))
                    .collect();
                m.insert("elements".into(), Json::Array(els));
            } else {
                m.insert("truncated".into(), json!(true));
            }
            "cell"
        }
        Value::Object(o) => {
            m.insert("array_class".into(), json!(o.class));
            if deeper {
                let els: Vec<Json> = o
                    .elements
                    .iter()
                    .take(MAX_ELEMENTS)
                    .map(|e| {
                        let mut p = Map::new();
                        for (n, pv) in &e.props {
                            p.insert(n.clone(), node_json(pv, level + 1, depth));
                        }
                        json!({"class": e.class, "id": e.id, "properties": p})
                    })
                    .collect();
                m.insert("elements".into(), Json::Array(els));
            } else {
                m.insert("truncated".into(), json!(true));
            }
            "object"
        }
        Value::Table(t) => {
            m.insert("variables".into(), json!(t.var_names));
            m.insert("rows".into(), json!(t.nrows));
            if deeper {
                let mut cols = Map::new();
                for (n, c) in t.var_names.iter().zip(&t.columns) {
                    cols.insert(n.clone(), node_json(c, level + 1, depth));
                }
                m.insert("columns".into(), Json::Object(cols));
            } else {
                m.insert("truncated".into(), json!(true));
            }
            "table"
        }
        Value::FunctionHandle(f) => {
            if deeper {
                m.insert("value".into(), node_json(f, level + 1, depth));
            }
            "function_handle"
        }
        Value::ObjectCycle(id) => {
            m.insert("id".into(), json!(id));
            "cycle"
        }
        Value::Opaque(o) => {
            m.insert("type_system".into(), json!(o.type_system));
            if deeper {
                m.insert("value".into(), node_json(&o.data, level + 1, depth));
            }
            "opaque"
        }
    };
    m.insert("kind".into(), json!(kind));
    Json::Object(m)
}
