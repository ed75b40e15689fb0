//! Time to encode a batch of 256 MNIST images into sMNIST's input events on the host (the
//! work a GPU training step overlaps), median of 20 after a warm-up:
//!
//!     cargo run --release -p lsnn-host --example encode_speed [-- MNIST_DIR]
//!
//! MNIST_DIR defaults to the shipped subset (fixtures/mnist-subset).
use std::path::PathBuf;
use std::time::Instant;

use lsnn_host::data::Mnist;
use lsnn_host::tasks::smnist::SmnistEncoding;

const BATCH: usize = 256;
const REPEATS: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/mnist-subset")
        });
    let mnist = Mnist::load(&dir)?;
    let n = mnist.train.len();
    if n == 0 {
        return Err(format!("{}: no training images", dir.display()).into());
    }
    let encoding = SmnistEncoding::default();
    let mut ms = Vec::with_capacity(REPEATS);
    let mut events = 0;
    for r in 0..=REPEATS {
        let images: Vec<&[u8]> = (0..BATCH)
            .map(|i| mnist.train.image((r * BATCH + i) % n))
            .collect();
        let t0 = Instant::now();
        let batch = encoding.encode_batch(&images)?;
        let elapsed = t0.elapsed().as_secs_f64() * 1e3;
        events = batch.n_events();
        if r > 0 {
            ms.push(elapsed);
        }
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "encode {BATCH} images ({} threads): median {:.2} ms, min {:.2} ms; {events} events",
        rayon::current_num_threads(),
        ms[ms.len() / 2],
        ms[0]
    );
    Ok(())
}
