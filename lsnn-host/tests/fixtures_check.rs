//! `lsnn-host fixtures check`: the project's fixtures, self-made fixtures computed by an
//! independent dense reference written from the semantics page, and corrupted copies.

use lsnn_host::fixture::{
    available_backends, check_fixture, expand_paths, select_backends, Backend, CheckLine,
    CheckOptions, CoreBackend, Family, Fixture, FixtureError, Status, Summary, NO_BACKEND,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ------------------------------------------------------------------------------------------
// An independent reference: the semantics page, written densely and directly in f64.

struct Net {
    n_in: usize,
    n: usize,
    d: usize,
    r: usize,
    dt: f64,
    tau_a: f64,
    v0: f64,
    tau: Vec<f64>,
    thr: Vec<f64>,
    beta: Vec<f64>,
    w_in: Vec<f64>,
    w_rec: Vec<f64>,
    delay_in: Vec<usize>,
    delay_rec: Vec<usize>,
}

/// Initial state of one batch element: v, z, b [N], i_future [N][D], z_buf [N][R].
#[derive(Clone)]
struct State {
    v: Vec<f64>,
    z: Vec<f64>,
    b: Vec<f64>,
    i_future: Vec<Vec<f64>>,
    z_buf: Vec<Vec<f64>>,
}

impl State {
    fn zeros(net: &Net) -> Self {
        State {
            v: vec![0.0; net.n],
            z: vec![0.0; net.n],
            b: vec![0.0; net.n],
            i_future: vec![vec![0.0; net.d]; net.n],
            z_buf: vec![vec![0.0; net.r]; net.n],
        }
    }
}

/// Runs one element for T steps of `x` ([T][I]); returns per-step (z, v, thr) and the state.
#[allow(clippy::type_complexity, clippy::needless_range_loop)]
fn reference(
    net: &Net,
    x: &[Vec<f64>],
    mut s: State,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<Vec<f64>>, State) {
    let decay_b = (-net.dt / net.tau_a).exp();
    let (mut zs, mut vs, mut thrs) = (vec![], vec![], vec![]);
    for xt in x {
        for i in 0..net.n_in {
            for j in 0..net.n {
                s.i_future[j][net.delay_in[i * net.n + j]] +=
                    xt[i] * (net.w_in[i * net.n + j] * net.v0);
            }
        }
        for k in 0..net.n {
            for j in 0..net.n {
                if k != j {
                    s.i_future[j][net.delay_rec[k * net.n + j]] +=
                        s.z[k] * (net.w_rec[k * net.n + j] * net.v0);
                }
            }
        }
        let (mut z_new, mut v_new, mut b_new, mut a) = (
            vec![0.0; net.n],
            vec![0.0; net.n],
            vec![0.0; net.n],
            vec![0.0; net.n],
        );
        for j in 0..net.n {
            let decay = (-net.dt / net.tau[j]).exp();
            b_new[j] = decay_b * s.b[j] + (1.0 - decay_b) * s.z[j];
            a[j] = net.thr[j] + net.beta[j] * b_new[j] * net.v0;
            let i_t = s.i_future[j][0];
            v_new[j] = decay * s.v[j] + (1.0 - decay) * i_t - s.z[j] * a[j] * net.dt;
            let mut spike = if (s.v[j] - a[j]) / a[j] > 0.0 {
                1.0
            } else {
                0.0
            };
            if net.r > 0 && s.z_buf[j].iter().any(|&q| q > 0.0) {
                spike = 0.0;
            }
            z_new[j] = spike / net.dt;
            if net.r > 0 {
                s.z_buf[j].remove(0);
                s.z_buf[j].push(z_new[j]);
            }
            s.i_future[j].remove(0);
            s.i_future[j].push(0.0);
        }
        s.z = z_new;
        s.v = v_new;
        s.b = b_new;
        zs.push(s.z.clone());
        vs.push(s.v.clone());
        thrs.push(a);
    }
    (zs, vs, thrs, s)
}

fn arr(shape: &[usize], data: Vec<f64>) -> Value {
    assert_eq!(shape.iter().product::<usize>(), data.len());
    json!({"shape": shape, "data": data})
}

fn int_arr(shape: &[usize], data: &[usize]) -> Value {
    json!({"shape": shape, "data": data})
}

struct CellSpec {
    seed: u64,
    dtype: &'static str,
    n_in: usize,
    n: usize,
    d: usize,
    r: usize,
    b: usize,
    t: usize,
    dt: f64,
    v0: f64,
    with_initial_state: bool,
}

/// A random cell fixture with expected values from [`reference`].
fn cell_fixture(spec: &CellSpec) -> Value {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let (n_in, n, d, r) = (spec.n_in, spec.n, spec.d, spec.r);
    let net = Net {
        n_in,
        n,
        d,
        r,
        dt: spec.dt,
        tau_a: 200.0,
        v0: spec.v0,
        tau: (0..n).map(|_| rng.gen_range(5.0..30.0)).collect(),
        thr: (0..n).map(|_| rng.gen_range(0.02..0.06)).collect(),
        beta: (0..n)
            .map(|j| {
                if j % 2 == 0 {
                    0.0
                } else {
                    rng.gen_range(0.5..2.0)
                }
            })
            .collect(),
        w_in: (0..n_in * n).map(|_| rng.gen_range(-0.5..2.0)).collect(),
        w_rec: (0..n * n).map(|_| rng.gen_range(-0.3..0.4)).collect(),
        delay_in: (0..n_in * n).map(|_| rng.gen_range(0..d)).collect(),
        delay_rec: (0..n * n).map(|_| rng.gen_range(0..d)).collect(),
    };
    let spike = 1.0 / spec.dt;
    let x: Vec<Vec<Vec<f64>>> = (0..spec.b)
        .map(|_| {
            (0..spec.t)
                .map(|_| (0..n_in).map(|_| f64::from(rng.gen_bool(0.3))).collect())
                .collect()
        })
        .collect();
    let inits: Vec<State> = (0..spec.b)
        .map(|_| {
            let mut s = State::zeros(&net);
            if spec.with_initial_state {
                for j in 0..n {
                    s.v[j] = rng.gen_range(-0.02..0.08);
                    s.z[j] = if rng.gen_bool(0.4) { spike } else { 0.0 };
                    s.b[j] = rng.gen_range(0.0..0.05);
                    for k in 0..d {
                        s.i_future[j][k] = rng.gen_range(-0.1..0.3);
                    }
                    for k in 0..r {
                        s.z_buf[j][k] = if rng.gen_bool(0.3) { spike } else { 0.0 };
                    }
                }
            }
            s
        })
        .collect();

    let (mut z, mut v, mut thr) = (vec![], vec![], vec![]);
    let (mut fz, mut fv, mut fb, mut fi) = (vec![], vec![], vec![], vec![]);
    for (xb, init) in x.iter().zip(&inits) {
        let (zs, vs, ts, s) = reference(&net, xb, init.clone());
        z.extend(zs.concat());
        v.extend(vs.concat());
        thr.extend(ts.concat());
        fz.extend(&s.z);
        fv.extend(&s.v);
        fb.extend(&s.b);
        fi.extend(s.i_future.concat());
    }
    let n_spikes = z.iter().filter(|&&q| q != 0.0).count();
    assert!(
        n_spikes > 0 && n_spikes < z.len(),
        "reference spikes: {n_spikes}/{}",
        z.len()
    );

    let (bs, ts) = (spec.b, spec.t);
    let mut input = json!({"spikes": arr(&[bs, ts, n_in], x.concat().concat())});
    if spec.with_initial_state {
        let cat = |f: &dyn Fn(&State) -> Vec<f64>| inits.iter().flat_map(f).collect::<Vec<f64>>();
        input["initial_state"] = json!({
            "z": arr(&[bs, n], cat(&|s| s.z.clone())),
            "v": arr(&[bs, n], cat(&|s| s.v.clone())),
            "b": arr(&[bs, n], cat(&|s| s.b.clone())),
            "i_future": arr(&[bs, n, d], cat(&|s| s.i_future.concat())),
            "z_buf": arr(&[bs, n, r], cat(&|s| s.z_buf.concat())),
        });
    }
    json!({
        "format": "lsnn-fixture/1",
        "kind": "cell",
        "name": format!("test_cell_{}", spec.seed),
        "description": "random cell, expected values from the test's dense reference",
        "source": "lsnn-host/tests/fixtures_check.rs",
        "dtype": spec.dtype,
        "an_unknown_key": {"is": "ignored"},
        "network": {
            "n_in": n_in, "n_rec": n, "n_delay": d, "n_refractory": r,
            "dt": spec.dt, "tau_adaptation": net.tau_a, "dampening_factor": 0.3, "V0": spec.v0,
            "tau": arr(&[n], net.tau.clone()),
            "thr": arr(&[n], net.thr.clone()),
            "beta": arr(&[n], net.beta.clone()),
            "w_in": arr(&[n_in, n], net.w_in.clone()),
            "w_rec": arr(&[n, n], net.w_rec.clone()),
            "delay_in": int_arr(&[n_in, n], &net.delay_in),
            "delay_rec": int_arr(&[n, n], &net.delay_rec),
        },
        "input": input,
        "expect": {
            "z": arr(&[bs, ts, n], z),
            "v": arr(&[bs, ts, n], v),
            "thr": arr(&[bs, ts, n], thr),
            "final_state": {
                "z": arr(&[bs, n], fz),
                "v": arr(&[bs, n], fv),
                "b": arr(&[bs, n], fb),
                "i_future": arr(&[bs, n, d], fi),
            }
        }
    })
}

fn spec(seed: u64, dtype: &'static str) -> CellSpec {
    CellSpec {
        seed,
        dtype,
        n_in: 4,
        n: 6,
        d: 3,
        r: 2,
        b: 2,
        t: 40,
        dt: 1.0,
        v0: 1.0,
        with_initial_state: false,
    }
}

/// A readout_ops fixture computed directly.
fn readout_ops_fixture() -> Value {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (b, t, c, k, decay) = (2, 12, 3, 4, 0.9f64);
    let x: Vec<f64> = (0..b * t * c).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut conv = vec![0.0; b * t * c];
    let mut down = vec![0.0; b * k * c];
    for e in 0..b {
        for ch in 0..c {
            let mut acc = 0.0;
            for s in 0..t {
                acc = decay * acc + (1.0 - decay) * x[(e * t + s) * c + ch];
                conv[(e * t + s) * c + ch] = acc;
                down[(e * k + s / (t / k)) * c + ch] += x[(e * t + s) * c + ch] / (t / k) as f64;
            }
        }
    }
    json!({
        "format": "lsnn-fixture/1", "kind": "readout_ops", "name": "test_readout_ops",
        "description": "exp_convolve and downsample", "source": "test", "dtype": "float64",
        "input": {"x": arr(&[b, t, c], x)},
        "params": {"decay": decay, "new_size": k},
        "expect": {"exp_convolve": arr(&[b, t, c], conv), "downsample": arr(&[b, k, c], down)}
    })
}

/// A cell fixture with a loss and gradients (values arbitrary: nothing computes them yet).
fn grad_fixture() -> Value {
    let mut f = cell_fixture(&spec(11, "float32"));
    let (t, n, n_in) = (40, 6, 4);
    f["loss"] = json!({"kind": "linear", "c_z": arr(&[t, n], vec![0.5; t * n]),
                       "c_v": arr(&[t, n], vec![1; t * n].into_iter().map(f64::from).collect())});
    f["expect_grad"] = json!({"loss": 1.25, "w_in": arr(&[n_in, n], vec![0.1; n_in * n]),
                              "w_rec": arr(&[n, n], vec![0.0; n * n])});
    f
}

fn encoding_fixture() -> Value {
    json!({
        "format": "lsnn-fixture/1", "kind": "encoding", "name": "test_encoding",
        "description": "d", "source": "s", "dtype": "float32",
        "params": {"n_in": 80, "cue_steps": 56},
        "input": {"pixels": arr(&[1, 784], vec![0.0; 784])},
        "expect": {"spikes": int_arr(&[2, 3], &[0, 784, 79, 0, 785, 79])}
    })
}

fn deepr_fixture() -> Value {
    json!({
        "format": "lsnn-fixture/1", "kind": "deepr_step", "name": "test_deepr",
        "description": "d", "source": "s", "dtype": "float64",
        "params": {"learning_rate": 0.1, "l1": 0.01, "optimizer": "sgd", "temperature": 0},
        "input": [{"theta": arr(&[2, 2], vec![0.5, 0.0, 0.2, 0.1]),
                   "sign": arr(&[2, 2], vec![1.0, -1.0, 1.0, 1.0]),
                   "grad_w": arr(&[2, 2], vec![0.1, 0.2, -0.3, 0.4]),
                   "connectivity": 0.5}],
        "expect": {"theta_after_update": [arr(&[2, 2], vec![0.489, 0.0, 0.229, 0.059])],
                   "n_connected_after_rewiring": 2}
    })
}

// ------------------------------------------------------------------------------------------
// helpers

/// The backends of this build, in the order their lines come. The line counts below are per
/// backend and assume exactly these (see `available_backends_are_core_and_host`).
const BACKENDS: [&str; 2] = ["core", "host"];

/// The forward quantities of a cell fixture, in the format's order.
const FORWARD: [&str; 7] = [
    "z",
    "v",
    "thr",
    "final_state.z",
    "final_state.v",
    "final_state.b",
    "final_state.i_future",
];

/// Whether `backend` computes the quantities of `family`.
fn computes(backend: &str, family: Family) -> bool {
    match backend {
        "core" => matches!(family, Family::Forward | Family::ReadoutOps),
        "host" => matches!(
            family,
            Family::Forward
                | Family::LossGrad
                | Family::DeeprStep
                | Family::Encoding
                | Family::Training
        ),
        other => panic!("unexpected backend {other}"),
    }
}

/// The backends of [`BACKENDS`] that compute `family`.
fn computing(family: Family) -> Vec<&'static str> {
    BACKENDS
        .into_iter()
        .filter(|b| computes(b, family))
        .collect()
}

