//! Fixtures of kind "training" (several optimiser steps): the project's files on the host
//! backend, through the library and the binary; wrong values, a dying connection and
//! corrupted or inconsistent copies (each named by file and key).

use lsnn_host::fixture::{
    check_fixture, select_backends, CheckLine, CheckOptions, Fixture, FixtureKind, Precision,
    Status,
};
use lsnn_host::HostError;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const TRAINING_FILES: [&str; 8] = [
    "training_adam_f32.json",
    "training_adam_f64.json",
    "training_adam_deepr_f32.json",
    "training_adam_deepr_f64.json",
    "training_sgd_f32.json",
    "training_sgd_f64.json",
    "training_lr_schedule_f32.json",
    "training_lr_schedule_f64.json",
];

const QUANTITIES: [&str; 5] = [
    "loss",
    "final.w_in",
    "final.w_rec",
    "final.w_out",
    "final.b_out",
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn host_lines(file: &str, v: &Value, options: &CheckOptions) -> Vec<CheckLine> {
    let fixture = Fixture::from_value(v).unwrap_or_else(|e| panic!("{file}: {e:?}"));
    let host = select_backends(&["host".into()]).unwrap();
    check_fixture(file, &fixture, &host, options)
}

fn quantity_names(lines: &[CheckLine]) -> Vec<String> {
    lines.iter().map(|l| l.quantity.to_string()).collect()
}

fn run_bin(paths: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lsnn-host"))
        .args(["fixtures", "check", "--backend", "host"])
        .args(paths)
        .output()
        .expect("run lsnn-host");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Index of the first entry of `data` with `pred`.
fn first(data: &Value, pred: impl Fn(f64) -> bool) -> usize {
    data.as_array()
        .unwrap()
        .iter()
        .position(|x| pred(x.as_f64().unwrap()))
        .expect("an entry")
}

#[test]
fn host_passes_every_training_fixture() {
    for name in TRAINING_FILES {
        let v = read(name);
        let lines = host_lines(name, &v, &CheckOptions::default());
        for l in &lines {
            println!("{l}");
            assert_eq!(l.status, Status::Pass, "{l}");
            assert_eq!(l.backend.as_deref(), Some("host"), "{l}");
            assert!(!l.downgraded, "{l}");
        }
        assert_eq!(quantity_names(&lines), QUANTITIES, "{name}");
    }
}

#[test]
fn float64_training_fixtures_pass_in_f32_too() {
    // What an f32-only backend (the GPU) does with them: float32 arithmetic, float32 tolerances.
    let options = CheckOptions { also_f32: true };
    for name in TRAINING_FILES.iter().filter(|n| n.ends_with("_f64.json")) {
        let lines = host_lines(name, &read(name), &options);
        let f32_lines: Vec<&CheckLine> = lines.iter().filter(|l| l.downgraded).collect();
        assert_eq!(f32_lines.len(), QUANTITIES.len(), "{name}");
        for l in &lines {
            println!("{l}");
            assert_eq!(l.status, Status::Pass, "{l}");
        }
        assert!(f32_lines
            .iter()
            .all(|l| l.precision == Some(Precision::F32)));
    }
}

#[test]
fn every_shipped_training_file_is_listed() {
    // A new training fixture must be added to TRAINING_FILES (and so to the tests above).
    let mut found: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| matches!(Fixture::load(p).unwrap().kind, FixtureKind::Training(_)))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut listed: Vec<String> = TRAINING_FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

#[test]
fn the_files_cover_what_the_issue_asks_for() {
    let mut rewired_matrices = Vec::new();
    let (mut sgd, mut adam, mut schedule, mut dale_l1) = (0, 0, 0, 0);
    for name in TRAINING_FILES {
        let f = Fixture::load(&fixtures_dir().join(name)).unwrap();
        let FixtureKind::Training(t) = f.kind else {
            panic!("{name} is not a training fixture")
        };
        assert!(
            t.n_updates() >= 5 && t.n_batch() >= 4,
            "{name}: K >= 5, B >= 4"
        );
        match t.optimizer {
            lsnn_host::fixture::TrainingOptimizer::Sgd => sgd += 1,
            lsnn_host::fixture::TrainingOptimizer::Adam { .. } => adam += 1,
        }
        let lrs = &t.learning_rates;
        schedule += usize::from(lrs.iter().any(|&lr| lr != lrs[0]));
        for r in &t.rewiring {
            rewired_matrices.push(r.param.key());
            // Dale's law: one sign per row (presynaptic neuron), both signs present.
            let cols = r.sign.shape()[1];
            let per_row = r
                .sign
                .data()
                .chunks(cols)
                .all(|row| row.iter().all(|&s| s == row[0]));
            let both = r.sign.data().contains(&1.0) && r.sign.data().contains(&-1.0);
            dale_l1 += usize::from(per_row && both && t.l1 > 0.0);
        }
    }
    assert!(
        sgd >= 2 && adam >= 6 && schedule >= 2,
        "{sgd} {adam} {schedule}"
    );
    for m in ["w_in", "w_rec", "w_out"] {
        assert!(rewired_matrices.contains(&m), "{m} rewired somewhere");
    }
    assert!(
        dale_l1 >= 6,
        "Dale-signed matrices with l1 > 0 in f32 and f64: {dale_l1}"
    );
}

#[test]
fn binary_checks_training_fixtures() {
    let paths: Vec<PathBuf> = TRAINING_FILES
        .iter()
        .map(|n| fixtures_dir().join(n))
        .collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let (code, out, err) = run_bin(&refs);
    assert_eq!(code, 0, "{out}{err}");
    for p in &paths {
        let file = p.display().to_string();
        let got: Vec<&str> = out
            .lines()
            .filter(|l| l.contains(&file))
            .map(|l| l.split_whitespace().nth(3).unwrap())
            .collect();
        assert_eq!(got, QUANTITIES, "{file}:\n{out}");
        assert!(out
            .lines()
            .filter(|l| l.contains(&file))
            .all(|l| l.starts_with("PASS") && l.split_whitespace().nth(2) == Some("host")));
    }
}

#[test]
fn wrong_values_fail_on_their_quantity() {
    let good = read("training_adam_deepr_f32.json");
    // A connected w_rec entry 2e-4 off (20x the float32 tolerance) after the K steps.
    let mut v = good.clone();
    let j = first(&v["expect"]["final"]["w_rec"]["data"], |x| x != 0.0);
    let x = v["expect"]["final"]["w_rec"]["data"][j].as_f64().unwrap();
    v["expect"]["final"]["w_rec"]["data"][j] = json!(x + 2e-4);
    let lines = host_lines("bad.json", &v, &CheckOptions::default());
    for l in &lines {
        let bad = l.quantity.to_string() == "final.w_rec";
        assert_eq!(l.status == Status::Fail, bad, "{l}");
    }
    // The loss of the fourth step off by 1e-3.
    let mut v = good.clone();
    let x = v["expect"]["loss"]["data"][3].as_f64().unwrap();
    v["expect"]["loss"]["data"][3] = json!(x + 1e-3);
    let lines = host_lines("bad.json", &v, &CheckOptions::default());
    let failed: Vec<String> = lines
        .iter()
        .filter(|l| l.status == Status::Fail)
        .map(|l| format!("{} {}", l.quantity, l.detail))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].starts_with("loss ") && failed[0].contains("at [3]"),
        "{failed:?}"
    );

    // The binary: exit 1, the failing line named.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("off.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let (code, out, _) = run_bin(&[&path]);
    assert_eq!(code, 1, "{out}");
    assert!(out
        .lines()
        .any(|l| l.starts_with("FAIL") && l.contains("off.json") && l.contains(" loss ")));
}

