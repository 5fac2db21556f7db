//! MATLAB helper classes that networks use, decoded into plain values: `string`, `categorical`,
//! `table`. Every other class stays an object with its properties.

use super::value::*;

/// Turns a 1x1 `string`, `categorical` or `table` object into its plain value; anything else
/// (or anything that does not have the expected properties) is returned unchanged.
pub fn decode_special(arr: ObjectArray) -> Value {
    if arr.elements.len() == 1 {
        let o = &arr.elements[0];
        let decoded = match o.class.as_str() {
            "string" => string(o).map(Value::String),
            "categorical" => categorical(o).map(Value::Categorical),
            "table" => table(o).map(|t| Value::Table(Box::new(t))),
            _ => None,
        };
        if let Some(v) = decoded {
            return v;
        }
    }
    Value::Object(arr)
}

/// `string` stores a uint64 array: [version, ndims, dims.., char count per element..,
/// UTF-16 code units packed little-endian]. A count of 2^64-1 marks `<missing>`.
fn string(o: &Object) -> Option<StringArray> {
    let words: &Vec<u64> = match o.prop("any")? {
        Value::Numeric(NumericArray {
            real: NumData::U64(w),
            ..
        }) => w,
        _ => return None,
    };
    let ndims = *words.get(1)? as usize;
    if ndims > 32 {
        return None;
    }
    let dims: Vec<usize> = words
        .get(2..2 + ndims)?
        .iter()
        .map(|&d| d as usize)
        .collect();
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    let counts = words.get(2 + ndims..(2 + ndims).checked_add(n)?)?;
    let units: Vec<u16> = words[2 + ndims + n..]
        .iter()
        .flat_map(|w| (0..4).map(move |k| (w >> (16 * k)) as u16))
        .collect();
    let mut data = Vec::with_capacity(n);
    let mut p = 0usize;
    for &c in counts {
        if c == u64::MAX {
            data.push(None);
            continue;
        }
        let end = p.checked_add(c as usize).filter(|&e| e <= units.len())?;
        data.push(Some(String::from_utf16_lossy(&units[p..end])));
        p = end;
    }
    Some(StringArray { dims, data })
}

fn categorical(o: &Object) -> Option<Categorical> {
    let codes = o.prop("codes")?;
    let dims = codes.dims();
    let codes: Vec<u32> = codes.to_f64_vec()?.iter().map(|&c| c as u32).collect();
    let categories = o.prop("categoryNames")?.as_string_list()?;
    let ordinal = o.prop("isOrdinal").and_then(|v| v.as_f64()).unwrap_or(0.0) != 0.0;
    if codes.iter().any(|&c| c as usize > categories.len()) {
        return None;
    }
    Some(Categorical {
        dims,
        categories,
        codes,
        ordinal,
    })
}

fn table(o: &Object) -> Option<Table> {
    let data = o.prop("data")?.as_cell()?;
    let var_names = o.prop("varnames")?.as_string_list()?;
    let nrows = o.prop("nrows")?.as_f64()? as usize;
    if var_names.len() != data.data.len() {
        return None;
    }
    let row_names = o
        .prop("rownames")
        .and_then(|v| v.as_string_list())
        .unwrap_or_default();
    Some(Table {
        nrows,
        var_names,
        columns: data.data.clone(),
        row_names,
    })
}