/// How a line names its backend: `core`, `host(f32)`, `-`.
fn label(l: &CheckLine) -> String {
    let note = if l.downgraded { "(f32)" } else { "" };
    format!("{}{note}", l.backend.as_deref().unwrap_or("-"))
}

/// The (quantity, backend label) of each line, in order.
fn pairs(lines: &[CheckLine]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| (l.quantity.to_string(), label(l)))
        .collect()
}

/// The (quantity, backend label) of each line of the binary's output that names `file`.
fn out_pairs(out: &str, file: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| l.contains(file))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[3].to_string(), fields[2].to_string())
        })
        .collect()
}

/// Every quantity once for every backend label, quantity-major (the checker's order).
fn expected_pairs(quantities: &[&str], labels: &[&str]) -> Vec<(String, String)> {
    quantities
        .iter()
        .flat_map(|q| labels.iter().map(|b| (q.to_string(), b.to_string())))
        .collect()
}

fn check_value(v: &Value, options: &CheckOptions) -> Vec<CheckLine> {
    let fixture = Fixture::from_value(v).unwrap_or_else(|e| panic!("parse: {e:?}"));
    let backends = select_backends(&BACKENDS.map(String::from)).unwrap();
    check_fixture("mem.json", &fixture, &backends, options)
}

fn assert_all_pass(lines: &[CheckLine]) {
    assert!(!lines.is_empty());
    for l in lines {
        assert_eq!(l.status, Status::Pass, "{l}");
    }
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

fn run_bin(args: &[&Path]) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_lsnn-host"))
        .arg("fixtures")
        .arg("check")
        .args(BACKENDS.iter().flat_map(|b| ["--backend", b]))
        .args(args)
        .output()
        .expect("run lsnn-host");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn malformed_key(v: &Value) -> String {
    match Fixture::parse_str(&v.to_string()) {
        Err(FixtureError::Format(e)) => e.key,
        other => panic!("expected a format error, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// the project's fixtures

/// The shipped fixtures; a path that cannot be read, or no fixture at all, fails the test.
fn project_fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let files: Vec<PathBuf> = expand_paths(std::slice::from_ref(&dir))
        .into_iter()
        .map(|p| p.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn available_backends_are_core_and_host() {
    // A `cuda` build on a machine with a device adds `gpu`; the line counts of these tests are
    // for the two CPU backends, which every build has and which the tests select by name.
    let names: Vec<String> = available_backends()
        .iter()
        .map(|b| b.name().to_string())
        .collect();
    assert_eq!(
        names[..2],
        BACKENDS,
        "core and host come first, in this order"
    );
    assert!(names[2..].iter().all(|n| n == "gpu"), "{names:?}");
    assert!(select_backends(&BACKENDS.map(String::from))
        .unwrap()
        .iter()
        .all(|b| b.computes_f64()));
}

#[test]
fn project_fixtures_pass_on_all_backends() {
    let files = project_fixture_files();
    let backends = select_backends(&BACKENDS.map(String::from)).unwrap();
    let options = CheckOptions::default();
    let mut failures = Vec::new();
    for path in &files {
        let fixture = Fixture::load(path).unwrap_or_else(|e| panic!("{e}"));
        let lines = check_fixture(&path.display().to_string(), &fixture, &backends, &options);
        for line in &lines {
            println!("{line}");
        }
        // Per quantity: one line from each backend that computes its family, in order, in the
        // fixture's own precision.
        let mut counted = 0;
        for q in fixture.quantities() {
            let family = q.family();
            let of_q: Vec<&CheckLine> = lines.iter().filter(|l| l.quantity == q).collect();
            let got: Vec<String> = of_q.iter().map(|l| label(l)).collect();
            let expected = computing(family);
            assert!(!expected.is_empty(), "{}: {q}: no backend", path.display());
            assert_eq!(got, expected, "{}: {q}", path.display());
            counted += got.len();
        }
        assert_eq!(lines.len(), counted, "{}: stray lines", path.display());
        for line in lines {
            assert!(!line.downgraded, "{line}");
            if line.status != Status::Pass {
                failures.push(line.to_string());
            }
        }
    }
    assert!(failures.is_empty(), "failed:\n{}", failures.join("\n"));
}

/// The host's loss, gradients and DEEP R step on the project's fixtures.
#[test]
fn host_passes_gradient_and_deepr_fixtures() {
    let files = project_fixture_files();
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let grads: Vec<&PathBuf> = files
        .iter()
        .filter(|p| name(p).starts_with("grad_"))
        .collect();
    let deepr: Vec<&PathBuf> = files
        .iter()
        .filter(|p| name(p).starts_with("deepr_step_"))
        .collect();
    let grad_names: Vec<String> = grads.iter().map(|p| name(p)).collect();
    for f in [
        "grad_classification_f32.json",
        "grad_classification_f64.json",
        "grad_linear_f32.json",
        "grad_linear_f64.json",
    ] {
        assert!(
            grad_names.contains(&f.to_string()),
            "{f} missing: {grad_names:?}"
        );
    }
    let deepr_names: Vec<String> = deepr.iter().map(|p| name(p)).collect();
    assert_eq!(deepr_names, ["deepr_step_f32.json", "deepr_step_f64.json"]);

    let host = select_backends(&["host".into()]).unwrap();
    let options = CheckOptions::default();
    let check = |path: &PathBuf| {
        let fixture = Fixture::load(path).unwrap_or_else(|e| panic!("{e}"));
        let lines = check_fixture(&path.display().to_string(), &fixture, &host, &options);
        for l in &lines {
            println!("{l}");
            assert_eq!(l.backend.as_deref(), Some("host"), "{l}");
            assert!(!l.downgraded, "{l}");
            assert_eq!(l.status, Status::Pass, "{l}");
        }
        lines
    };
    let names_of = |lines: &[CheckLine], family: Family| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.quantity.family() == family)
            .map(|l| l.quantity.to_string())
            .collect()
    };
    for path in &grads {
        let lines = check(path);
        // The forward pass, then the loss and the gradients of every array the file names.
        let forward = names_of(&lines, Family::Forward);
        assert_eq!(forward, FORWARD, "{}", path.display());
        let grad = names_of(&lines, Family::LossGrad);
        let expected: &[&str] = if name(path).starts_with("grad_classification") {
            &[
                "loss",
                "grad.w_in",
                "grad.w_rec",
                "grad.w_out",
                "grad.b_out",
            ]
        } else {
            &["loss", "grad.w_in", "grad.w_rec"]
        };
        assert_eq!(grad, expected, "{}", path.display());
        assert_eq!(lines.len(), forward.len() + grad.len());
    }
    for path in &deepr {
        let lines = check(path);
        assert_eq!(
            names_of(&lines, Family::DeeprStep),
            ["theta_after_update", "n_connected_after_rewiring"],
            "{}",
            path.display()
        );
        assert_eq!(lines.len(), 2);
    }
}

// ------------------------------------------------------------------------------------------
// self-made fixtures through the library

#[test]
fn reference_cells_pass_in_f64_and_f32() {
    for (seed, dtype) in [(1, "float64"), (2, "float32")] {
        let lines = check_value(&cell_fixture(&spec(seed, dtype)), &CheckOptions::default());
        assert_all_pass(&lines);
        // z v thr and four final_state arrays, each from the core and from the host.
        assert_eq!(lines.len(), 7 * BACKENDS.len());
        assert_eq!(pairs(&lines), expected_pairs(&FORWARD, &BACKENDS));
        assert!(lines.iter().all(|l| !l.downgraded));
    }
}

#[test]
fn reference_cell_with_initial_state_dt_and_v0() {
    let mut s = spec(3, "float64");
    s.dt = 0.5;
    s.v0 = 1.5;
    s.r = 3;
    s.with_initial_state = true;
    let f = cell_fixture(&s);
    let lines = check_value(&f, &CheckOptions::default());
    assert_all_pass(&lines);
    // Also in f32 against the float64 values: the f32 tolerances, marked (f32).
    let lines = check_value(&f, &CheckOptions { also_f32: true });
    assert_eq!(lines.len(), 2 * 7 * BACKENDS.len());
    assert_all_pass(&lines);
    assert_eq!(
        pairs(&lines),
        expected_pairs(&FORWARD, &["core", "core(f32)", "host", "host(f32)"])
    );
    let downgraded: Vec<&CheckLine> = lines.iter().filter(|l| l.downgraded).collect();
    assert_eq!(downgraded.len(), 7 * BACKENDS.len());
    assert!(downgraded[0].to_string().contains("core(f32)"));
    assert!(downgraded[1].to_string().contains("host(f32)"));
}

#[test]
fn no_refractoriness_and_single_delay() {
    let mut s = spec(4, "float64");
    s.r = 0;
    s.d = 1;
    assert_all_pass(&check_value(&cell_fixture(&s), &CheckOptions::default()));
}

#[test]
fn integers_written_without_decimal_point() {
    let mut f = cell_fixture(&spec(5, "float64"));
    // dt, tau_adaptation, V0 as JSON integers; tau written as integers too.
    f["network"]["dt"] = json!(1);
    f["network"]["tau_adaptation"] = json!(200);
    f["network"]["V0"] = json!(1);
    let fixture = Fixture::from_value(&f).unwrap();
    assert!(matches!(
        fixture.kind,
        lsnn_host::fixture::FixtureKind::Cell(_)
    ));
    assert_all_pass(&check_value(&f, &CheckOptions::default()));
    // Integer-valued floats where integers are required are accepted; fractions are not.
    f["network"]["n_delay"] = json!(3.0);
    assert!(Fixture::from_value(&f).is_ok());
    f["network"]["n_delay"] = json!(3.5);
    assert_eq!(malformed_key(&f), "network.n_delay");
}

#[test]
fn readout_ops_pass() {
    let lines = check_value(&readout_ops_fixture(), &CheckOptions::default());
    // Once per backend that computes readout ops (the core).
    let labels = computing(Family::ReadoutOps);
    assert_eq!(labels, ["core"]);
    assert_eq!(lines.len(), 2 * labels.len());
    assert_eq!(
        pairs(&lines),
        expected_pairs(&["exp_convolve", "downsample"], &labels)
    );
    assert_all_pass(&lines);
}

#[test]
fn quantities_without_backend_fail_with_reason() {
    // With only the core, which computes no loss, gradient, encoding or DEEP R step, these
    // quantities have no backend; deterministic whatever other backends come to compute.
    let core_only = select_backends(&["core".into()]).unwrap();
    let cases: [(Value, &[&str]); 3] = [
        (grad_fixture(), &["loss", "grad.w_in", "grad.w_rec"]),
        (encoding_fixture(), &["spikes"]),
        (
            deepr_fixture(),
            &["theta_after_update", "n_connected_after_rewiring"],
        ),
    ];
    for (f, uncomputed) in cases {
        let fixture = Fixture::from_value(&f).unwrap();
        let lines = check_fixture("mem.json", &fixture, &core_only, &CheckOptions::default());
        // One line per quantity: the core's or the "no backend" one.
        assert_eq!(lines.len(), fixture.quantities().len());
        let missing: Vec<&CheckLine> = lines.iter().filter(|l| l.is_no_backend()).collect();
        let names: Vec<String> = missing.iter().map(|l| l.quantity.to_string()).collect();
        assert_eq!(names, uncomputed);
        for l in &missing {
            assert!(!computes("core", l.quantity.family()), "{l}");
            assert_eq!(l.status, Status::Fail);
            assert_eq!(l.backend, None);
            assert_eq!(l.precision, None);
            assert_eq!(l.detail, NO_BACKEND);
            assert!(l.to_string().contains("  -  "), "{l}");
            assert!(l.to_string().ends_with(NO_BACKEND), "{l}");
        }
        // The forward quantities of the gradient fixture still pass on the core.
        for l in lines.iter().filter(|l| !l.is_no_backend()) {
            assert_eq!(l.backend.as_deref(), Some("core"), "{l}");
            assert_eq!(l.quantity.family(), Family::Forward, "{l}");
            assert_eq!(l.status, Status::Pass, "{l}");
        }
    }

    // The same with a backend list built by hand.
    let fixture = Fixture::from_value(&grad_fixture()).unwrap();
    let by_hand: Vec<Box<dyn Backend>> = vec![Box::new(CoreBackend)];
    let lines = check_fixture("mem.json", &fixture, &by_hand, &CheckOptions::default());
    let names: Vec<String> = lines
        .iter()
        .filter(|l| l.is_no_backend())
        .map(|l| l.quantity.to_string())
        .collect();
    assert_eq!(names, ["loss", "grad.w_in", "grad.w_rec"]);

    // No backend at all: every quantity fails so.
    let fixture = Fixture::from_value(&readout_ops_fixture()).unwrap();
    let lines = check_fixture("mem.json", &fixture, &[], &CheckOptions::default());
    assert_eq!(
        pairs(&lines),
        expected_pairs(&["exp_convolve", "downsample"], &["-"])
    );
    assert!(lines
        .iter()
        .all(|l| l.status == Status::Fail && l.detail == NO_BACKEND));

    // With every backend, the host computes what the core does not (the self-made expected
    // values of these two fixtures are arbitrary, so only who computes is checked here).
    for f in [grad_fixture(), deepr_fixture()] {
        let lines = check_value(&f, &CheckOptions::default());
        assert!(lines.iter().all(|l| !l.is_no_backend()), "{lines:#?}");
        for l in &lines {
            let family = l.quantity.family();
            if family != Family::Forward {
                assert_eq!(l.backend.as_deref(), Some("host"), "{l}");
            }
        }
    }
}

#[test]
fn tolerance_override_in_file() {
    let mut f = cell_fixture(&spec(6, "float64"));
    let v = f["expect"]["v"]["data"].as_array_mut().unwrap();
    v[5] = json!(v[5].as_f64().unwrap() + 1e-6);
    let lines = check_value(&f, &CheckOptions::default());
    let v_line = lines.iter().find(|l| l.quantity.name() == "v").unwrap();
    assert_eq!(v_line.status, Status::Fail, "{v_line}");
    f["tolerance"] = json!({"v": {"abs": 1e-5}});
    let lines = check_value(&f, &CheckOptions::default());
    assert_all_pass(&lines);
}

// ------------------------------------------------------------------------------------------
// malformed files: the key path is named

#[test]
fn malformed_files_name_the_key() {
    let good = cell_fixture(&spec(8, "float32"));

    let mut f = good.clone();
    f["network"].as_object_mut().unwrap().remove("tau");
    assert_eq!(malformed_key(&f), "network.tau");

    let mut f = good.clone();
    f["network"]["w_rec"]["shape"] = json!([1, 36]);
    assert_eq!(malformed_key(&f), "network.w_rec.shape");

    let mut f = good.clone();
    f["network"]["w_in"]["data"].as_array_mut().unwrap().pop();
    assert_eq!(malformed_key(&f), "network.w_in.data");

    let mut f = good.clone();
    f["network"]["delay_rec"]["data"][7] = json!(3);
    assert_eq!(malformed_key(&f), "network.delay_rec.data[7]");

    let mut f = good.clone();
    f["network"]["delay_in"]["data"][2] = json!(0.5);
    assert_eq!(malformed_key(&f), "network.delay_in.data[2]");

    let mut f = good.clone();
    f["network"]["n_delay"] = json!(0);
    assert_eq!(malformed_key(&f), "network.n_delay");

    let mut f = good.clone();
    f["expect"]["v"]["shape"] = json!([2, 6, 40]);
    assert_eq!(malformed_key(&f), "expect.v.shape");

    let mut f = good.clone();
    f["input"]["spikes"]["shape"] = json!([80, 4]);
    assert_eq!(malformed_key(&f), "input.spikes.shape");

    let mut f = good.clone();
    f["expect"]["final_state"]["i_future"]["shape"] = json!([2, 6, 2]);
    f["expect"]["final_state"]["i_future"]["data"] = json!(vec![0.0; 24]);
    assert_eq!(malformed_key(&f), "expect.final_state.i_future.shape");

    let mut f = good.clone();
    f["dtype"] = json!("float16");
    assert_eq!(malformed_key(&f), "dtype");

    let mut f = good.clone();
    f["format"] = json!("lsnn-fixture/2");
    assert_eq!(malformed_key(&f), "format");

    let mut f = good.clone();
    f["kind"] = json!("cel");
    assert_eq!(malformed_key(&f), "kind");

    let mut f = good.clone();
    f.as_object_mut().unwrap().remove("expect");
    assert_eq!(malformed_key(&f), "expect");

    let mut f = good.clone();
    f["expect_grad"] = json!({"loss": 1.0});
    assert_eq!(malformed_key(&f), "loss");

    let mut f = good.clone();
    f["network"]["thr"]["data"][1] = json!(-0.01);
    assert_eq!(malformed_key(&f), "network.thr.data[1]");

    let mut f = good.clone();
    f["tolerance"] = json!({"v": {"abs": "big"}});
    assert_eq!(malformed_key(&f), "tolerance.v.abs");

    let mut f = readout_ops_fixture();
    f["params"]["new_size"] = json!(5);
    assert_eq!(malformed_key(&f), "params.new_size");

    let mut f = encoding_fixture();
    f["expect"]["spikes"]["data"][2] = json!(80);
    assert_eq!(malformed_key(&f), "expect.spikes.data[2]");

    let mut f = deepr_fixture();
    f["input"][0]["sign"]["shape"] = json!([4, 1]);
    assert_eq!(malformed_key(&f), "input[0].sign.shape");

    assert!(matches!(
        Fixture::parse_str("{\"format\": "),
        Err(FixtureError::Json(_))
    ));
}

#[test]
fn summary_exit_codes() {
    let mut s = Summary::default();
    assert_eq!(s.exit_code(), 2, "nothing checked");
    let pass = check_value(&readout_ops_fixture(), &CheckOptions::default());
    s.record(&pass[0]);
    assert_eq!(s.exit_code(), 0);
    let fixture = Fixture::from_value(&encoding_fixture()).unwrap();
    let core_only = select_backends(&["core".into()]).unwrap();
    let fail = check_fixture("mem.json", &fixture, &core_only, &CheckOptions::default());
    assert_eq!(fail[0].status, Status::Fail, "{}", fail[0]);
    s.record(&fail[0]);
    assert_eq!(s.exit_code(), 1);
    s.record_bad_input();
    assert_eq!(s.exit_code(), 2);
}

// ------------------------------------------------------------------------------------------
// the binary on corrupted copies

#[test]
fn binary_passes_good_files_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "b_cell.json",
        &cell_fixture(&spec(9, "float32")),
    );
    write(dir.path(), "a_ops.json", &readout_ops_fixture());
    std::fs::write(dir.path().join("notes.txt"), "not a fixture").unwrap();
    let (code, out, err) = run_bin(&[dir.path()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    // The readout ops once per backend computing them, then the cell's 7 quantities once per
    // backend.
    let ops_backends = computing(Family::ReadoutOps);
    let n_ops = 2 * ops_backends.len();
    assert_eq!(lines.len(), n_ops + 7 * BACKENDS.len(), "{out}");
    assert!(
        lines[..n_ops].iter().all(|l| l.contains("a_ops.json"))
            && lines[n_ops..].iter().all(|l| l.contains("b_cell.json")),
        "{out}"
    );
    assert_eq!(
        out_pairs(&out, "a_ops.json"),
        expected_pairs(&["exp_convolve", "downsample"], &ops_backends),
        "{out}"
    );
    assert_eq!(
        out_pairs(&out, "b_cell.json"),
        expected_pairs(&FORWARD, &BACKENDS),
        "{out}"
    );
    assert!(lines.iter().all(|l| l.starts_with("PASS  ")), "{out}");
    let zs: Vec<&&str> = lines.iter().filter(|l| l.contains("  z  ")).collect();
    assert_eq!(zs.len(), BACKENDS.len(), "{out}");
    for (z, backend) in zs.iter().zip(BACKENDS) {
        let fields: Vec<&str> = z.split_whitespace().collect();
        assert_eq!(
            fields[..4],
            ["PASS", &a.display().to_string(), backend, "z"]
        );
        assert_eq!(fields[4], "mismatches=0/480");
    }

    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = run_bin(&[empty.path()]);
    assert_eq!(code, 2);
    assert!(err.contains("no *.json"), "{err}");
    let (code, _, err) = run_bin(&[&dir.path().join("missing.json")]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.json"), "{err}");
}

#[test]
fn binary_flags_a_flipped_spike() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = cell_fixture(&spec(10, "float32"));
    let z = f["expect"]["z"]["data"].as_array_mut().unwrap();
    let first = z.iter().position(|x| x.as_f64() != Some(0.0)).unwrap();
    z[first] = json!(0.0);
    let p = write(dir.path(), "flipped.json", &f);
    let (code, out, _) = run_bin(&[&p]);
    assert_eq!(code, 1, "{out}");
    // The z line fails on every backend, and nothing else does.
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), BACKENDS.len(), "{out}");
    let (b, t, n) = (first / 240, (first % 240) / 6, first % 6);
    for (line, backend) in fails.iter().zip(BACKENDS) {
        assert!(
            line.contains("flipped.json") && line.contains(&format!("  {backend}  z  ")),
            "{out}"
        );
        assert!(line.contains("mismatches=1/480"), "{line}");
        assert!(line.contains(&format!("first at [{b},{t},{n}]")), "{line}");
    }
}

#[test]
fn binary_flags_a_perturbed_voltage() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = cell_fixture(&spec(12, "float32"));
    let v = f["expect"]["v"]["data"].as_array_mut().unwrap();
    v[100] = json!(v[100].as_f64().unwrap() + 1e-3);
    let p = write(dir.path(), "perturbed.json", &f);
    let (code, out, _) = run_bin(&[&p]);
    assert_eq!(code, 1, "{out}");
    // The v line fails on every backend, and nothing else does.
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), BACKENDS.len(), "{out}");
    for (line, backend) in fails.iter().zip(BACKENDS) {
        assert!(
            line.contains("perturbed.json") && line.contains(&format!("  {backend}  v  ")),
            "{out}"
        );
        assert!(
            line.contains("max_err=1.0e-3") && line.contains("at [0,16,4]"),
            "{out}"
        );
    }
}

