//! The store-recall application end to end: resume, the NaN guard, export + core inference,
//! bad input.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use lsnn_host::export::run_model;
use lsnn_host::runs::checkpoint::{Checkpoint, Tensor};
use lsnn_host::tasks::store_recall::{generate, StoreRecallParams};
use lsnn_host::train::device::faults::nan_gradient_engine;
use lsnn_host::train::device::Device;
use lsnn_host::train::{run_pass, zero_states, PassOptions};
use lsnn_host::tutorials::store_recall::{loss_terms, Session, StoreRecallFlags};
use lsnn_host::HostError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn small_flags(results: &Path, n_iter: usize) -> StoreRecallFlags {
    small_store_recall_flags(results, n_iter)
}

fn results_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

fn weights_of(dir: &Path) -> Vec<(String, Tensor)> {
    let mut t = Checkpoint::load(&dir.join("checkpoint.safetensors"))
        .unwrap()
        .tensors;
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn resume_continues_exactly_like_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let split = tmp.path().join("split");

    let mut a = Session::new(small_flags(&whole, 6)).unwrap();
    a.run(quiet()).unwrap();
    let dir_a = a.run_dir.clone().unwrap();

    let mut b = Session::new(small_flags(&split, 4)).unwrap();
    b.run(quiet()).unwrap();
    let dir_b = b.run_dir.clone().unwrap();
    let mut resumed = Session::resume(&dir_b, Some(6)).unwrap();
    assert_eq!(resumed.progress.iteration, 4);
    resumed.run(quiet()).unwrap();

    let (ra, rb) = (results_json(&dir_a), results_json(&dir_b));
    for key in [
        "error_list",
        "loss_list",
        "loss_reg_list",
        "rate_list",
        "iterations",
        "test_errors",
    ] {
        assert_eq!(ra[key], rb[key], "{key}");
    }
    assert_eq!(ra["error_list"].as_array().unwrap().len(), 6);
    assert_eq!(weights_of(&dir_a), weights_of(&dir_b));
}

#[test]
fn a_nan_gradient_stops_training_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Session::new(small_flags(tmp.path(), 6)).unwrap();
    let dir = s.run_dir.clone().unwrap();
    let failing = nan_gradient_engine(Device::Cpu, 3).unwrap();
    let err = s.run_on(failing, quiet()).unwrap_err();
    match &err {
        HostError::Training { iteration, message } => {
            assert_eq!(*iteration, 3);
            assert!(message.contains("w_rec"), "{message}");
        }
        other => panic!("unexpected error {other}"),
    }
    // The checkpoint of iteration 2 is intact and resumable.
    let resumed = Session::resume(&dir, None).unwrap();
    assert_eq!(resumed.progress.iteration, 2);
    let finite = resumed
        .weights
        .params
        .named()
        .iter()
        .all(|(_, a)| a.iter().all(|x| x.is_finite()));
    assert!(finite);
}

#[test]
fn exported_model_run_by_the_core_spikes_exactly_like_the_host_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Session::new(small_flags(tmp.path(), 4)).unwrap();
    s.run(quiet()).unwrap();
    let model = std::fs::read(s.run_dir.as_ref().unwrap().join("model.lsnn")).unwrap();

    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let batch = generate(&mut rng, 6, &s.flags.task()).unwrap();
    let core = run_model(&model, &batch.input, s.flags.seq_len).unwrap();
    let mut states = zero_states(&s.spec, 6);
    let host = run_pass(
        &s.spec,
        &s.weights.params,
        &batch.input,
        &mut states,
        &loss_terms(&batch),
        None,
        PassOptions {
            keep_traces: true,
            ..PassOptions::default()
        },
    )
    .unwrap();
    let traces = host.traces.unwrap();
    let mut total = 0u64;
    for (b, trace) in traces.iter().enumerate() {
        let z = trace.z_dense();
        for ((t, j), &zj) in z.indexed_iter() {
            assert_eq!(
                core.spikes[[b, t, j]],
                u8::from(zj != 0.0),
                "element {b} step {t} neuron {j}"
            );
            total += u64::from(zj != 0.0);
        }
        // Same logits up to float rounding (the core filters the readout event by event).
        for (c, logits) in host.logits[b].iter().enumerate() {
            for (o, &l) in logits.iter().enumerate() {
                let got = core.window_logits[[b, c, o]];
                assert!((got - l).abs() <= 1e-4 * (1.0 + l.abs()), "{got} vs {l}");
            }
        }
    }
    assert!(total > 100, "the network should spike: {total}");
}

