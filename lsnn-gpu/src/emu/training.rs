//! The project's training fixtures (`fixtures/training_*.json`, several optimiser steps) run by
//! the emulated kernels as the device trains: per step the batch, forward and loss, backward
//! and reduction, the update kernel (optimiser, DEEP R) and the reconnection kernel; checked by
//! lsnn-host's fixture checker with its tolerances, so the GPU path of training fixtures is
//! exercised where no device is present.

use std::path::{Path, PathBuf};

use lsnn_host::fixture::{
    check_fixture, Backend, CheckOptions, Computed, Fixture, FixtureKind, Precision, Status,
    TrainingFixture, TrainingOptimizer, TrainingOutputs, TrainingRun,
};
use lsnn_host::HostError;

use super::{BatchSpec, Emu};
use crate::layout::{BatchState, Param};
use crate::step::{OptimizerKind, StepConfig};

/// The emulated kernels as a fixture backend (training fixtures only).
struct EmuBackend;

impl Backend for EmuBackend {
    fn name(&self) -> &str {
        "gpu-emu"
    }

    fn computes_f64(&self) -> bool {
        false
    }

    fn training(&self, fx: &TrainingFixture, _precision: Precision) -> Computed<TrainingOutputs> {
        Some(train(fx))
    }
}

fn optimizer(fx: &TrainingFixture) -> OptimizerKind {
    match fx.optimizer {
        TrainingOptimizer::Adam {
            beta1,
            beta2,
            epsilon,
        } => OptimizerKind::Adam {
            beta1,
            beta2,
            epsilon,
        },
        TrainingOptimizer::Sgd => OptimizerKind::Sgd,
    }
}

fn train(fx: &TrainingFixture) -> Result<TrainingOutputs, HostError> {
    let mut run = TrainingRun::<f32>::new(fx)?;
    let mut emu = Emu::new(&run.spec, &run.weights, optimizer(fx));
    let mut losses = Vec::new();
    for (k, batch) in run.steps.iter().enumerate() {
        let d = emu.dims;
        emu.set_batch(BatchSpec {
            input: &batch.input,
            terms: &batch.terms,
            reg: Some(&batch.reg),
            linear: None,
            state: BatchState::zeros(&d, batch.input.n_batch()),
        });
        emu.forward();
        losses.push(f64::from(emu.metrics[0]));
        emu.backward(227 * 1024, None);
        if emu.flags[0] != 0 {
            return Err(HostError::NonFinite {
                what: format!("a gradient of step {k}"),
            });
        }
        emu.update(&StepConfig {
            lr: batch.lr,
            step: k as u64 + 1,
            rewiring: run.rewiring.map(|r| (r.l1, r.temperature)),
            key: 0,
        });
        // The host's copy of the weights, as GpuNetwork::sync_to_host writes it.
        let layout = emu.layout;
        for (name, dst) in run.weights.params.named_mut() {
            let p = Param::from_name(name).expect("the host's arrays");
            dst.copy_from_slice(&emu.params[layout.range(p).expect("present")]);
        }
        for m in &mut run.weights.rewired {
            let p = Param::from_name(&m.name).expect("w_in, w_rec or w_out");
            m.theta
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(&emu.theta[layout.range(p).expect("present")]);
        }
        run.check_connections(k)?;
    }
    Ok(run.outputs(&losses))
}

fn training_fixtures() -> Vec<(PathBuf, Fixture)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the project's fixtures") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let fixture = Fixture::load(&path).unwrap_or_else(|e| panic!("{e}"));
        if matches!(fixture.kind, FixtureKind::Training(_)) {
            out.push((path, fixture));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn emulated_kernels_pass_the_training_fixtures() {
    let fixtures = training_fixtures();
    let backends: Vec<Box<dyn Backend>> = vec![Box::new(EmuBackend)];
    let (mut lines, mut rewired, mut sgd) = (0, 0, 0);
    for (path, fixture) in &fixtures {
        let FixtureKind::Training(t) = &fixture.kind else {
            unreachable!("filtered above")
        };
        rewired += usize::from(!t.rewiring.is_empty());
        sgd += usize::from(t.optimizer == TrainingOptimizer::Sgd);
        let file = path.display().to_string();
        for line in check_fixture(&file, fixture, &backends, &CheckOptions::default()) {
            eprintln!("{line}");
            assert_eq!(line.backend.as_deref(), Some("gpu-emu"), "{line}");
            assert_eq!(line.status, Status::Pass, "{line}");
            lines += 1;
        }
    }
    assert!(
        fixtures.len() >= 8 && rewired >= 2 && sgd >= 1,
        "the project ships Adam, SGD and DEEP R training fixtures: {} files",
        fixtures.len()
    );
    eprintln!("{lines} lines from {} training fixtures", fixtures.len());
}