#[test]
fn binary_reports_malformed_files_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let good = cell_fixture(&spec(13, "float32"));
    let text = serde_json::to_string(&good).unwrap();
    std::fs::write(dir.path().join("a_truncated.json"), &text[..text.len() / 2]).unwrap();
    let mut f = good.clone();
    f["network"].as_object_mut().unwrap().remove("w_rec");
    write(dir.path(), "b_no_w_rec.json", &f);
    let mut f = good.clone();
    f["expect"]["thr"]["shape"] = json!([2, 240]);
    write(dir.path(), "c_bad_shape.json", &f);
    let mut f = good.clone();
    f["expect"]["v"]["data"][0] = json!(5.0);
    write(dir.path(), "d_numeric_fail.json", &f);
    write(dir.path(), "e_good.json", &good);

    let (code, out, err) = run_bin(&[dir.path()]);
    assert_eq!(code, 2, "malformed files dominate:\n{out}\n{err}");
    assert!(err.contains("a_truncated.json: invalid JSON"), "{err}");
    assert!(
        err.contains("b_no_w_rec.json: network.w_rec: required key is missing"),
        "{err}"
    );
    assert!(
        err.contains("c_bad_shape.json: expect.thr.shape: expected [2,40,6]"),
        "{err}"
    );
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL  ")).collect();
    assert_eq!(fails.len(), BACKENDS.len(), "{out}");
    for (line, backend) in fails.iter().zip(BACKENDS) {
        assert!(
            line.contains(&format!("d_numeric_fail.json  {backend}  v  ")),
            "{out}"
        );
    }
    assert_eq!(
        out.lines().filter(|l| l.contains("e_good.json")).count(),
        7 * BACKENDS.len(),
        "{out}"
    );
    assert_eq!(
        out_pairs(&out, "e_good.json"),
        expected_pairs(&FORWARD, &BACKENDS),
        "{out}"
    );

    // Only the numeric failure: exit 1.
    let (code, _, _) = run_bin(&[
        &dir.path().join("d_numeric_fail.json"),
        &dir.path().join("e_good.json"),
    ]);
    assert_eq!(code, 1);
}

