//! Per-step regression with a loss of one's own: the readout learns to draw a sum of three
//! sines from a frozen Poisson input (the same spikes every iteration), under a user-written
//! squared-error loss that gets the readout at every step and returns its gradient.
//!
//!     cargo run --release -p lsnn-host --example regression
//!
//! The last line is JSON: `{"first_loss": ..., "last_loss": ..., "ratio": ...}`; the example
//! fails (exit 1) unless the loss fell at least tenfold.

use lsnn_host::input::{random_spikes, InputBatch};
use lsnn_host::loss::{Outputs, Target};
use lsnn_host::network::{NetworkBuilder, Population};
use lsnn_host::tasks::Task;
use lsnn_host::train::{Control, Schedule, Trainer, TrainerOptions};
use lsnn_host::HostError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// ---- the user's task and loss.
const STEPS: usize = 400;
const N_IN: usize = 20;

/// The target at step `t`: three sines of periods 100, 200 and 400 ms.
fn target(t: usize) -> f32 {
    let phase = |period: f32| (2.0 * std::f32::consts::PI * t as f32 / period).sin();
    0.5 * phase(100.0) + 0.3 * phase(200.0) + 0.4 * phase(400.0)
}

/// Mean squared error of the readout at every step, and its gradient.
fn squared_error(outputs: &Outputs<'_>) -> (f32, Vec<f32>) {
    let n = outputs.values().len() as f32;
    let (mut loss, mut grad) = (0.0, vec![0.0; outputs.values().len()]);
    for e in 0..outputs.n_batch() {
        for t in 0..outputs.n_windows(e) {
            let at = outputs.index(e, t, 0);
            let diff = outputs.values()[at] - target(t);
            loss += diff * diff / n;
            grad[at] = 2.0 * diff / n;
        }
    }
    (loss, grad)
}

struct Sines {
    input: InputBatch,
}

impl Task for Sines {
    fn network(&self) -> NetworkBuilder {
        NetworkBuilder::new(N_IN, 1)
            .population(Population::lif(50, 20.0, 0.03))
            .readout_bias(true)
    }

    fn batch(&mut self, _: &mut ChaCha8Rng) -> Result<(InputBatch, Target), HostError> {
        Ok((
            self.input.clone(),
            Target::per_step(1, STEPS, squared_error),
        ))
    }
}
// ---- end of the user's task.

fn main() -> Result<std::process::ExitCode, HostError> {
    Ok(if run()? {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

fn run() -> Result<bool, HostError> {
    let frozen = random_spikes(&mut ChaCha8Rng::seed_from_u64(4), 1, STEPS, N_IN, 0.02)?;
    let mut task = Sines { input: frozen };
    let network = task.network().build(&mut ChaCha8Rng::seed_from_u64(5))?;
    let options = TrainerOptions {
        schedule: Schedule::Constant(0.01),
        ..TrainerOptions::default()
    };
    let mut trainer = Trainer::new(network, options)?;
    let mut losses = Vec::new();
    trainer.fit(
        &mut task,
        500,
        &mut ChaCha8Rng::seed_from_u64(0),
        |_, k, step| {
            losses.push(step.loss);
            if k % 50 == 0 {
                println!("iteration {k:4}: loss {:.5}", step.loss);
            }
            Ok(Control::Continue)
        },
    )?;
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    let ratio = first / last;
    println!(
        "{}",
        serde_json::json!({"first_loss": first, "last_loss": last, "ratio": ratio})
    );
    Ok(ratio >= 10.0)
}