#[test]
fn tolerance_overrides_apply_to_training_quantities() {
    let good = read("training_sgd_f64.json");
    // Nothing is exact after six steps: abs 0, rel 0 for every final array fails them all.
    let mut v = good.clone();
    v["tolerance"] = json!({"final": {"abs": 0.0, "rel": 0.0}});
    let lines = host_lines("tight.json", &v, &CheckOptions::default());
    let failed: Vec<String> = lines
        .iter()
        .filter(|l| l.status == Status::Fail)
        .map(|l| l.quantity.to_string())
        .collect();
    assert!(failed.iter().all(|q| q.starts_with("final.")), "{failed:?}");
    assert!(failed.len() >= 3, "{failed:?}");
    // A generous loss tolerance lets a shifted loss pass; the specific key wins over the group.
    let mut v = good.clone();
    let x = v["expect"]["loss"]["data"][0].as_f64().unwrap();
    v["expect"]["loss"]["data"][0] = json!(x + 1e-3);
    v["tolerance"] = json!({"loss": {"abs": 1e-2}, "final": {"abs": 0.0, "rel": 0.0},
                            "final.w_rec": {"abs": 1e-9, "rel": 1e-9}});
    let lines = host_lines("loose.json", &v, &CheckOptions::default());
    for l in &lines {
        let q = l.quantity.to_string();
        if q == "loss" || q == "final.w_rec" {
            assert_eq!(l.status, Status::Pass, "{l}");
        }
    }
}