#[test]
fn binary_unknown_backend_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.json", &readout_ops_fixture());
    let out = Command::new(env!("CARGO_BIN_EXE_lsnn-host"))
        .args(["fixtures", "check", "--backend", "tpu"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown backend \"tpu\""));
    let out = Command::new(env!("CARGO_BIN_EXE_lsnn-host"))
        .args([
            "fixtures",
            "check",
            "--backend",
            "core",
            "--backend",
            "core",
        ])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = Command::new(env!("CARGO_BIN_EXE_lsnn-host"))
        .args(["fixtures", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no FILE is a usage error");
}

// ------------------------------------------------------------------------------------------
// the backend abstraction, as a new backend would use it

/// An f32-only backend that computes just `z` (through the core) and fails on readout ops.
struct PartialF32;

impl lsnn_host::fixture::Backend for PartialF32 {
    fn name(&self) -> &str {
        "partial"
    }
    fn computes_f64(&self) -> bool {
        false
    }
    fn cell_forward(
        &self,
        cell: &lsnn_host::fixture::CellFixture,
        precision: lsnn_host::fixture::Precision,
    ) -> lsnn_host::fixture::Computed<lsnn_host::fixture::CellOutputs> {
        assert_eq!(precision, lsnn_host::fixture::Precision::F32);
        let full = lsnn_host::fixture::CoreBackend.cell_forward(cell, precision)?;
        Some(full.map(|o| lsnn_host::fixture::CellOutputs {
            z: o.z,
            ..Default::default()
        }))
    }
    fn readout_ops(
        &self,
        _ops: &lsnn_host::fixture::ReadoutOpsFixture,
        _precision: lsnn_host::fixture::Precision,
    ) -> lsnn_host::fixture::Computed<lsnn_host::fixture::ReadoutOpsOutputs> {
        Some(Err(lsnn_host::HostError::Backend {
            backend: "partial".into(),
            message: "no kernel".into(),
        }))
    }
}

#[test]
fn extra_backends_plug_in() {
    let mut backends = select_backends(&BACKENDS.map(String::from)).unwrap();
    backends.push(Box::new(PartialF32));
    let fixture = Fixture::from_value(&cell_fixture(&spec(14, "float64"))).unwrap();
    let lines = check_fixture("f.json", &fixture, &backends, &CheckOptions::default());
    let shown: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // z from every backend, the f32-only one last and marked (f32); the rest from the
    // available backends only.
    assert_eq!(lines.len(), 3 + 6 * BACKENDS.len(), "{shown:#?}");
    let mut expected = expected_pairs(&FORWARD[..1], &["core", "host", "partial(f32)"]);
    expected.extend(expected_pairs(&FORWARD[1..], &BACKENDS));
    assert_eq!(pairs(&lines), expected, "{shown:#?}");
    assert!(
        shown[0].starts_with("PASS  f.json  core  z  "),
        "{shown:#?}"
    );
    assert!(
        shown[1].starts_with("PASS  f.json  host  z  "),
        "{shown:#?}"
    );
    assert!(
        shown[2].starts_with("PASS  f.json  partial(f32)  z  "),
        "{shown:#?}"
    );
    assert!(lines[2].downgraded);
    assert!(lines.iter().filter(|l| l.downgraded).count() == 1);
    assert_all_pass(&lines);

    let fixture = Fixture::from_value(&readout_ops_fixture()).unwrap();
    let lines = check_fixture("r.json", &fixture, &backends, &CheckOptions::default());
    // The readout ops from the core (the only available backend computing them) and from the
    // partial backend, which errs.
    let mut labels = computing(Family::ReadoutOps);
    labels.push("partial(f32)");
    assert_eq!(labels, ["core", "partial(f32)"]);
    assert_eq!(
        pairs(&lines),
        expected_pairs(&["exp_convolve", "downsample"], &labels)
    );
    assert_eq!(lines.len(), 4);
    let failed: Vec<String> = lines
        .iter()
        .filter(|l| l.status == Status::Fail)
        .map(|l| l.to_string())
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(failed[0].contains("partial(f32)  exp_convolve  error: backend partial: no kernel"));
}
