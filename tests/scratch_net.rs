use matcnn::mat::MatFile;
use matcnn::net;

#[test]
fn scratch() {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/");
    for f in [
        "mw-workshop-mnist/MNIST_Network.mat",
        "chandrachapa-mnist-bn/net.mat",
        "basheer-digit-bn/net.mat",
        "vikas-fruit-tf/net.mat",
        "kwr-trafficlight-onnx/net.mat",
        "gender-audio/trainedNetwork_1.mat",
        "fuma28-speech/trainedNet.mat",
        "pac48-dlnet/dlnet.mat",
        "pac48-dlnet/TFNetPretrained.mat",
        "saurabh-mlp/trainedNet.mat",
        "saurabh-mlp/networkLayer.mat",
        "mimo-detect/trainedNet_test.mat",
        "dncnn-matconvnet/sigma=25.mat",
        "dncnn-matconvnet/DnCNN-epoch-50.mat",
        "mw-eegnet/eegNet.mat",
        "mw-fault-lstm/TrainedModel.mat",
    ] {
        let file = match MatFile::read(format!("{base}{f}")) {
            Ok(x) => x,
            Err(e) => {
                println!("{f}: READ ERROR {e}");
                continue;
            }
        };
        println!("{f}: {:?}", net::find_networks(&file));
        match net::import(&file, None) {
            Ok(n) => {
                println!(
                    "  {} layers, learnables {}, trained {}, classes {:?}",
                    n.layers.len(),
                    n.learnables(),
                    n.is_trained(),
                    n.classes
                );
                for (i, l) in n.layers.iter().enumerate() {
                    println!(
                        "   {i:2} {:24} {:40} {:?} in={:?} L={}",
                        l.name,
                        l.class,
                        l.output.map(|s| s.to_string()),
                        l.inputs,
                        n.layer_learnables(i)
                    );
                }
                for u in n.unsupported() {
                    if let net::LayerKind::Unsupported { reason } = &u.kind {
                        println!("  UNSUPPORTED {} {}: {}", u.name, u.class, reason);
                    }
                }
            }
            Err(e) => println!("  ERROR {e}"),
        }
    }
}
