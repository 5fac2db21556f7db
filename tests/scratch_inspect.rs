mod net {
    pub use matcnn::net::*;
}
#[path = "../src/inspect.rs"]
mod inspect;

#[test]
fn show() {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/");
    for f in [
        "mw-workshop-mnist/MNIST_Network.mat",
        "gender-audio/trainedNetwork_1.mat",
        "pac48-dlnet/dlnet.mat",
        "dncnn-matconvnet/sigma=25.mat",
        "mw-fault-lstm/TrainedModel.mat",
        "saurabh-mlp/networkLayer.mat",
    ] {
        let file = matcnn::mat::MatFile::read(format!("{base}{f}")).unwrap();
        let n = matcnn::net::import(&file, None).unwrap();
        println!("{}", inspect::text(&n));
    }
    let file = matcnn::mat::MatFile::read(format!("{base}pac48-dlnet/dlnet.mat")).unwrap();
    let n = matcnn::net::import(&file, None).unwrap();
    println!(
        "{}",
        serde_json::to_string_pretty(&inspect::json(&n)).unwrap()
    );
}
