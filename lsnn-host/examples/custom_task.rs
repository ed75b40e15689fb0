//! A task of one's own on the library: evidence accumulation. Two Poisson channels fire at
//! different rates for 120 ms, a pause follows, then a go cue; the network answers during
//! the cue which channel fired more. 30 LIF + 30 ALIF neurons with delays, DEEP R on w_rec,
//! trained with the built-in windowed cross-entropy, then exported as i8 and run through
//! lsnn-core, whose answers must equal the host's.
//!
//!     cargo run --release -p lsnn-host --example custom_task
//!
//! The last line is JSON: `{"test_accuracy": ..., "identical_to_core": true, ...}`; the
//! example fails (exit 1) below 95 % or on any differing answer.

use std::time::Instant;

use lsnn_core::model::WeightKind;
use lsnn_host::export::{encode_model_as, exported_params, run_model};
use lsnn_host::input::InputBatch;
use lsnn_host::loss::{Target, Window};
use lsnn_host::network::{Delays, Matrix, NetworkBuilder, Population, Sparse};
use lsnn_host::tasks::Task;
use lsnn_host::train::{evaluate, Control, Schedule, Trainer, TrainerOptions};
use lsnn_host::HostError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---- the user's task: this block is all a new task needs.
const EVIDENCE: usize = 120; // steps of Poisson evidence
const CUE: usize = 150; // the go cue from here to the end
const STEPS: usize = 180;
const HZ: (f64, f64) = (60.0, 10.0); // the busier channel's rate and the other's

struct Evidence {
    batch: usize,
}

impl Evidence {
    /// Inputs: channel 0 and 1 the evidence, 2 the go cue; the class is the busier channel.
    fn draw(&self, rng: &mut ChaCha8Rng, n: usize) -> (InputBatch, Vec<usize>) {
        let mut input = InputBatch::new(STEPS, 3);
        let mut classes = Vec::with_capacity(n);
        for _ in 0..n {
            let class = rng.gen_range(0..2);
            input.push_poisson(rng, |t, channel| match channel {
                0 | 1 if t < EVIDENCE => (if channel == class { HZ.0 } else { HZ.1 }) / 1000.0,
                2 if t >= CUE => 0.2,
                _ => 0.0,
            });
            classes.push(class);
        }
        (input, classes)
    }
}

impl Task for Evidence {
    fn network(&self) -> NetworkBuilder {
        NetworkBuilder::new(3, 2)
            .population(Population::lif(30, 20.0, 0.03))
            .population(Population::alif(30, 20.0, 0.03, 1.8))
            .tau_adaptation(200.0)
            .delays(Delays::Range(0, 4))
            .refractory(2)
            .sparse(Matrix::Rec, Sparse::Unsigned { connectivity: 0.3 })
    }

    fn batch(&mut self, rng: &mut ChaCha8Rng) -> Result<(InputBatch, Target), HostError> {
        let (input, classes) = self.draw(rng, self.batch);
        Ok((
            input,
            Target::classes(
                &classes,
                Window {
                    start: CUE,
                    end: STEPS,
                },
            ),
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
    let t0 = Instant::now();
    let mut task = Evidence { batch: 32 };
    let network = task.network().build(&mut ChaCha8Rng::seed_from_u64(1))?;
    let options = TrainerOptions {
        schedule: Schedule::Decay {
            lr: 0.01,
            every: 100,
            factor: 0.8,
        },
        seed: 2,
        ..TrainerOptions::default()
    };
    let mut trainer = Trainer::new(network, options)?;
    let (test_input, test_classes) = task.draw(&mut ChaCha8Rng::seed_from_u64(99), 500);
    let test_target = Target::classes(
        &test_classes,
        Window {
            start: CUE,
            end: STEPS,
        },
    );
    let iterations = trainer.fit(
        &mut task,
        600,
        &mut ChaCha8Rng::seed_from_u64(3),
        |trainer, k, step| {
            if k % 50 == 49 {
                let pass = trainer.evaluate(&test_input, &test_target)?;
                let accuracy = hits(&pass.logits, &test_classes) as f64 / test_classes.len() as f64;
                println!(
                    "iteration {:4}: loss {:.4}, test accuracy {accuracy:.3}",
                    k + 1,
                    step.loss
                );
                if accuracy >= 0.97 {
                    return Ok(Control::Stop);
                }
            }
            Ok(Control::Continue)
        },
    )?;
    let seconds = t0.elapsed().as_secs_f64();

    // Exported as i8 and run through lsnn-core (windows of 30 steps, the last is the
    // answer's), compared with the host's pass on the weights the model holds.
    let network = trainer.network()?;
    let f32_pass = trainer.evaluate(&test_input, &test_target)?;
    let accuracy = hits(&f32_pass.logits, &test_classes) as f64 / test_classes.len() as f64;
    let model = encode_model_as(&network.spec, &network.weights.params, WeightKind::I8)?;
    let core = run_model(&model, &test_input, STEPS / (STEPS - CUE))?;
    let exported = exported_params(&model, &network.spec)?;
    let host = evaluate(&network.spec, &exported, &test_input, &test_target)?;
    let last = STEPS / (STEPS - CUE) - 1;
    let core_answers: Vec<usize> = (0..test_classes.len())
        .map(|b| {
            argmax(&[
                core.window_logits[[b, last, 0]],
                core.window_logits[[b, last, 1]],
            ])
        })
        .collect();
    let host_answers: Vec<usize> = host.logits.iter().map(|l| argmax(&l[0])).collect();
    let differing = core_answers
        .iter()
        .zip(&host_answers)
        .filter(|(a, b)| a != b)
        .count();
    let correct = |answers: &[usize]| {
        answers
            .iter()
            .zip(&test_classes)
            .filter(|(a, c)| a == c)
            .count()
    };
    let i8_accuracy = correct(&core_answers) as f64 / test_classes.len() as f64;
    let identical = differing == 0;
    println!(
        "{}",
        serde_json::json!({
            "iterations": iterations,
            "seconds": seconds,
            "differing_from_core": differing,
            "f32_test_accuracy": accuracy,
            "test_accuracy": i8_accuracy,
            "identical_to_core": identical,
        })
    );
    Ok(accuracy >= 0.95 && i8_accuracy >= 0.95 && identical)
}

fn hits(logits: &[Vec<Vec<f32>>], classes: &[usize]) -> usize {
    logits
        .iter()
        .zip(classes)
        .filter(|(l, &c)| argmax(&l[0]) == c)
        .count()
}

fn argmax(values: &[f32]) -> usize {
    (0..values.len()).fold(0, |best, o| if values[o] > values[best] { o } else { best })
}
