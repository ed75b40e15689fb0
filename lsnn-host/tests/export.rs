//! `lsnn-host export`: f32 / i16 / i8 models of a trained run and of the random sMNIST-sized
//! network, input sequence files, and `infer --inputs` (the firmware's reference).

mod common;
use common::*;

use std::path::Path;

use lsnn_core::model::{Model, WeightKind};
use lsnn_host::export::{encode_model_as, predictions, run_model, run_sequences, sequences_of};
use lsnn_host::input::{Event, InputBatch};
use lsnn_host::runs::Hooks;
use lsnn_host::tasks::store_recall::generate;
use lsnn_host::tutorials::saved::{load_network, NetworkTask};
use lsnn_host::tutorials::store_recall::{Session, StoreRecallFlags};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn small_flags(results: &Path) -> StoreRecallFlags {
    StoreRecallFlags {
        seed: 5,
        ..small_store_recall_flags(results, 3)
    }
}

fn trained_run(tmp: &Path) -> std::path::PathBuf {
    let mut s = Session::new(small_flags(tmp)).unwrap();
    s.run(Hooks { quiet: true }).unwrap();
    s.run_dir.unwrap()
}

#[test]
fn quantised_exports_run_on_the_integer_cell_and_agree_with_sequence_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = trained_run(tmp.path());
    let net = load_network(&dir).unwrap();
    let NetworkTask::StoreRecall(task) = &net.task else {
        panic!("a store-recall run")
    };
    // The exported f32 model equals the one training wrote.
    let f32_bytes = encode_model_as(&net.spec, &net.params, WeightKind::F32).unwrap();
    assert_eq!(f32_bytes, std::fs::read(dir.join("model.lsnn")).unwrap());

    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let batch = generate(&mut rng, 5, task).unwrap();
    let seqs = sequences_of(&batch.input, task.seq_len).unwrap();
    for kind in [WeightKind::F32, WeightKind::I16, WeightKind::I8] {
        let bytes = encode_model_as(&net.spec, &net.params, kind).unwrap();
        let model = Model::parse(&bytes).unwrap();
        assert_eq!(model.is_integer(), kind.is_integer());
        assert_eq!(model.w_out().kind(), kind);
        if kind.is_integer() {
            model.integer_scales().unwrap();
        }
        // The sequence lines carry the same predictions and spike counts as run_model.
        let run = run_model(&bytes, &batch.input, task.seq_len).unwrap();
        let lines = run_sequences(&bytes, &seqs).unwrap();
        for (b, (line, classes)) in lines
            .iter()
            .zip(predictions(&run.window_logits))
            .enumerate()
        {
            let spikes: u64 = run
                .spikes
                .index_axis(ndarray::Axis(0), b)
                .iter()
                .map(|&s| u64::from(s))
                .sum();
            let classes: Vec<String> = classes.iter().map(usize::to_string).collect();
            assert_eq!(
                line,
                &format!("seq {b} spikes {spikes} pred {}", classes.join(" "))
            );
        }
    }
    // Sequence files hold spikes only.
    let mut analog = InputBatch::new(2, 3);
    analog
        .push_element(&mut [Event {
            t: 0,
            channel: 1,
            value: 0.5,
        }])
        .unwrap();
    assert!(sequences_of(&analog, 1).is_err());
}

#[test]
fn cli_exports_the_random_smnist_network_and_infer_prints_sequence_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.lsnn");
    let seqs = tmp.path().join("s.seq");
    let subset = common::mnist_subset();
    let (code, text) = run_cli(&[
        "export",
        "--random-smnist",
        "--weights",
        "i8",
        "--out",
        model.to_str().unwrap(),
        "--sequences",
        seqs.to_str().unwrap(),
        "--count",
        "1",
        "--data-dir",
        subset.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(report["n_in"], 80);
    assert_eq!(report["n_rec"], 220);
    assert_eq!(report["n_out"], 10);
    assert_eq!(report["weights"], "i8");
    let bytes = std::fs::read(&model).unwrap();
    let parsed = Model::parse(&bytes).unwrap();
    assert!(parsed.is_integer());
    assert_eq!(parsed.config().n_delay, 10);
    assert_eq!(parsed.config().n_refractory, 5);
    // 12 % of 80 x 220 and 220 x 220 draws with replacement, less duplicates and autapses
    let (nnz_in, nnz_rec) = (parsed.w_in().nnz(), parsed.w_rec().nnz());
    assert!((1800..=2112).contains(&nnz_in), "{nnz_in}");
    assert!((5000..=5808).contains(&nnz_rec), "{nnz_rec}");

    let (code, text) = run_cli(&[
        "infer",
        "--model",
        model.to_str().unwrap(),
        "--inputs",
        seqs.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let line = text.lines().next().unwrap();
    assert!(line.starts_with("seq 0 spikes "), "{line}");
    // 840 steps in 30 windows of 28
    assert_eq!(line.split(" pred ").nth(1).unwrap().split(' ').count(), 30);

    let (code, text) = run_cli(&["export", "--out", model.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
}
