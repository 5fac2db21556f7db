//! Reading MAT files and importing the networks they hold.
//!
//! `cargo bench --bench read_mat` (fixtures from `../shared/fixtures`, read at run time).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use matcnn::mat::MatFile;
use std::hint::black_box;

mod common;
use common::fixture;

const SQUEEZENET: &str = "gender-audio/trainedNetwork_1.mat";
const MNIST: &str = "mw-workshop-mnist/MNIST_Network.mat";

fn read_mat(c: &mut Criterion) {
    let path = fixture(SQUEEZENET);
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(size));
    g.bench_function("squeezenet_dag_2.7MB", |b| {
        b.iter(|| MatFile::read(black_box(&path)).expect("read"))
    });
    g.finish();
}

fn read_and_import(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_import");
    for (name, rel) in [("squeezenet_dag", SQUEEZENET), ("mnist_series", MNIST)] {
        let path = fixture(rel);
        g.bench_function(name, |b| {
            b.iter(|| {
                let file = MatFile::read(black_box(&path)).expect("read");
                matcnn::net::import(&file, None).expect("import")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, read_mat, read_and_import);
criterion_main!(benches);