#[test]
fn any_number_of_steps_and_the_loss_alone() {
    // The first three steps of a six-step file, with only their losses expected: the same
    // values (each step's loss comes before its update), checked for K = 3.
    let mut v = read("training_lr_schedule_f64.json");
    let k = 3;
    let spikes = &mut v["input"]["spikes"];
    let per_step: usize = spikes["shape"].as_array().unwrap()[1..]
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .product();
    spikes["shape"][0] = json!(k);
    spikes["data"]
        .as_array_mut()
        .unwrap()
        .truncate(k * per_step);
    let targets = &mut v["input"]["targets"];
    let b = targets["shape"][1].as_u64().unwrap() as usize;
    targets["shape"][0] = json!(k);
    targets["data"].as_array_mut().unwrap().truncate(k * b);
    let lrs = &mut v["training"]["learning_rates"];
    lrs["shape"] = json!([k]);
    lrs["data"].as_array_mut().unwrap().truncate(k);
    let loss = &mut v["expect"]["loss"];
    loss["shape"] = json!([k]);
    loss["data"].as_array_mut().unwrap().truncate(k);
    v["expect"].as_object_mut().unwrap().remove("final");
    let lines = host_lines("three_steps.json", &v, &CheckOptions::default());
    assert_eq!(quantity_names(&lines), ["loss"]);
    assert_eq!(lines[0].status, Status::Pass, "{}", lines[0]);
}

#[test]
fn a_dying_connection_is_an_error_not_a_random_reconnection() {
    // l1 so large that every connection dies in the first step: DEEP R would reconnect at
    // random, which no fixture can pin; the backend says so instead of comparing.
    let mut v = read("training_adam_deepr_f64.json");
    v["training"]["l1"] = json!(1000.0);
    let lines = host_lines("dying.json", &v, &CheckOptions::default());
    assert_eq!(lines.len(), QUANTITIES.len());
    for l in &lines {
        assert_eq!(l.status, Status::Fail, "{l}");
        assert!(
            l.detail.contains("error: training stopped at iteration 0")
                && l.detail.contains("died or were reconnected"),
            "{l}"
        );
    }
}

