//! The library API with bad input: every mistake is an `Err` whose message names the argument,
//! never a panic, and a failed step leaves the network as it was.

use lsnn_host::input::{random_spikes, InputBatch};
use lsnn_host::loss::{Outputs, Target, Window};
use lsnn_host::network::{Delays, Matrix, Network, NetworkBuilder, Population, Sparse, Weights};
use lsnn_host::runs::{RunResults, RunSettings, TaskRun};
use lsnn_host::tasks::Task;
use lsnn_host::train::{Control, Schedule, Trainer, TrainerOptions};
use lsnn_host::HostError;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const STEPS: usize = 40;

fn builder() -> NetworkBuilder {
    NetworkBuilder::new(3, 2)
        .population(Population::lif(6, 20.0, 0.03))
        .population(Population::alif(6, 20.0, 0.03, 1.8))
        .delays(Delays::Range(0, 2))
        .sparse(Matrix::Rec, Sparse::Unsigned { connectivity: 0.5 })
}

fn network() -> Network {
    builder().build(&mut ChaCha8Rng::seed_from_u64(1)).unwrap()
}

fn trainer() -> Trainer {
    Trainer::new(network(), TrainerOptions::default()).unwrap()
}

fn input(n_batch: usize, n_in: usize) -> InputBatch {
    random_spikes(&mut ChaCha8Rng::seed_from_u64(2), n_batch, STEPS, n_in, 0.1).unwrap()
}

fn message(result: Result<impl std::fmt::Debug, HostError>) -> String {
    result.expect_err("bad input must be an error").to_string()
}

fn assert_names(message: &str, words: &[&str]) {
    for word in words {
        assert!(message.contains(word), "`{word}` not in: {message}");
    }
}

#[test]
fn the_builder_names_the_argument_that_is_wrong() {
    let rng = &mut ChaCha8Rng::seed_from_u64(0);
    let pop = Population::lif(4, 20.0, 0.03);
    let cases = [
        (NetworkBuilder::new(0, 2).population(pop), "n_in"),
        (NetworkBuilder::new(3, 0).population(pop), "n_out"),
        (NetworkBuilder::new(3, 2), "population"),
        (
            NetworkBuilder::new(3, 2).population(Population::lif(4, -1.0, 0.03)),
            "population 0",
        ),
        (
            NetworkBuilder::new(3, 2)
                .population(pop)
                .delays(Delays::Range(3, 1)),
            "delays",
        ),
        (
            NetworkBuilder::new(3, 2)
                .population(pop)
                .sparse(Matrix::In, Sparse::Unsigned { connectivity: 0.5 })
                .sparse(Matrix::In, Sparse::Unsigned { connectivity: 0.2 }),
            "w_in is made sparse twice",
        ),
        (
            NetworkBuilder::new(3, 2)
                .population(pop)
                .sparse(Matrix::Out, Sparse::Unsigned { connectivity: 1.5 }),
            "connectivity of w_out",
        ),
        (NetworkBuilder::new(3, 2).population(pop).dt(0.0), "dt"),
    ];
    for (builder, words) in cases {
        assert_names(&message(builder.build(rng)), &[words]);
    }
}

#[test]
fn a_built_network_has_the_sizes_asked_for() {
    let n = network();
    assert_eq!(
        (n.spec.n_in(), n.spec.n_rec(), n.weights.params.n_out()),
        (3, 12, 2)
    );
    assert_eq!(n.spec.config.n_delay, 3);
    assert_eq!(n.spec.beta[..6], [0.0; 6]);
    assert_eq!(n.spec.beta[6..], [1.8; 6]);
    let rec = n.weights.rewired(Matrix::Rec).expect("w_rec is sparse");
    assert!(rec.n_connected() > 0 && rec.n_connected() < 144);
    let signed = NetworkBuilder::new(3, 2)
        .population(Population::lif(10, 20.0, 0.03))
        .excitatory(0.7)
        .sparse(Matrix::Rec, Sparse::Signed { connectivity: 0.5 })
        .sparse(Matrix::Out, Sparse::Signed { connectivity: 0.5 })
        .build(&mut ChaCha8Rng::seed_from_u64(3))
        .unwrap();
    // Dale's law: one sign per presynaptic neuron, the same in w_rec and w_out.
    let rec = &signed.weights.rewired(Matrix::Rec).unwrap().sign;
    let out = &signed.weights.rewired(Matrix::Out).unwrap().sign;
    for (j, (r, o)) in rec.rows().into_iter().zip(out.rows()).enumerate() {
        assert!(
            r.iter().chain(o.iter()).all(|&s| s == r[0]),
            "neuron {j}: {r} {o}"
        );
    }
    let excitatory = rec.column(0).iter().filter(|&&s| s > 0.0).count();
    assert_eq!(excitatory, 8, "int(0.7 * 10) + 1 excitatory neurons");
}

