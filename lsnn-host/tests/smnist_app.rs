//! The sMNIST application on the shipped MNIST subset: resume, eval == infer, bad input.

mod common;
use common::*;

use std::path::Path;

use lsnn_host::apps::infer::{infer, InferArgs};
use lsnn_host::runs::checkpoint::Checkpoint;
use lsnn_host::tutorials::smnist::{SmnistFlags, SmnistSession};

/// A small network on the 600-image subset (seconds).
fn small_flags(results: &Path, n_iter: usize) -> SmnistFlags {
    SmnistFlags {
        validation_size: 100,
        n_batch_train: 8,
        n_batch_validation: 16,
        n_regular: 12,
        n_adaptive: 8,
        n_iter,
        print_every: 2,
        lr_decay_every: 1,
        seed: 5,
        do_plot: false,
        results_dir: results.to_path_buf(),
        ..SmnistFlags::defaults(&common::mnist_subset())
    }
}

#[test]
fn resume_continues_exactly_like_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut whole = SmnistSession::new(small_flags(&tmp.path().join("a"), 6)).unwrap();
    let outcome = whole.run(quiet()).unwrap();
    assert_eq!(outcome.n_test, 100);

    let mut first = SmnistSession::new(small_flags(&tmp.path().join("b"), 4)).unwrap();
    first.run(quiet()).unwrap();
    let dir = first.run_dir.clone().unwrap();
    let mut resumed = SmnistSession::resume(&dir, None, Some(6)).unwrap();
    assert_eq!(resumed.progress.iteration, 4);
    let resumed_outcome = resumed.run(quiet()).unwrap();

    assert_eq!(
        whole.progress.task.accuracy_list,
        resumed.progress.task.accuracy_list
    );
    assert_eq!(
        whole.progress.lists.loss_list,
        resumed.progress.lists.loss_list
    );
    assert_eq!(whole.progress.learning_rate, resumed.progress.learning_rate);
    assert_eq!(outcome.test_accuracy, resumed_outcome.test_accuracy);
    let load = |d: &Path| {
        let mut t = Checkpoint::load(&d.join("checkpoint.safetensors"))
            .unwrap()
            .tensors;
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    };
    assert_eq!(load(whole.run_dir.as_ref().unwrap()), load(&dir));
}

#[test]
fn eval_and_core_inference_of_the_exported_model_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let mut session = SmnistSession::new(small_flags(tmp.path(), 6)).unwrap();
    session.run(quiet()).unwrap();
    let dir = session.run_dir.clone().unwrap();

    let evaluated = SmnistSession::resume(&dir, None, None).unwrap();
    let (host, accuracy) = evaluated
        .predict_split(&evaluated.data.test, Some(60))
        .unwrap();
    let report = infer(&InferArgs {
        model: dir.join("model.lsnn"),
        task: "smnist".into(),
        batch: 16,
        seed: 0,
        f0: 50.0,
        seq_len: 12,
        seq_delay: 6,
        tau_char: 200,
        data_dir: Some(common::mnist_subset()),
        limit: Some(60),
        ext_time: 1,
        inputs: None,
    })
    .unwrap();
    assert_eq!(report.predictions, host);
    assert!((1.0 - report.error - accuracy).abs() < 1e-12);
    assert!(report.spikes > 0);
}

#[test]
fn bad_data_and_flags_are_clear_errors_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    let data = common::mnist_subset();
    let data = data.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--data-dir", "/nonexistent/mnist"],
            "/nonexistent/mnist",
        ),
        (vec!["--data-dir", results], "train-images-idx3-ubyte"),
        (vec!["--data-dir", data], "5000"),
        (vec!["--data-dir", data, "--n-in", "7"], "n_in"),
        (
            vec!["--data-dir", data, "--rewiring-connectivity", "2"],
            "--rewiring-connectivity",
        ),
        (
            vec!["--data-dir", data, "--n-batch-train", "0"],
            "--n-batch-train",
        ),
    ] {
        let mut all = vec!["train", "smnist", "--results-dir", results];
        all.extend(args.iter());
        let (code, text) = run_cli(&all);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(
            text.contains(needle),
            "{args:?} should mention {needle}: {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
    let (code, text) = run_cli(&["eval", "--checkpoint", results, "--data-dir", data]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("flags.json"), "{text}");
}

#[test]
fn eval_prints_the_test_accuracy_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let mut session = SmnistSession::new(small_flags(tmp.path(), 2)).unwrap();
    session.run(quiet()).unwrap();
    let dir = session.run_dir.clone().unwrap();
    let (code, text) = run_cli(&[
        "eval",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--data-dir",
        common::mnist_subset().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["n"], 100);
    let accuracy = last["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
}
