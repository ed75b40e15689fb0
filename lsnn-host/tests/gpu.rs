//! The GPU path seen from lsnn-host (`--device cuda`, the `gpu` fixture backend).
//!
//! Without the `cuda` feature: `--device cuda` is a clear flag error (exit 2). With it, every
//! test needs a CUDA device and prints "skipped: no CUDA device" and passes without one (CI).

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The CLI; `LSNN_HOST_BIN` overrides where it is (prebuilt binaries run on a device machine).
fn bin() -> PathBuf {
    std::env::var_os("LSNN_HOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lsnn-host")))
}

/// sMNIST runs whose training batches are drawn during the previous step where allowed
/// (`overlap_batches`): a small network, ten iterations per epoch over the shipped subset, so
/// that a run crosses an epoch, decays the learning rate, validates and checkpoints between
/// prefetched batches.
mod overlap {
    use super::*;

    use lsnn_host::train::device::faults::nan_gradient_engine;
    use lsnn_host::train::device::Device;
    use lsnn_host::tutorials::smnist::{SmnistFlags, SmnistOutcome, SmnistSession};
    use lsnn_host::HostError;

    pub fn flags(results: &std::path::Path, device: Device, n_iter: usize) -> SmnistFlags {
        SmnistFlags {
            validation_size: 100,
            n_batch_train: 40,
            n_batch_validation: 16,
            n_regular: 12,
            n_adaptive: 8,
            n_iter,
            print_every: 5,
            lr_decay_every: 4,
            seed: 7,
            do_plot: false,
            results_dir: results.to_path_buf(),
            device,
            ..SmnistFlags::defaults(&common::mnist_subset())
        }
    }

    /// A run of `flags` with or without drawing batches during steps, with a NaN gradient
    /// at iteration `nan_gradient_at` if given.
    pub fn run(
        flags: SmnistFlags,
        overlap_batches: bool,
        nan_gradient_at: Option<usize>,
    ) -> (SmnistSession, Result<SmnistOutcome, HostError>) {
        let device = flags.device;
        let mut s = SmnistSession::new(flags).unwrap();
        s.overlap_batches = overlap_batches;
        let outcome = match nan_gradient_at {
            Some(at) => s.run_on(nan_gradient_engine(device, at).unwrap(), common::quiet()),
            None => s.run(common::quiet()),
        };
        (s, outcome)
    }

    /// Everything a run leaves is the same.
    pub fn assert_same_run(a: &SmnistSession, b: &SmnistSession) {
        assert_eq!(a.progress.iteration, b.progress.iteration);
        assert_eq!(a.progress.lists.loss_list, b.progress.lists.loss_list);
        assert_eq!(a.progress.task, b.progress.task);
        assert_eq!(a.progress.learning_rate, b.progress.learning_rate);
        assert_eq!(a.progress.rng, b.progress.rng);
        assert_eq!(a.data.train.position(), b.data.train.position());
        assert_eq!(a.data.validation.position(), b.data.validation.position());
        assert_eq!(a.progress.optimizer, b.progress.optimizer);
        assert!(a.weights == b.weights, "the weights differ");
    }

    /// A run stopped by a NaN gradient at iteration 6 (while the batch of 7 is drawn): the
    /// session holds the device's latest state (= a run of 6 iterations), the run's generator
    /// and training split stand where the sequential loop stops, and a checkpoint written
    /// after the error holds that state.
    pub fn an_interrupted_run_keeps_the_latest_state(device: Device) {
        let tmp = tempfile::tempdir().unwrap();
        let (quiet, failing) = (None, Some(6));
        let (reference, done) = run(flags(&tmp.path().join("ref"), device, 6), true, quiet);
        done.unwrap();
        let (mut failed, err) = run(flags(&tmp.path().join("a"), device, 12), true, failing);
        let (sequential, err_seq) = run(flags(&tmp.path().join("b"), device, 12), false, failing);
        for e in [err.unwrap_err(), err_seq.unwrap_err()] {
            match e {
                HostError::Training { iteration, .. } => assert_eq!(iteration, 6),
                other => panic!("unexpected error {other}"),
            }
        }
        assert_eq!(failed.progress.iteration, 6);
        assert_same_run(&failed, &sequential);
        assert_eq!(failed.progress.optimizer, reference.progress.optimizer);
        assert!(
            failed.weights == reference.weights,
            "not the latest weights"
        );
        failed.save_checkpoint().unwrap();
        let dir = failed.run_dir.clone().unwrap();
        let resumed = SmnistSession::resume(&dir, None, None).unwrap();
        assert_eq!(resumed.progress.iteration, 6);
        assert!(resumed.weights == reference.weights, "checkpoint lost work");
        // Adam's f64 moments survive the JSON checkpoint exactly (serde_json float_roundtrip).
        assert_eq!(resumed.progress.optimizer, reference.progress.optimizer);
    }