#[test]
fn mismatched_shapes_are_errors_naming_what_does_not_fit() {
    let mut t = trainer();
    let before = t.network().unwrap();
    let classes = Target::classes(
        &[0, 1],
        Window {
            start: 0,
            end: STEPS,
        },
    );
    assert_names(
        &message(t.step(&input(2, 5), &classes)),
        &["input", "5 channels", "3"],
    );
    assert_names(
        &message(t.step(&input(3, 3), &classes)),
        &["target", "2 elements", "3"],
    );
    let custom = Target::Custom {
        windows: vec![
            vec![Window {
                start: 10,
                end: STEPS + 1
            }];
            2
        ],
        loss: std::sync::Arc::new(|o: &Outputs<'_>| (0.0, vec![0.0; o.values().len()])),
    };
    assert_names(
        &message(t.step(&input(2, 3), &custom)),
        &["window 10..41", "40 steps"],
    );
    let squared = Target::SquaredError(vec![Array2::zeros((STEPS, 3)); 2]);
    assert_names(
        &message(t.step(&input(2, 3), &squared)),
        &[
            "squared-error targets",
            "[40, 3]",
            "[n_steps, n_out] = [40, 2]",
        ],
    );
    assert_eq!(
        t.network().unwrap(),
        before,
        "a failed step changed the network"
    );
    assert_eq!(t.iteration(), 0);
}

#[test]
fn a_loss_gradient_of_the_wrong_length_is_an_error() {
    let mut t = trainer();
    let short = Target::per_step(2, STEPS, |o: &Outputs<'_>| {
        (1.0, vec![0.0; o.values().len() - 1])
    });
    assert_names(
        &message(t.step(&input(2, 3), &short)),
        &[
            "gradient of 159 values, expected 160",
            "2 elements",
            "2 outputs",
        ],
    );
}

#[test]
fn a_nan_from_a_user_loss_is_an_error_and_nothing_is_applied() {
    let mut t = trainer();
    let before = t.network().unwrap();
    let nan_loss = Target::per_step(2, STEPS, |o: &Outputs<'_>| {
        (f32::NAN, vec![0.0; o.values().len()])
    });
    assert_names(
        &message(t.step(&input(2, 3), &nan_loss)),
        &["loss returned NaN"],
    );
    let nan_grad = Target::per_step(2, STEPS, |o: &Outputs<'_>| {
        let mut g = vec![0.0; o.values().len()];
        g[o.index(1, 7, 1)] = f32::NAN;
        (0.5, g)
    });
    assert_names(
        &message(t.step(&input(2, 3), &nan_grad)),
        &["gradient is NaN", "element 1, window 7, output 1"],
    );
    assert_eq!(
        t.network().unwrap(),
        before,
        "a failed step changed the network"
    );
}

#[test]
fn an_unknown_matrix_name_is_an_error_naming_the_known_ones() {
    assert_names(
        &message(Matrix::from_name("w_hid")),
        &["w_hid", "w_in, w_rec and w_out"],
    );
    let mut weights: Weights<f32> = network().weights;
    weights.rewired[0].name = "w_recurrent".into();
    assert_names(&message(weights.sync_rewired()), &["w_recurrent"]);
    // A rewired matrix whose shape is not its matrix's.
    let mut weights: Weights<f32> = network().weights;
    weights.rewired[0].theta = Array2::zeros((2, 2));
    assert_names(
        &message(weights.sync_rewired()),
        &["rewired w_rec", "(12, 12)"],
    );
}

#[test]
fn a_user_loss_trains_and_an_evaluation_changes_nothing() {
    let options = TrainerOptions {
        schedule: Schedule::Constant(0.01),
        ..TrainerOptions::default()
    };
    let mut t = Trainer::new(network(), options).unwrap();
    let target = Target::per_step(2, STEPS, |o: &Outputs<'_>| {
        let n = o.values().len() as f32;
        let loss = o
            .values()
            .iter()
            .map(|y| (y - 0.5) * (y - 0.5))
            .sum::<f32>()
            / n;
        (
            loss,
            o.values().iter().map(|y| 2.0 * (y - 0.5) / n).collect(),
        )
    });
    let batch = input(2, 3);
    let first = t.evaluate(&batch, &target).unwrap().loss;
    assert_eq!(t.evaluate(&batch, &target).unwrap().loss, first);
    for _ in 0..50 {
        t.step(&batch, &target).unwrap();
    }
    let last = t.evaluate(&batch, &target).unwrap().loss;
    assert!(last < first / 2.0, "loss {first} -> {last}");
}

/// A small task for the run tests: random spikes, a class per element.
struct Tiny;

impl Task for Tiny {
    fn network(&self) -> NetworkBuilder {
        builder()
    }

