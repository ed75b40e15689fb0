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

    use lsnn_host::apps::bench::{random_spikes, BenchTask};
    use lsnn_host::apps::gpu::{train_step, Device};
    use lsnn_host::apps::run::{Hooks, TrainStep};
    use lsnn_host::apps::smnist;
    use lsnn_host::apps::store_recall::{self, Session, StoreRecallFlags};
    use lsnn_host::fixture::{check_file, select_backends, CheckOptions, Family, Status};
    use lsnn_host::tasks::store_recall::generate;
    use lsnn_host::train::deepr::budget;
    use lsnn_host::train::optim::Optimizer;
    use lsnn_host::train::{zero_states, LossTerm, RateRegulariser};
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

    fn rel(a: f32, b: f32) -> f64 {
        (f64::from(a) - f64::from(b)).abs() / f64::from(a).abs().max(f64::from(b).abs()).max(1e-30)
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
        for family in [Family::Forward, Family::LossGrad, Family::DeeprStep] {
            assert!(
                families.contains(&format!("{family:?}")),
                "no {family:?} line from the gpu backend ({families:?})"
            );
        }
        eprintln!("{passed} gpu lines passed");
    }

    /// Twenty store-recall training iterations (the tutorial's network, B 32, T 2400, state
    /// carried from batch to batch) on the host and on the GPU from the same seed: the same
    /// losses within 1e-4 relative.
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
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let spec = store_recall::build_spec(&flags, &mut rng);
        let weights = store_recall::init_weights(&flags, &mut rng).unwrap();
        let n = spec.n_rec();
        let reg = RateRegulariser::uniform(n, flags.reg, flags.reg_rate);
        let mut runs: Vec<_> = [Device::Cpu, Device::Cuda]
            .into_iter()
            .map(|d| {
                (
                    d,
                    weights.clone(),
                    Optimizer::adam(),
                    zero_states(&spec, 32),
                    rng.clone(),
                )
            })
            .collect();
        let mut data = ChaCha8Rng::seed_from_u64(6);
        let mut worst = 0.0f64;
        for k in 0..20 {
            let batch = generate(&mut data, 32, &flags.task()).unwrap();
            let terms = store_recall::loss_terms(&batch);
            let mut losses = Vec::new();
            let step = TrainStep {
                spec: &spec,
                input: &batch.input,
                terms: &terms,
                reg: &reg,
                lr: flags.learning_rate,
                rewiring: None,
                iteration: k,
                hooks: &Hooks::default(),
                staged: None,
            };
            for (device, weights, opt, states, rng) in runs.iter_mut() {
                let r = train_step(*device, &step, weights, opt, rng, states).unwrap();
                losses.push(r.loss);
            }
            let e = rel(losses[0], losses[1]);
            eprintln!(
                "iteration {k}: host {} gpu {} rel {e:.2e}",
                losses[0], losses[1]
            );
            worst = worst.max(e);
            assert!(
                e < 1e-4,
                "iteration {k}: host {} gpu {}",
                losses[0],
                losses[1]
            );
        }
        eprintln!("worst relative loss difference {worst:.2e}");
        // The host structures were kept in step: same optimiser step count, close weights.
        assert_eq!(runs[0].2.step, runs[1].2.step);
        let (a, b) = (&runs[0].1.params, &runs[1].1.params);
        let diff = a
            .w_rec
            .iter()
            .zip(b.w_rec.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        eprintln!("largest w_rec difference after 20 iterations: {diff:.2e}");
    }

    /// The sMNIST tutorial's network (DEEP R on w_in, w_rec, w_out with Dale's law): on the GPU
    /// every step keeps exactly the budget of connections and the fixed signs, and the losses
    /// follow the host's (the same Philox draws place the same new synapses).
    #[test]
    fn smnist_deep_r_on_the_gpu_keeps_budget_signs_and_the_hosts_losses() {
        if !device() {
            return;
        }
        let flags = smnist::SmnistFlags {
            seed: 3,
            ..smnist::SmnistFlags::defaults(std::path::Path::new("unused"))
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let spec = smnist::build_spec(&flags, &mut rng);
        let weights = smnist::init_weights(&flags, &mut rng).unwrap();
        let k_budget = budget(&weights.rewired);
        let (b, steps) = (32, 840);
        let input = random_spikes(&mut rng, b, steps, spec.n_in(), 0.02).unwrap();
        let labels: Vec<usize> = (0..b).map(|_| rng.gen_range(0..10)).collect();
        let terms: Vec<Vec<LossTerm<f32>>> = labels
            .iter()
            .map(|&target| {
                vec![LossTerm {
                    start: steps - 28,
                    end: steps,
                    target,
                    weight: 1.0 / b as f32,
                }]
            })
            .collect();
        let reg = RateRegulariser::uniform(spec.n_rec(), flags.reg, flags.reg_rate);
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
                terms: &terms,
                reg: &reg,
                lr: flags.learning_rate,
                rewiring,
                iteration: k,
                hooks: &Hooks::default(),
                staged: None,
            };
            for (device, weights, opt, rng) in runs.iter_mut() {
                let mut states = zero_states(&spec, b);
                let r = train_step(*device, &step, weights, opt, rng, &mut states).unwrap();
                losses.push(r.loss);
            }
            eprintln!("iteration {k}: host {} gpu {}", losses[0], losses[1]);
            assert!(
                rel(losses[0], losses[1]) < 1e-4,
                "iteration {k}: {losses:?}"
            );
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
    }

    /// sMNIST end to end on real digits (the shipped 600-image subset) with the tutorial's
    /// network: a new batch and new labels every iteration, DEEP R with Dale's law. The GPU run
    /// follows the CPU run: validation losses and accuracies, connectivity, test accuracy.
    #[test]
    fn smnist_app_on_the_gpu_follows_the_cpu_run() {
        if !device() {
            return;
        }
        let subset = std::env::var_os("LSNN_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures"))
            .join("mnist-subset");
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
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            let e = (x - y).abs() / x.abs().max(1e-30);
            eprintln!("validation {k}: cpu {x} gpu {y} rel {e:.2e}");
            assert!(e < 1e-4, "validation {k}: cpu {x} gpu {y}");
        }
        assert_eq!(
            cpu.progress.task.accuracy_list,
            gpu.progress.task.accuracy_list
        );
        assert_eq!(
            cpu.progress.task.connectivity_list,
            gpu.progress.task.connectivity_list
        );
        eprintln!(
            "test accuracy: cpu {} gpu {}",
            cpu_out.test_accuracy, gpu_out.test_accuracy
        );
        assert_eq!(cpu_out.test_accuracy, gpu_out.test_accuracy);
    }

    fn small_flags(results: &std::path::Path, n_iter: usize, device: Device) -> StoreRecallFlags {
        StoreRecallFlags {
            device,
            ..common::small_store_recall_flags(results, n_iter)
        }
    }

    /// The app end to end on the GPU: the validation losses (host forward of the GPU-trained
    /// weights) follow the CPU run's, and the run resumes from its checkpoint.
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
            let e = (x - y).abs() / x.abs().max(1e-30);
            eprintln!("validation {k}: cpu {x} gpu {y} rel {e:.2e}");
            assert!(e < 1e-3, "validation {k}: cpu {x} gpu {y}");
        }
    }

    #[test]
    fn a_nan_gradient_on_the_gpu_stops_training_naming_the_entry() {
        if !device() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Session::new(small_flags(tmp.path(), 6, Device::Cuda)).unwrap();
        let err = s
            .run(Hooks {
                nan_gradient_at: Some(3),
                quiet: true,
            })
            .unwrap_err();
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
            let r = lsnn_host::apps::gpu::bench(task, Some(8), 2).unwrap();
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