    #[test]
    fn drawing_batches_during_steps_changes_nothing_on_the_cpu() {
        let tmp = tempfile::tempdir().unwrap();
        let quiet = None;
        let (a, ra) = run(flags(&tmp.path().join("a"), Device::Cpu, 23), true, quiet);
        let (b, rb) = run(flags(&tmp.path().join("b"), Device::Cpu, 23), false, quiet);
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(a.data.train.epochs_completed() >= 2);
        assert!(a.progress.learning_rate < a.flags.learning_rate, "no decay");
        assert_same_run(&a, &b);
        assert_eq!(ra.test_accuracy, rb.test_accuracy);
    }

    #[test]
    fn an_interrupted_cpu_run_keeps_the_latest_state() {
        an_interrupted_run_keeps_the_latest_state(Device::Cpu);
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn device_cuda_without_the_feature_is_a_flag_error() {
    for args in [
        vec!["bench", "--task", "smnist", "--device", "cuda"],
        vec!["train", "store-recall", "--device", "cuda", "--n-iter", "1"],
        vec![
            "train",
            "smnist",
            "--data-dir",
            ".",
            "--device",
            "cuda",
            "--n-iter",
            "1",
        ],
    ] {
        let out = Command::new(bin()).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--features cuda"), "{args:?}: {stderr}");
    }
    let out = Command::new(bin())
        .args(["bench", "--task", "smnist", "--device", "tpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    use lsnn_host::fixture::{check_file, select_backends, CheckOptions, Family, Status};
    use lsnn_host::input::random_spikes;
    use lsnn_host::loss::{LossTerm, RateRegulariser, Target};
    use lsnn_host::network::Weights;
    use lsnn_host::tasks::store_recall::generate;
    use lsnn_host::train::deepr::budget;
    use lsnn_host::train::device::faults::nan_gradient_engine;
    use lsnn_host::train::device::{engine, train_step_on as train_step, Device, Engine, States};
    use lsnn_host::train::optim::Optimizer;
    use lsnn_host::train::step::TrainStep;
    use lsnn_host::train::{zero_states, HostState};
    use lsnn_host::tutorials::bench::BenchTask;
    use lsnn_host::tutorials::smnist;
    use lsnn_host::tutorials::store_recall::{self, Session, StoreRecallFlags};
    use lsnn_host::HostError;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn device() -> bool {
        match lsnn_gpu::probe() {
            Some(name) => {
                eprintln!("device: {name}");
                true
            }
            None => {
                println!("skipped: no CUDA device");
                false
            }
        }
    }

    /// `--device cuda` on a machine without a CUDA device: a flag error (exit 2) before any
    /// work, and no run folder left behind.
    #[test]
    fn cuda_without_a_device_is_a_flag_error_before_any_work() {
        if lsnn_gpu::device_available() {
            println!("a CUDA device is present: nothing to check");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let results = tmp.path().join("runs");
        let subset = common::mnist_subset();
        let results_arg = results.to_str().unwrap();
        for args in [
            vec!["train", "store-recall", "--device", "cuda", "--n-iter", "1"],
            vec![
                "train",
                "smnist",
                "--data-dir",
                subset.to_str().unwrap(),
                "--validation-size",
                "50",
                "--device",
                "cuda",
                "--n-iter",
                "1",
            ],
        ] {
            let out = Command::new(bin())
                .args(&args)
                .args(["--results-dir", results_arg])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains("no CUDA driver or device"),
                "{args:?}: {stderr}"
            );
            assert!(!results.exists(), "{args:?} made a run folder");
        }
    }

    /// Two sMNIST runs' validations: the same losses (the host's forward of weights that are
    /// the same bit for bit), accuracies and connectivities.
    fn assert_validations_match(cpu: &smnist::SmnistSession, gpu: &smnist::SmnistSession) {
        let (a, b) = (&cpu.progress.lists.loss_list, &gpu.progress.lists.loss_list);
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            eprintln!("validation {k}: cpu {x} gpu {y}");
            assert_eq!(x.to_bits(), y.to_bits(), "validation {k}: cpu {x} gpu {y}");
        }
        assert_eq!(
            cpu.progress.task.accuracy_list,
            gpu.progress.task.accuracy_list
        );
        assert_eq!(
            cpu.progress.task.connectivity_list,
            gpu.progress.task.connectivity_list
        );
    }

    /// The sMNIST tutorial's network (seed `seed`: structure, weights) with `b` random input
    /// sequences of its 840 steps and random labels, and the generator after those draws.
    struct SmnistCase {
        flags: smnist::SmnistFlags,
        spec: lsnn_host::network::Spec<f32>,
        weights: lsnn_host::network::Weights<f32>,
        input: lsnn_host::input::InputBatch,
        terms: Vec<Vec<LossTerm<f32>>>,
        reg: RateRegulariser<f32>,
        rng: ChaCha8Rng,
    }

    fn smnist_case(seed: u64, b: usize) -> SmnistCase {
        let flags = smnist::SmnistFlags {
            seed: seed as i64,
            ..smnist::SmnistFlags::defaults(std::path::Path::new("unused"))
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spec = smnist::build_spec(&flags, &mut rng);
        let weights = smnist::init_weights(&flags, &mut rng).unwrap();
        let input = random_spikes(&mut rng, b, 840, spec.n_in(), 0.02).unwrap();
        let labels: Vec<usize> = (0..b).map(|_| rng.gen_range(0..10)).collect();
        let terms = smnist::loss_terms(&flags.encoding(), &labels);
        let reg = RateRegulariser::uniform(spec.n_rec(), flags.reg, flags.reg_rate);
        SmnistCase {
            flags,
            spec,
            weights,
            input,
            terms,
            reg,
            rng,
        }
    }

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// The same parameters, DEEP R magnitudes and optimiser (step, Adam's moments), bit for bit.
    fn assert_same_weights(
        (wa, oa): (&Weights<f32>, &Optimizer),
        (wb, ob): (&Weights<f32>, &Optimizer),
    ) {
        for ((name, x), (_, y)) in wa.params.named().into_iter().zip(wb.params.named()) {
            assert!(bits(x) == bits(y), "{name} differs");
        }
        assert_eq!(wa.rewired.len(), wb.rewired.len());
        for (x, y) in wa.rewired.iter().zip(&wb.rewired) {
            let (tx, ty) = (x.theta.as_slice().unwrap(), y.theta.as_slice().unwrap());
            assert!(bits(tx) == bits(ty), "the magnitudes of {} differ", x.name);
        }
        assert_eq!(oa.step, ob.step);
        for (ma, mb) in [(&oa.m, &ob.m), (&oa.v, &ob.v)] {
            assert_eq!(ma.len(), mb.len());
            for ((name, x), (_, y)) in ma.iter().zip(mb) {
                let same = x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(
                    same && x.len() == y.len(),
                    "Adam's moments of {name} differ"
                );
            }
        }
    }

    /// The same final states (v, z, b, refractory counters, delay ring), bit for bit.
    fn assert_same_states(a: &[HostState<f32>], b: &[HostState<f32>]) {
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(bits(x.v()) == bits(y.v()), "v of element {k}");
            assert!(bits(x.z()) == bits(y.z()), "z of element {k}");
            assert!(bits(x.b()) == bits(y.b()), "b of element {k}");
            assert_eq!(x.refractory_left(), y.refractory_left(), "element {k}");
            for j in 0..x.n_rec() {
                for d in 0..x.n_delay() {
                    let (p, q) = (x.i_future(j, d), y.i_future(j, d));
                    assert_eq!(p.to_bits(), q.to_bits(), "ring of element {k}");
                }
            }
        }
    }

    #[test]
    fn the_gpu_backend_passes_every_project_fixture() {
        if !device() {
            return;
        }
        // LSNN_FIXTURES overrides the folder (prebuilt binaries run elsewhere).
        let dir = std::env::var_os("LSNN_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures"));
        let backends = select_backends(&["gpu".into()]).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut families = std::collections::BTreeSet::new();
        let mut passed = 0;
        for path in files {
            for line in check_file(&path, &backends, &CheckOptions::default()).unwrap() {
                if line.backend.as_deref() != Some("gpu") {
                    continue; // encoding / readout ops: the GPU does not compute them
                }
                eprintln!("{line}");
                assert_eq!(line.status, Status::Pass, "{line}");
                families.insert(format!("{:?}", line.quantity.family()));
                passed += 1;
            }
        }
        for family in [
            Family::Forward,
            Family::LossGrad,
            Family::DeeprStep,
            Family::Training,
        ] {
            assert!(
                families.contains(&format!("{family:?}")),
                "no {family:?} line from the gpu backend ({families:?})"
            );
        }
        eprintln!("{passed} gpu lines passed");
    }

    /// `n_iter` store-recall training iterations (state carried from batch to batch, DEEP R
    /// as the flags say) on the host and on the GPU from the same seed: the same losses, and
    /// at the end the same weights, optimiser, generator and states, bit for bit (the CPU
    /// emulator checks the same in CI: `lsnn-gpu/src/emu.rs`).
    fn store_recall_iterations_match_the_host(flags: &StoreRecallFlags, n_iter: usize) {
        let b = flags.batch_train;
        let mut rng = ChaCha8Rng::seed_from_u64(flags.seed as u64);
        let spec = store_recall::build_spec(flags, &mut rng);
        let weights = store_recall::init_weights(flags, &mut rng).unwrap();
        let n = spec.n_rec();
        let reg = RateRegulariser::uniform(n, flags.reg, flags.reg_rate);
        let mut runs: Vec<_> = [Device::Cpu, Device::Cuda]
            .into_iter()
            .map(|d| {
                (
                    d,
                    weights.clone(),
                    Optimizer::adam(),
                    zero_states(&spec, b),
                    rng.clone(),
                )
            })
            .collect();
        let mut data = ChaCha8Rng::seed_from_u64(flags.seed as u64 + 1);
        for k in 0..n_iter {
            let batch = generate(&mut data, b, &flags.task()).unwrap();
            let terms = store_recall::loss_terms(&batch);
            let mut losses = Vec::new();
            let step = TrainStep {
                spec: &spec,
                input: &batch.input,
                target: &Target::Classes(terms.clone()),
                reg: Some(&reg),
                lr: flags.learning_rate,
                rewiring: flags.rewiring(),
                iteration: k,
                staged: None,
            };
            for (device, weights, opt, states, rng) in runs.iter_mut() {
                let r = train_step(*device, &step, weights, opt, rng, states).unwrap();
                losses.push(r.loss);
            }
            eprintln!("iteration {k}: host {} gpu {}", losses[0], losses[1]);
            assert_eq!(losses[0].to_bits(), losses[1].to_bits(), "iteration {k}");
        }
        let (cpu, gpu) = (&runs[0], &runs[1]);
        assert_same_weights((&cpu.1, &cpu.2), (&gpu.1, &gpu.2));
        assert_same_states(&cpu.3, &gpu.3);
        assert!(cpu.4 == gpu.4, "the run's generators differ");
        eprintln!("after {n_iter} iterations: the same weights, optimiser and states");
    }

    /// Twenty store-recall training iterations (the tutorial's network, B 32, T 2400) on the
    /// host and on the GPU from the same seed: the same losses, weights and states.
    #[test]
    fn twenty_store_recall_iterations_match_the_host() {
        if !device() {
            return;
        }
        let flags = StoreRecallFlags {
            batch_train: 32,
            seed: 5,
            ..StoreRecallFlags::defaults()
        };
        store_recall_iterations_match_the_host(&flags, 20);
    }

    /// A network of 300 neurons (blocks of 320 threads: the kernels' builds for up to 1024
    /// threads, not the `_256` ones the tutorials use) with DEEP R on w_in and w_rec: five
    /// iterations give the host's losses.
    #[test]
    fn a_network_wider_than_256_neurons_trains_as_on_the_host() {
        if !device() {
            return;
        }
        let flags = StoreRecallFlags {
            batch_train: 4,
            n_rec: 150,
            n_con: 150,
            seq_len: 6,
            seq_delay: 1,
            tau_char: 40,
            rewiring_connectivity: 0.1,
            seed: 7,
            ..StoreRecallFlags::defaults()
        };
        store_recall_iterations_match_the_host(&flags, 5);
    }

    /// The sMNIST tutorial's network (DEEP R on w_in, w_rec, w_out with Dale's law): on the GPU
    /// every step keeps exactly the budget of connections and the fixed signs, and the losses,
    /// weights and optimiser are the host's, bit for bit (the same Philox draws place the same
    /// new synapses).
    #[test]
    fn smnist_deep_r_on_the_gpu_keeps_budget_signs_and_the_hosts_losses() {
        if !device() {
            return;
        }
        let SmnistCase {
            flags,
            spec,
            weights,
            input,
            terms,
            reg,
            rng,
        } = smnist_case(3, 32);
        let k_budget = budget(&weights.rewired);
        let b = input.n_batch();
        let rewiring = Some(lsnn_host::train::update::Rewiring {
            l1: flags.l1,
            temperature: 0.0,
        });
        let mut runs: Vec<_> = [Device::Cpu, Device::Cuda]
            .into_iter()
            .map(|d| (d, weights.clone(), Optimizer::adam(), rng.clone()))
            .collect();
        for k in 0..10 {
            let mut losses = Vec::new();
            let step = TrainStep {
                spec: &spec,
                input: &input,
                target: &Target::Classes(terms.clone()),
                reg: Some(&reg),
                lr: flags.learning_rate,
                rewiring,
                iteration: k,
                staged: None,
            };
            for (device, weights, opt, rng) in runs.iter_mut() {
                let mut states = zero_states(&spec, b);
                let r = train_step(*device, &step, weights, opt, rng, &mut states).unwrap();
                losses.push(r.loss);
            }
            eprintln!("iteration {k}: host {} gpu {}", losses[0], losses[1]);
            assert_eq!(losses[0].to_bits(), losses[1].to_bits(), "iteration {k}");
            let w = &runs[1].1;
            let connected: usize = w.rewired.iter().map(|m| m.n_connected()).sum();
            assert_eq!(connected, k_budget, "iteration {k}: GPU connections");
            for m in &w.rewired {
                let dense = match m.name.as_str() {
                    "w_in" => &w.params.w_in,
                    "w_rec" => &w.params.w_rec,
                    _ => &w.params.w_out,
                };
                for ((&x, &s), &t) in dense.iter().zip(&m.sign).zip(&m.theta) {
                    assert!(
                        x == 0.0 || x.signum() == s,
                        "{}: weight {x} sign {s}",
                        m.name
                    );
                    assert_eq!(x != 0.0, t > 0.0, "{}", m.name);
                }
            }
        }
        let (cpu, gpu) = (&runs[0], &runs[1]);
        assert_same_weights((&cpu.1, &cpu.2), (&gpu.1, &gpu.2));
        assert!(cpu.3 == gpu.3, "the run's generators differ");
    }

    /// sMNIST end to end on real digits (the shipped 600-image subset) with the tutorial's
    /// network: a new batch and new labels every iteration, DEEP R with Dale's law. The GPU run
    /// follows the CPU run: validation losses and accuracies, connectivity, test accuracy.
    #[test]
    fn smnist_app_on_the_gpu_follows_the_cpu_run() {
        if !device() {
            return;
        }
        let subset = common::mnist_subset();
        let tmp = tempfile::tempdir().unwrap();
        let flags = |device: Device, name: &str| smnist::SmnistFlags {
            validation_size: 100,
            n_batch_train: 16,
            n_batch_validation: 16,
            n_iter: 12,
            print_every: 4,
            seed: 5,
            do_plot: false,
            results_dir: tmp.path().join(name),
            device,
            ..smnist::SmnistFlags::defaults(&subset)
        };
        let quiet = common::quiet();
        let mut runs = Vec::new();
        for (device, name) in [(Device::Cpu, "cpu"), (Device::Cuda, "gpu")] {
            let mut s = smnist::SmnistSession::new(flags(device, name)).unwrap();
            let outcome = s.run(quiet).unwrap();
            runs.push((s, outcome));
        }
        let ((cpu, cpu_out), (gpu, gpu_out)) = (&runs[0], &runs[1]);
        let (a, b) = (&cpu.progress.lists.loss_list, &gpu.progress.lists.loss_list);
        assert_eq!(a.len(), 3);
        assert_eq!(a.len(), b.len());
        assert_validations_match(cpu, gpu);
        eprintln!(
            "test accuracy: cpu {} gpu {}",
            cpu_out.test_accuracy, gpu_out.test_accuracy
        );
        assert_eq!(cpu_out.test_accuracy, gpu_out.test_accuracy);
    }

    /// sMNIST on the GPU with device-resident weights and batches drawn during steps: the
    /// same run as the GPU's sequential loop and as the CPU run (the same validation losses,
    /// accuracies, connectivity, draws and learning rates),
    /// across an epoch boundary, learning-rate decays, validations and checkpoints.
    #[test]
    fn smnist_with_overlap_on_the_gpu_is_the_sequential_and_the_cpu_run() {
        if !device() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let run = |device: Device, name: &str, overlap: bool| {
            let flags = super::overlap::flags(&tmp.path().join(name), device, 23);
            let (s, outcome) = super::overlap::run(flags, overlap, None);
            (s, outcome.unwrap())
        };
        let (gpu, gpu_out) = run(Device::Cuda, "gpu", true);
        let (sequential, sequential_out) = run(Device::Cuda, "seq", false);
        super::overlap::assert_same_run(&gpu, &sequential);
        assert_eq!(gpu_out.test_accuracy, sequential_out.test_accuracy);
        let (cpu, cpu_out) = run(Device::Cpu, "cpu", true);
        assert_validations_match(&cpu, &gpu);
        assert_eq!(cpu.progress.rng, gpu.progress.rng);
        assert_eq!(cpu.data.train.position(), gpu.data.train.position());
        assert_eq!(cpu.progress.learning_rate, gpu.progress.learning_rate);
        assert_eq!(cpu.progress.optimizer.step, gpu.progress.optimizer.step);
        assert_eq!(cpu_out.test_accuracy, gpu_out.test_accuracy);
    }

    #[test]
    fn an_interrupted_gpu_run_keeps_the_devices_latest_state() {
        if !device() {
            return;
        }
        super::overlap::an_interrupted_run_keeps_the_latest_state(Device::Cuda);
    }

    /// The device holds newer weights than the host after a step: changing the host's
    /// weights then is an error (at the next step and at the sync), not a silent mix; once
    /// the change is undone the sync brings the device's weights to the host.
    #[test]
    fn changing_stale_host_weights_is_an_error() {
        if !device() {
            return;
        }
        let SmnistCase {
            flags,
            spec,
            mut weights,
            input,
            terms,
            reg,
            mut rng,
        } = smnist_case(4, 8);
        let initial = weights.clone();
        let target = Target::Classes(terms);
        let step = TrainStep {
            spec: &spec,
            input: &input,
            target: &target,
            reg: Some(&reg),
            lr: flags.learning_rate,
            rewiring: None,
            iteration: 0,
            staged: None,
        };
        let mut optimizer = Optimizer::adam();
        let mut trainer = engine(Device::Cuda).unwrap();
        let mut step_once = |trainer: &mut dyn Engine, weights: &mut _, optimizer: &mut _| {
            trainer
                .step(
                    &step,
                    weights,
                    optimizer,
                    &mut rng,
                    States::Zero,
                    &mut |_, _| Ok(()),
                )
                .result
                .map(|_| ())
        };
        step_once(trainer.as_mut(), &mut weights, &mut optimizer).unwrap();
        assert_eq!(optimizer.step, 1);
        assert!(weights == initial, "the host's weights are not downloaded");
        weights.params.w_out[[0, 0]] = 0.5;
        let err = step_once(trainer.as_mut(), &mut weights, &mut optimizer).unwrap_err();
        assert!(err.to_string().contains("newer training steps"), "{err}");
        assert_eq!(optimizer.step, 1);
        let err = trainer
            .sync_to_host(&mut weights, &mut optimizer)
            .unwrap_err();
        assert!(err.to_string().contains("newer training steps"), "{err}");
        weights.params.w_out[[0, 0]] = initial.params.w_out[[0, 0]];
        trainer.sync_to_host(&mut weights, &mut optimizer).unwrap();
        assert!(weights != initial, "the device's step reached the host");
        assert_eq!(optimizer.step, 1);
    }

    fn small_flags(results: &std::path::Path, n_iter: usize, device: Device) -> StoreRecallFlags {
        StoreRecallFlags {
            device,
            ..common::small_store_recall_flags(results, n_iter)
        }
    }

    /// The app end to end on the GPU: the validation losses (host forward of the GPU-trained
    /// weights) are the CPU run's, and the run resumes from its checkpoint.
    #[test]
    fn store_recall_app_trains_and_resumes_on_the_gpu() {
        if !device() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let quiet = common::quiet();
        let mut cpu = Session::new(small_flags(&tmp.path().join("cpu"), 6, Device::Cpu)).unwrap();
        cpu.run(quiet).unwrap();
        let mut gpu = Session::new(small_flags(&tmp.path().join("gpu"), 4, Device::Cuda)).unwrap();
        let dir = gpu.run_dir.clone().unwrap();
        gpu.run(quiet).unwrap();
        let mut resumed = Session::resume(&dir, Some(6)).unwrap();
        assert_eq!(resumed.flags.device, Device::Cuda);
        resumed.run(quiet).unwrap();
        let (a, b) = (
            &cpu.progress.lists.loss_list,
            &resumed.progress.lists.loss_list,
        );
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            eprintln!("validation {k}: cpu {x} gpu {y}");
            assert_eq!(x.to_bits(), y.to_bits(), "validation {k}: cpu {x} gpu {y}");
        }
    }

    #[test]
    fn a_nan_gradient_on_the_gpu_stops_training_naming_the_entry() {
        if !device() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Session::new(small_flags(tmp.path(), 6, Device::Cuda)).unwrap();
        let failing = nan_gradient_engine(Device::Cuda, 3).unwrap();
        let err = s.run_on(failing, common::quiet()).unwrap_err();
        match &err {
            HostError::Training { iteration, message } => {
                assert_eq!(*iteration, 3);
                assert!(message.contains("gradient of w_rec (entry 1)"), "{message}");
            }
            other => panic!("unexpected error {other}"),
        }
        assert_eq!(
            s.progress.optimizer.step, 3,
            "the failed step applied nothing"
        );
    }

    #[test]
    fn bench_runs_both_configurations_on_the_gpu() {
        if !device() {
            return;
        }
        for (task, name) in [
            (BenchTask::StoreRecall, "store-recall"),
            (BenchTask::Smnist, "smnist"),
        ] {
            let r = lsnn_host::tutorials::bench::bench_cuda(task, Some(8), 2).unwrap();
            assert!(r.ms_median > 0.0 && r.device.starts_with("cuda"), "{r:?}");
            let out = Command::new(bin())
                .args([
                    "bench", "--task", name, "--batch", "8", "--iters", "1", "--device", "cuda",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