/// Loads `v` from a file in a temporary folder: the error must name that file and `key`, and
/// its message contain `fragment`.
fn assert_malformed(v: &Value, key: &str, fragment: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.json");
    std::fs::write(&path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    match Fixture::load(&path) {
        Err(HostError::Malformed {
            path: p,
            key: k,
            message,
        }) => {
            assert_eq!(p, path);
            assert_eq!(k, key, "{message}");
            assert!(message.contains(fragment), "{key}: {message}");
        }
        other => panic!("{key}: expected a malformed-file error, got {other:?}"),
    }
}

#[test]
fn corrupted_training_fixtures_name_the_key() {
    let good = read("training_adam_deepr_f64.json");
    Fixture::from_value(&good).unwrap();

    // Shapes.
    let mut v = good.clone();
    let s = v["input"]["spikes"]["shape"].clone();
    let (t, i) = (s[2].as_u64().unwrap(), s[3].as_u64().unwrap());
    v["input"]["spikes"]["shape"] = json!([s[0], s[1], t / 2, i * 2]);
    assert_malformed(&v, "input.spikes.shape", "n_in");

    let mut v = good.clone();
    let s = v["input"]["targets"]["shape"].clone();
    v["input"]["targets"]["shape"] = json!([s[1], s[0]]);
    assert_malformed(&v, "input.targets.shape", "K from input.spikes");

    let mut v = good.clone();
    v["input"]["targets"]["data"][5] = json!(3);
    assert_malformed(&v, "input.targets.data[5]", "n_out");

    let mut v = good.clone();
    v["training"]["learning_rates"]["data"]
        .as_array_mut()
        .unwrap()
        .pop();
    v["training"]["learning_rates"]["shape"] = json!([5]);
    assert_malformed(&v, "training.learning_rates.shape", "K from input.spikes");

    let mut v = good.clone();
    v["expect"]["loss"]["data"]
        .as_array_mut()
        .unwrap()
        .push(json!(1.0));
    v["expect"]["loss"]["shape"] = json!([7]);
    assert_malformed(&v, "expect.loss.shape", "K from input.spikes");

    let mut v = good.clone();
    v["expect"]["final"]["w_out"]["shape"] = json!([3, 10]);
    assert_malformed(&v, "expect.final.w_out.shape", "n_rec x n_out");

    let mut v = good.clone();
    v["training"]["rewiring"][0]["theta"]["shape"] = json!([10, 6]);
    assert_malformed(&v, "training.rewiring[0].theta.shape", "n_in x n_rec");

    // A theta that disagrees with its matrix: a connected entry, a negative theta under a
    // non-zero weight, a weight where the synapse is disconnected.
    let mut v = good.clone();
    let theta = &v["training"]["rewiring"][1]["theta"]["data"];
    let j = first(theta, |t| t > 0.0);
    let t = theta[j].as_f64().unwrap();
    v["training"]["rewiring"][1]["theta"]["data"][j] = json!(t * 1.5);
    assert_malformed(
        &v,
        &format!("training.rewiring[1].theta.data[{j}]"),
        &format!("network.w_rec.data[{j}]"),
    );
    v["training"]["rewiring"][1]["theta"]["data"][j] = json!(-t);
    assert_malformed(
        &v,
        &format!("training.rewiring[1].theta.data[{j}]"),
        "sign * theta where theta > 0, else 0",
    );

    let mut v = good.clone();
    let theta = &v["training"]["rewiring"][2]["theta"]["data"];
    let j = first(theta, |t| t <= 0.0);
    v["network"]["readout"]["w_out"]["data"][j] = json!(0.25);
    assert_malformed(
        &v,
        &format!("training.rewiring[2].theta.data[{j}]"),
        &format!("network.readout.w_out.data[{j}] is 0.25"),
    );

    let mut v = good.clone();
    v["training"]["rewiring"][2]["sign"]["data"][4] = json!(0.5);
    assert_malformed(&v, "training.rewiring[2].sign.data[4]", "1 or -1");

    // The budget: more connections expected than the file has.
    let mut v = good.clone();
    v["training"]["rewiring"][1]["connectivity"] = json!(0.6);
    assert_malformed(&v, "training.rewiring", "budget");

    let mut v = good.clone();
    v["training"]["rewiring"][0]["matrix"] = json!("b_out");
    assert_malformed(&v, "training.rewiring[0].matrix", "unknown matrix");

    let mut v = good.clone();
    v["training"]["rewiring"][1]["matrix"] = json!("w_in");
    assert_malformed(&v, "training.rewiring[1].matrix", "rewired twice");

    // The optimiser and DEEP R's settings.
    let mut v = good.clone();
    v["training"]["optimizer"] = json!("rmsprop");
    assert_malformed(&v, "training.optimizer", "unknown optimizer \"rmsprop\"");

    let mut v = good.clone();
    v["training"].as_object_mut().unwrap().remove("beta2");
    assert_malformed(&v, "training.beta2", "missing");

    let mut v = good.clone();
    v["training"]["beta1"] = json!(1.0);
    assert_malformed(&v, "training.beta1", "[0, 1)");

    let mut v = good.clone();
    v["training"].as_object_mut().unwrap().remove("l1");
    assert_malformed(&v, "training.l1", "missing");

    let mut v = good.clone();
    v["training"]["temperature"] = json!(0.1);
    assert_malformed(&v, "training.temperature", "noise");

    // The loss and the readout.
    let mut v = good.clone();
    v["loss"]["kind"] = json!("linear");
    assert_malformed(&v, "loss.kind", "classification");

    let mut v = good.clone();
    v["loss"]["targets"] = json!({"shape": [4], "data": [0, 1, 2, 0]});
    assert_malformed(&v, "loss.targets", "input.targets");

    let mut v = good.clone();
    v["network"].as_object_mut().unwrap().remove("readout");
    assert_malformed(&v, "network.readout", "required");

    // The expectations.
    let mut v = good.clone();
    v["expect"]["final"]["theta"] = v["expect"]["final"]["w_rec"].clone();
    assert_malformed(&v, "expect.final.theta", "unknown array");

    let mut v = good.clone();
    v["expect"] = json!({});
    assert_malformed(&v, "expect", "loss and/or final");

    // The kind list of the format names "training".
    let mut v = good.clone();
    v["kind"] = json!("trainig");
    assert_malformed(&v, "kind", "\"training\"");

    // A copy of the targets equal to input.targets is fine.
    let mut v = good.clone();
    v["loss"]["targets"] = v["input"]["targets"].clone();
    Fixture::from_value(&v).unwrap();
}

#[test]
fn binary_reports_a_corrupt_training_file_and_goes_on() {
    let mut v = read("training_sgd_f32.json");
    v["training"]["optimizer"] = json!("adagrad");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad_training.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let good = fixtures_dir().join("training_sgd_f32.json");
    let (code, out, err) = run_bin(&[&bad, &good]);
    assert_eq!(code, 2, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("bad_training.json") && all.contains("training.optimizer"),
        "{all}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("PASS") && l.contains("training_sgd_f32.json"))
            .count(),
        QUANTITIES.len(),
        "{out}"
    );
}