    fn batch(&mut self, rng: &mut ChaCha8Rng) -> Result<(InputBatch, Target), HostError> {
        let input = random_spikes(rng, 2, STEPS, 3, 0.1)?;
        Ok((
            input,
            Target::classes(
                &[0, 1],
                Window {
                    start: 20,
                    end: STEPS,
                },
            ),
        ))
    }
}

fn run_options() -> TrainerOptions {
    TrainerOptions {
        schedule: Schedule::Decay {
            lr: 0.01,
            every: 2,
            factor: 0.5,
        },
        seed: 11,
        ..TrainerOptions::default()
    }
}

fn settings(n_iter: usize, plots: bool) -> RunSettings {
    RunSettings {
        n_iter,
        every: 2,
        quiet: true,
        plots,
    }
}

#[test]
fn a_task_run_resumes_exactly_and_writes_results_and_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let go_on = |_: &mut Trainer, _: usize| Ok(Control::Continue);
    let (mut straight, mut t_straight) =
        TaskRun::start(&Tiny, run_options(), tmp.path(), "tiny", 7).unwrap();
    let whole = straight
        .train(&mut t_straight, &mut Tiny, settings(6, true), go_on)
        .unwrap();

    let (mut first, mut t_first) =
        TaskRun::start(&Tiny, run_options(), &tmp.path().join("b"), "tiny", 7).unwrap();
    first
        .train(&mut t_first, &mut Tiny, settings(4, false), go_on)
        .unwrap();
    let (mut resumed, mut t_resumed) = TaskRun::resume(&Tiny, run_options(), &first.dir).unwrap();
    assert_eq!(t_resumed.iteration(), 4);
    let rest = resumed
        .train(&mut t_resumed, &mut Tiny, settings(6, false), go_on)
        .unwrap();

    assert_eq!(whole.iterations, 6);
    assert_eq!(rest.losses, whole.losses, "the resumed run's losses differ");
    assert_eq!(t_resumed.network().unwrap(), t_straight.network().unwrap());
    assert_eq!(t_resumed.state().unwrap(), t_straight.state().unwrap());
    let written: RunResults =
        serde_json::from_str(&std::fs::read_to_string(straight.dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(written, whole);
    for figure in ["learning_curve.png", "activity.png"] {
        let len = std::fs::metadata(straight.dir.join("plots").join(figure))
            .unwrap()
            .len();
        assert!(len > 1000, "{figure}: {len} bytes");
    }
}

#[test]
fn resuming_a_folder_without_a_checkpoint_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let err = TaskRun::resume(&Tiny, run_options(), tmp.path())
        .err()
        .expect("no checkpoint");
    assert_names(&err.to_string(), &["checkpoint.safetensors"]);
}

#[test]
fn training_through_the_api_does_not_depend_on_the_thread_count() {
    let train = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut t = Trainer::new(network(), run_options()).unwrap();
            let mut data = ChaCha8Rng::seed_from_u64(5);
            t.fit(&mut Tiny, 5, &mut data, |_, _, _| Ok(Control::Continue))
                .unwrap();
            (t.network().unwrap(), t.state().unwrap())
        })
    };
    let one = train(1);
    assert_eq!(train(3), one);
    assert_ne!(one.0, network(), "training changed nothing");
}

/// The Trainer on the GPU (skipped without a CUDA device).
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use lsnn_host::train::device::Device;

    /// Whether a CUDA device is here (else the test says it is skipped).
    fn device() -> bool {
        let name = lsnn_gpu::probe();
        let line = name.as_ref().map(|n| format!("device: {n}"));
        println!("{}", line.as_deref().unwrap_or("skipped: no CUDA device"));
        name.is_some()
    }

    fn trained(device: Device) -> (Network, lsnn_host::train::TrainerState) {
        let options = TrainerOptions {
            device,
            ..run_options()
        };
        let mut t = Trainer::new(network(), options).unwrap();
        let mut data = ChaCha8Rng::seed_from_u64(5);
        t.fit(&mut Tiny, 5, &mut data, |_, _, _| Ok(Control::Continue))
            .unwrap();
        (t.network().unwrap(), t.state().unwrap())
    }

    #[test]
    fn a_trainer_on_the_gpu_trains_as_on_the_cpu_bit_for_bit() {
        if !device() {
            return;
        }
        assert_eq!(trained(Device::Cuda), trained(Device::Cpu));
    }

    #[test]
    fn a_user_loss_on_the_gpu_is_an_error_naming_the_cpu_device() {
        if !device() {
            return;
        }
        let options = TrainerOptions {
            device: Device::Cuda,
            ..run_options()
        };
        let mut t = Trainer::new(network(), options).unwrap();
        let target = Target::per_step(2, STEPS, |o: &Outputs<'_>| {
            (0.0, vec![0.0; o.values().len()])
        });
        assert_names(&message(t.step(&input(2, 3), &target)), &["cpu device"]);
    }
}