#[test]
fn bad_flags_are_clear_errors_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    for (args, needle) in [
        (vec!["--n-iter", "0"], "--n-iter"),
        (vec!["--batch-train", "0"], "--batch-train"),
        (vec!["--n-in=-3"], "--n-in"),
        (
            vec!["--rewiring-connectivity", "1.5"],
            "--rewiring-connectivity",
        ),
        (
            vec!["--rewiring-connectivity", "0"],
            "--rewiring-connectivity",
        ),
        (vec!["--seq-delay", "9"], "seq_delay"),
        (vec!["--thr", "nan"], "--thr"),
        (vec!["--model", "GRU"], "--model"),
        (
            vec!["--config", "/nonexistent/flags.toml"],
            "/nonexistent/flags.toml",
        ),
        (vec!["--resume", "/nonexistent/run"], "/nonexistent/run"),
    ] {
        let mut all = vec!["train", "store-recall", "--results-dir", results];
        all.extend(args.iter());
        let (code, text) = run_cli(&all);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(
            text.contains(needle),
            "{args:?} should name {needle}: {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn a_corrupt_checkpoint_is_refused_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Session::new(small_flags(tmp.path(), 2)).unwrap();
    s.run(quiet()).unwrap();
    let dir = s.run_dir.clone().unwrap();
    let ckpt = dir.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&ckpt, &bytes).unwrap();
    let (code, text) = run_cli(&["train", "store-recall", "--resume", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("checkpoint") && text.contains("corrupt"),
        "{text}"
    );
}

#[test]
fn the_cli_trains_with_a_config_file_and_writes_every_artefact() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("small.toml");
    std::fs::write(
        &config,
        "batch_train = 8\nbatch_val = 8\nbatch_test = 8\nn_in = 20\nseq_len = 8\nseq_delay = 2\n\
         tau_char = 20\nn_iter = 50\nprint_every = 2\nseed = 4\n",
    )
    .unwrap();
    let results = tmp.path().join("results");
    let (code, text) = run_cli(&[
        "train",
        "store-recall",
        "--config",
        config.to_str().unwrap(),
        "--n-iter",
        "3",
        "--results-dir",
        results.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["iterations"], 3,
        "the command line overrides the file: {text}"
    );
    let dir = PathBuf::from(last["run_dir"].as_str().unwrap());
    for file in [
        "flags.json",
        "results.json",
        "checkpoint.safetensors",
        "model.lsnn",
        "plots/monitor_iter00000.png",
        "plots/monitor_iter00002.png",
        "plots/monitor_final.png",
        "plots/learning_curve.png",
    ] {
        assert!(dir.join(file).is_file(), "missing {file}");
    }
    let flags: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("flags.json")).unwrap()).unwrap();
    assert_eq!(flags["seq_len"], 8);
    assert_eq!(flags["n_iter"], 3);

    let (code, text) = run_cli(&[
        "infer",
        "--model",
        dir.join("model.lsnn").to_str().unwrap(),
        "--seq-len",
        "8",
        "--seq-delay",
        "2",
        "--tau-char",
        "20",
        "--batch",
        "16",
    ]);
    assert_eq!(code, 0, "{text}");
    let report: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    // The same sequences (`infer`'s default seed 0): its error is the fraction of its
    // predictions that miss the recalled characters.
    let params = StoreRecallParams {
        n_charac: 2,
        n_in: 20,
        f0_hz: 50.0,
        seq_len: 8,
        seq_delay: 2,
        tau_char: 20,
    };
    let batch = generate(&mut ChaCha8Rng::seed_from_u64(0), 16, &params).unwrap();
    let targets: Vec<u64> = batch
        .recall_mask
        .indexed_iter()
        .filter(|(_, &r)| r)
        .map(|((b, c), _)| u64::from(batch.target_nums[[b, c]]))
        .collect();
    let predicted: Vec<u64> = report["predictions"]
        .as_array()
        .expect("the predictions")
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(!targets.is_empty());
    assert_eq!(report["recalls"].as_u64(), Some(targets.len() as u64));
    assert_eq!(predicted.len(), targets.len());
    let wrong = predicted
        .iter()
        .zip(&targets)
        .filter(|(p, t)| p != t)
        .count();
    assert_eq!(
        report["error"].as_f64(),
        Some(wrong as f64 / targets.len() as f64),
        "{text}"
    );
}
