use super::class::convert;
use super::*;
use crate::mat::value::{CellArray, NumData, NumericArray, StructArray};

fn fixture(rel: &str) -> Vec<u8> {
    let p = format!("{}/../shared/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn read(rel: &str) -> (Vec<Variable>, Option<Vec<Value>>) {
    read_inner(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn var<'a>(vars: &'a [Variable], name: &str) -> &'a Value {
    &vars
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no variable {name}"))
        .value
}

fn cell(v: &Value) -> &CellArray {
    v.as_cell().unwrap_or_else(|| panic!("not a cell: {v:?}"))
}

fn dims(v: &Value) -> Vec<usize> {
    v.dims()
}

#[test]
fn simplenn_sigma25() {
    let (vars, cells) = read("dncnn-matconvnet/sigma=25.mat");
    assert!(cells.is_none());
    assert_eq!(
        vars.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["net"]
    );
    let net = var(&vars, "net").as_struct().unwrap();
    assert_eq!(net.fields, ["layers"]);
    let layers = cell(net.field("layers").unwrap());
    assert_eq!(layers.dims, [1, 33]);

    let l1 = layers.data[0].as_struct().unwrap();
    assert_eq!(
        l1.fields,
        [
            "type",
            "weights",
            "stride",
            "pad",
            "learningRate",
            "weightDecay",
            "opts",
            "name",
            "precious"
        ]
    );
    assert_eq!(l1.field("type").unwrap().as_string().unwrap(), "conv");
    assert_eq!(l1.field("name").unwrap().as_string().unwrap(), "layer1");
    assert_eq!(
        l1.field("precious").unwrap(),
        &Value::Logical {
            dims: vec![1, 1],
            data: vec![false]
        }
    );
    assert_eq!(
        l1.field("learningRate").unwrap().to_f64_vec().unwrap(),
        [1.0, 1.0]
    );
    assert_eq!(dims(l1.field("learningRate").unwrap()), [1, 2]);
    let opts = cell(l1.field("opts").unwrap());
    assert_eq!(opts.dims, [0, 0]);
    let w = cell(l1.field("weights").unwrap());
    assert_eq!(w.dims, [1, 2]);
    let f = w.data[0].as_numeric().unwrap();
    assert_eq!(f.dims, [3, 3, 1, 64]);
    assert!(matches!(f.real, NumData::F32(ref v) if v.len() == 576));
    assert_eq!(dims(&w.data[1]), [64, 1]);

    let l2 = layers.data[1].as_struct().unwrap();
    assert_eq!(l2.field("type").unwrap().as_string().unwrap(), "relu");
    assert_eq!(l2.field("leak").unwrap().as_f64(), Some(0.0));

    let last = layers.data[32].as_struct().unwrap();
    assert_eq!(last.field("name").unwrap().as_string().unwrap(), "layer48");
    assert_eq!(last.field("precious").unwrap().as_f64(), Some(1.0));
    let w = cell(last.field("weights").unwrap());
    assert_eq!(dims(&w.data[0]), [3, 3, 64]);
    let b = w.data[1].as_numeric().unwrap();
    assert_eq!(b.dims, [1, 1]);
    assert!((b.scalar().unwrap() - 9.400101407663897e-05).abs() < 1e-12);
}

#[test]
fn dagnn_epoch50() {
    let (vars, cells) = read("dncnn-matconvnet/DnCNN-epoch-50.mat");
    assert!(cells.is_none());
    let net = var(&vars, "net").as_struct().unwrap();
    assert_eq!(net.fields, ["vars", "params", "layers", "meta"]);

    let params = net.field("params").unwrap().as_struct().unwrap();
    assert_eq!(params.dims, [1, 79]);
    assert_eq!(
        params.fields,
        ["name", "value", "learningRate", "weightDecay"]
    );
    assert_eq!(
        params.get(0, "name").unwrap().as_string().unwrap(),
        "conv1_f"
    );
    assert_eq!(dims(params.get(0, "value").unwrap()), [3, 3, 1, 64]);
    assert_eq!(
        params
            .get(0, "value")
            .unwrap()
            .as_numeric()
            .unwrap()
            .class_name(),
        "single"
    );
    assert_eq!(
        params.get(1, "name").unwrap().as_string().unwrap(),
        "conv1_b"
    );
    assert_eq!(dims(params.get(1, "value").unwrap()), [64, 1]);
    assert_eq!(
        params.get(2, "name").unwrap().as_string().unwrap(),
        "conv3_f"
    );
    assert_eq!(dims(params.get(2, "value").unwrap()), [3, 3, 64, 64]);
    assert_eq!(params.get(3, "learningRate").unwrap().as_f64(), Some(0.0));
    assert_eq!(
        params.get(39, "name").unwrap().as_string().unwrap(),
        "bnorm25_g"
    );

    let vars_ = net.field("vars").unwrap().as_struct().unwrap();
    assert_eq!(vars_.dims, [1, 52]);
    assert_eq!(vars_.get(0, "name").unwrap().as_string().unwrap(), "input");
    assert_eq!(vars_.get(0, "precious").unwrap().as_f64(), Some(0.0));

    let layers = net.field("layers").unwrap().as_struct().unwrap();
    assert_eq!(layers.dims, [1, 50]);
    assert_eq!(
        layers.get(0, "type").unwrap().as_string().unwrap(),
        "dagnn.Conv"
    );
    assert_eq!(
        layers.get(0, "params").unwrap().as_string_list().unwrap(),
        ["conv1_f", "conv1_b"]
    );
    assert_eq!(cell(layers.get(1, "params").unwrap()).dims, [0, 0]);
    let block = layers.get(0, "block").unwrap().as_struct().unwrap();
    assert_eq!(
        block.fields,
        ["size", "hasBias", "opts", "pad", "stride", "dilate"]
    );
    assert_eq!(
        block.field("size").unwrap().to_f64_vec().unwrap(),
        [3.0, 3.0, 1.0, 64.0]
    );
    assert_eq!(block.field("hasBias").unwrap().as_f64(), Some(1.0));
    let opts = cell(
        layers
            .get(38, "block")
            .unwrap()
            .as_struct()
            .unwrap()
            .field("opts")
            .unwrap(),
    );
    assert_eq!(opts.data[0].as_string().unwrap(), "CudnnWorkspaceLimit");
    assert_eq!(opts.data[1].as_f64(), Some(2147483648.0));
    assert_eq!(
        layers.get(39, "type").unwrap().as_string().unwrap(),
        "dagnn.BatchNorm"
    );
    // dagnn.Sum has a field-less 1x1 struct block, which MATLAB stores as an empty marker.
    assert_eq!(
        layers.get(48, "type").unwrap().as_string().unwrap(),
        "dagnn.Sum"
    );
    assert_eq!(
        layers.get(48, "block").unwrap(),
        &Value::Struct(StructArray {
            dims: vec![1, 1],
            fields: vec![],
            elements: vec![vec![]]
        })
    );
    let loss = layers.get(49, "block").unwrap().as_struct().unwrap();
    assert_eq!(loss.fields, ["loss", "ignoreAverage", "opts"]);
    assert_eq!(loss.field("loss").unwrap().as_string().unwrap(), "L2");

    let meta = net.field("meta").unwrap().as_numeric().unwrap();
    assert_eq!(
        (meta.dims.as_slice(), meta.class_name(), meta.numel()),
        (&[0, 0][..], "double", 0)
    );
}

#[test]
fn mcos_user_defined_objects_and_subsystem() {
    let (vars, cells) = read("matio-v73-mcos/test_user_defined_v73.mat");
    let expect = [
        ("obj_array", "TestClasses.BasicClass"),
        ("obj_handle_1", "TestClasses.HandleClass"),
        ("obj_handle_2", "TestClasses.HandleClass"),
        ("obj_no_vals", "TestClasses.BasicClass"),
        ("obj_with_default_val", "TestClasses.DefaultClass"),
        ("obj_with_nested_props", "TestClasses.BasicClass"),
        ("obj_with_vals", "TestClasses.BasicClass"),
    ];
    assert_eq!(vars.len(), expect.len());
    for (v, (name, class)) in vars.iter().zip(expect) {
        assert_eq!(v.name, name);
        let Value::Opaque(o) = &v.value else {
            panic!("{name}: {:?}", v.value)
        };
        assert_eq!((o.type_system.as_str(), o.class.as_str()), ("MCOS", class));
        let Value::Numeric(NumericArray {
            dims,
            real: NumData::U32(col),
            ..
        }) = o.data.as_ref()
        else {
            panic!("{name}: {:?}", o.data)
        };
        assert_eq!(col[0], 0xDD00_0000, "{name}");
        assert_eq!(dims[1], 1, "{name}: a column");
        if name == "obj_array" {
            // [magic, ndims=2, 2, 2, four object ids, class id]
            assert_eq!(dims, &[9, 1]);
            assert_eq!(&col[1..4], &[2, 2, 2]);
        } else {
            assert_eq!(dims, &[6, 1]);
        }
    }
    let cells = cells.expect("subsystem cells");
    assert_eq!(cells.len(), 37);
    let Value::Numeric(NumericArray {
        real: NumData::U8(blob),
        ..
    }) = &cells[0]
    else {
        panic!("{:?}", cells[0])
    };
    assert_eq!(blob.len(), 1104);
    let version = u32::from_le_bytes(blob[..4].try_into().unwrap());
    assert!((2..=4).contains(&version), "FileWrapper version {version}");
    // cell 2 is MATLAB's canonical empty; the rest are property cells and values.
    assert_eq!(
        cells[1],
        Value::Numeric(NumericArray::new(vec![0, 0], NumData::F64(vec![])))
    );
    assert!(cells.iter().skip(2).any(|c| matches!(c, Value::Cell(_))));
}

#[test]
fn mcos_strings_and_maps() {
    let (vars, cells) = read("matio-v73-mcos/test_string_v73.mat");
    assert_eq!(vars.len(), 3);
    for v in &vars {
        assert!(
            matches!(&v.value, Value::Opaque(o) if o.class == "string"),
            "{}",
            v.name
        );
    }
    assert!(cells.is_some_and(|c| c.len() == 8));

    let (vars, cells) = read("matio-v73-mcos/test_maps_v73.mat");
    let classes: Vec<String> = vars.iter().map(|v| v.value.class_name()).collect();
    assert_eq!(classes.iter().filter(|c| *c == "dictionary").count(), 6);
    assert_eq!(classes.iter().filter(|c| *c == "containers.Map").count(), 4);
    assert!(cells.is_some());
}

/// Truncated and corrupted files give errors, never panics (read_inner has no panic guard).
#[test]
fn hostile_input_errors_without_panicking() {
    for rel in [
        "matio-v73-mcos/test_user_defined_v73.mat",
        "dncnn-matconvnet/sigma=25.mat",
    ] {
        let bytes = fixture(rel);
        let n = bytes.len();
        for cut in [0, 100, 511, 512, 600, 1000, 2048, n / 3, n / 2, n - 4096] {
            assert!(read_inner(&bytes[..cut]).is_err(), "{rel} cut at {cut}");
        }
    }
    // Flip bytes all over the small file (its metadata is most of it).
    let bytes = fixture("matio-v73-mcos/test_user_defined_v73.mat");
    let mut errors = 0;
    for pos in (0..bytes.len()).step_by(7) {
        for x in [0xFF, 0x10] {
            let mut b = bytes.clone();
            b[pos] ^= x;
            errors += read_inner(&b).is_err() as usize;
        }
    }
    assert!(errors > 100, "only {errors} corruptions were noticed");
    // A v0 superblock whose base, free-space, end-of-file and driver addresses are all undefined.
    let mut b = bytes[..4096].to_vec();
    b[512 + 24..512 + 56].fill(0xFF);
    assert!(read_v73(&b).is_err());
}

fn class(name: &str) -> AttrValue {
    AttrValue::AsciiString(name.into())
}

/// Kinds the fixtures lack, written with hdf5-pure's own writer in MATLAB's layout.
#[test]
fn synthetic_complex_sparse_ints_cells_and_cycles() {
    let mut f = hdf5_pure::FileBuilder::new();
    f.with_userblock(512);
    // z = [1+2i, 3-4i] (HDF5 shape [2,1] -> MATLAB [1,2])
    f.create_dataset("z")
        .with_complex64_data(&[(1.0, 2.0), (3.0, -4.0)])
        .with_shape(&[2, 1])
        .set_attr("MATLAB_class", class("double"));
    // int32 stored as double; int16 [3x2] matrix, deflated in chunks
    f.create_dataset("w")
        .with_f64_data(&[7.0, -8.0])
        .with_shape(&[1, 2])
        .set_attr("MATLAB_class", class("int32"));
    f.create_dataset("m")
        .with_i16_data(&[1, 2, 3, 4, 5, 6])
        .with_shape(&[2, 3])
        .with_chunks(&[1, 3])
        .with_deflate(6)
        .set_attr("MATLAB_class", class("int16"));
    // sparse 3x3: (3,1)=5, (1,3)=6
    let mut sp = f.create_group("s");
    sp.set_attr("MATLAB_class", class("double"));
    sp.set_attr("MATLAB_sparse", AttrValue::U64(3));
    sp.create_dataset("jc")
        .with_u64_data(&[0, 1, 1, 2])
        .with_shape(&[4]);
    sp.create_dataset("ir")
        .with_u64_data(&[2, 0])
        .with_shape(&[2]);
    sp.create_dataset("data")
        .with_f64_data(&[5.0, 6.0])
        .with_shape(&[2]);
    f.add_group(sp.finish());
    // c = {'hi', true}
    let mut refs = f.create_group("#refs#");
    refs.create_dataset("a")
        .with_u16_data(&[104, 105])
        .with_shape(&[2, 1])
        .set_attr("MATLAB_class", class("char"))
        .set_attr("MATLAB_int_decode", AttrValue::I32(2));
    refs.create_dataset("b")
        .with_u8_data(&[1])
        .with_shape(&[1, 1])
        .set_attr("MATLAB_class", class("logical"));
    f.add_group(refs.finish());
    f.create_dataset("c")
        .with_path_references(&["/#refs#/a", "/#refs#/b"])
        .with_shape(&[2, 1])
        .set_attr("MATLAB_class", class("cell"));
    let bytes = f.finish().unwrap();

    let (vars, cells) = read_inner(&bytes).unwrap();
    assert!(cells.is_none());
    assert_eq!(
        vars.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["c", "m", "s", "w", "z"]
    );
    let z = var(&vars, "z").as_numeric().unwrap();
    assert_eq!(
        (z.dims.as_slice(), &z.real, z.imag.as_ref()),
        (
            &[1, 2][..],
            &NumData::F64(vec![1.0, 3.0]),
            Some(&NumData::F64(vec![2.0, -4.0]))
        )
    );
    assert_eq!(
        var(&vars, "w").as_numeric().unwrap().real,
        NumData::I32(vec![7, -8])
    );
    let m = var(&vars, "m").as_numeric().unwrap();
    assert_eq!(
        (m.dims.as_slice(), &m.real),
        (&[3, 2][..], &NumData::I16(vec![1, 2, 3, 4, 5, 6]))
    );
    let Value::Sparse(sp) = var(&vars, "s") else {
        panic!()
    };
    assert_eq!(
        (
            sp.dims.as_slice(),
            sp.ir.as_slice(),
            sp.jc.as_slice(),
            sp.real.as_slice()
        ),
        (&[3, 3][..], &[2, 0][..], &[0, 1, 1, 2][..], &[5.0, 6.0][..])
    );
    let c = cell(var(&vars, "c"));
    assert_eq!(c.dims, [1, 2]);
    assert_eq!(c.data[0].as_string().unwrap(), "hi");
    assert_eq!(
        c.data[1],
        Value::Logical {
            dims: vec![1, 1],
            data: vec![true]
        }
    );

    // A cell that contains itself is refused, not followed forever.
    let mut f = hdf5_pure::FileBuilder::new();
    f.with_userblock(512);
    f.create_dataset("loop")
        .with_path_references(&["/loop"])
        .with_shape(&[1, 1])
        .set_attr("MATLAB_class", class("cell"));
    let err = read_inner(&f.finish().unwrap()).unwrap_err().to_string();
    assert!(err.contains("loop{1}") && err.contains("cycle"), "{err}");
}

#[test]
fn guards_and_conversions() {
    assert_eq!(matlab_dims(&[64, 1, 3, 3], "x").unwrap(), [3, 3, 1, 64]);
    assert_eq!(matlab_dims(&[], "x").unwrap(), [1, 1]);
    assert_eq!(matlab_dims(&[5], "x").unwrap(), [5, 1]);
    assert_eq!(
        convert(NumData::U8(vec![1, 255]), "double"),
        NumData::F64(vec![1.0, 255.0])
    );
    assert_eq!(
        convert(NumData::F64(vec![3.0]), "int16"),
        NumData::I16(vec![3])
    );
    let mut r = Reader::new(10);
    assert!(r.charge(u64::MAX, "x").is_err());
    assert!(read_v73(&[0u8; 100]).is_err());
    assert!(read_v73(&[0u8; 4096]).is_err());
}
