//! The C API against lsnn-core's own driver (bit for bit), and against bad input (a status
//! code for each, never a panic: a panic inside an `extern "C"` function aborts this test).

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use lsnn_capi::*;
use lsnn_core::sequence::{run_sequence, Observation, WindowMeans};
use lsnn_core::{CellConfig, CellState, Csr, Model, ModelParts, Neuron, WeightKind};

/// A small deterministic generator (the tests need no statistics, only variety).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn unit(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32
    }
}

/// A random network (LIF and ALIF neurons, delays, refractoriness, bias) in the model format.
fn random_model(seed: u64, kind: WeightKind) -> Vec<u8> {
    let (n_in, n, n_out) = (12, 24, 3);
    let mut rng = Lcg(seed);
    let config = CellConfig {
        n_delay: 4,
        n_refractory: 2,
        ..CellConfig::new()
    };
    let mut csr = |n_pre: usize, scale: f32, no_autapse: bool| {
        Csr::from_entries(n_pre, n, no_autapse, |_, _| {
            let on = rng.unit() < 0.3;
            let w = (rng.unit() - 0.4) * scale;
            let d = (rng.next() % 4) as u8;
            Ok(on.then_some((w, d)))
        })
        .unwrap()
    };
    let (w_in, w_rec) = (csr(n_in, 0.3, false), csr(n, 0.2, true));
    let tau: Vec<f32> = (0..n).map(|j| 10.0 + j as f32).collect();
    let thr = vec![0.05; n];
    let beta: Vec<f32> = (0..n).map(|j| if j < n / 2 { 0.0 } else { 1.5 }).collect();
    let w_out: Vec<f32> = (0..n * n_out).map(|_| rng.unit() - 0.5).collect();
    let b_out = vec![0.1, -0.2, 0.05];
    ModelParts {
        config,
        tau: &tau,
        thr: &thr,
        beta: &beta,
        w_in: w_in.view(),
        w_rec: w_rec.view(),
        w_out: &w_out,
        b_out: Some(&b_out),
        tau_out: 20.0,
        weights: kind,
    }
    .to_vec()
    .unwrap()
}

/// Random inputs: per step, an ascending subset of the channels.
fn random_steps(seed: u64, n_in: usize, steps: usize) -> Vec<Vec<u32>> {
    let mut rng = Lcg(seed);
    (0..steps)
        .map(|_| (0..n_in as u32).filter(|_| rng.unit() < 0.2).collect())
        .collect()
}

/// Memory for a network, aligned to LSNN_NET_ALIGN.
fn memory(bytes: usize) -> Vec<u64> {
    vec![0u64; bytes.div_ceil(8) + 1]
}

fn check(model: &[u8]) -> (lsnn_status, lsnn_model_info) {
    let mut info = lsnn_model_info::default();
    let s = unsafe { lsnn_model_check(model.as_ptr(), model.len(), &mut info) };
    (s, info)
}

/// `lsnn_net_init` of `model` in `len` bytes at `at`: the status and the network.
fn try_init(model: &[u8], at: *mut u8, len: usize) -> (lsnn_status, *mut lsnn_net) {
    let mut net = null_mut();
    let s = unsafe { lsnn_net_init(model.as_ptr(), model.len(), at.cast(), len, &mut net) };
    (s, net)
}

fn init(model: &[u8], mem: &mut [u64]) -> *mut lsnn_net {
    let (s, net) = try_init(model, mem.as_mut_ptr().cast(), mem.len() * 8);
    assert_eq!(s, LSNN_OK, "{}", message(s));
    net
}

fn message(s: lsnn_status) -> String {
    unsafe { CStr::from_ptr(lsnn_status_message(s)) }
        .to_str()
        .unwrap()
        .to_string()
}

/// Per step: the spiking neurons and the bits of the readout outputs.
type Trace = Vec<(Vec<u32>, Vec<u32>)>;

/// The steps through the C API.
fn run_capi(net: *mut lsnn_net, n_rec: usize, n_out: usize, steps: &[Vec<u32>]) -> Trace {
    steps
        .iter()
        .map(|ch| {
            let mut k = 0u32;
            assert_eq!(
                unsafe { lsnn_net_step(net, ch.as_ptr(), ch.len(), &mut k) },
                LSNN_OK
            );
            let (mut spikes, mut count) = (vec![0u32; n_rec], 0usize);
            let s = unsafe { lsnn_net_spikes(net, spikes.as_mut_ptr(), n_rec, &mut count) };
            assert_eq!((s, count), (LSNN_OK, k as usize));
            spikes.truncate(count);
            let mut y = vec![0.0f32; n_out];
            assert_eq!(
                unsafe { lsnn_net_outputs(net, y.as_mut_ptr(), n_out) },
                LSNN_OK
            );
            (spikes, y.iter().map(|v| v.to_bits()).collect())
        })
        .collect()
}

/// The same steps through lsnn-core's driver, as the firmware and `lsnn-host infer` run them.
fn run_core(bytes: &[u8], steps: &[Vec<u32>]) -> Trace {
    let model = Model::parse(bytes).unwrap();
    let (n, d, o) = (model.n_rec(), model.config().n_delay, model.n_out());
    let mut neurons = vec![Neuron::default(); n];
    model.neurons_into(&mut neurons).unwrap();
    let readout = model.readout().unwrap();
    let (mut filtered, mut out) = (vec![0.0f32; o], vec![0.0f32; o]);
    let mut windows = WindowMeans::new(vec![0.0f32; o], 1).unwrap();
    let mut trace = Trace::new();
    let mut observe = |obs: Observation<'_>| {
        if let Observation::Stepped { z, y, .. } = obs {
            let spikes = (0..z.len() as u32)
                .filter(|&j| z[j as usize] != 0.0)
                .collect();
            trace.push((spikes, y.iter().map(|v| v.to_bits()).collect()));
        }
    };
    let events = steps
        .iter()
        .map(|ch| ch.iter().map(|&c| (c as usize, 1.0f32)));
    if model.is_integer() {
        let cell = model.integer_cell(&neurons).unwrap();
        let mut state =
            CellState::with_i32_ring(vec![0.0; 3 * n], vec![0; n], vec![0; d * n], n, d).unwrap();
        let (f, y, w) = (&mut filtered, &mut out, &mut windows);
        run_sequence(&cell, &readout, &mut state, f, y, w, events, &mut observe).unwrap();
    } else {
        let cell = model.cell(&neurons).unwrap();
        let mut state = cell.state_in(vec![0.0; (3 + d) * n], vec![0; n]).unwrap();
        let (f, y, w) = (&mut filtered, &mut out, &mut windows);
        run_sequence(&cell, &readout, &mut state, f, y, w, events, &mut observe).unwrap();
    }
    trace
}

#[test]
fn computes_what_the_core_computes_bit_for_bit() {
    let mut total_spikes = 0;
    for kind in [WeightKind::F32, WeightKind::I16, WeightKind::I8] {
        for seed in 1..=3 {
            let model = random_model(seed, kind);
            let (s, info) = check(&model);
            assert_eq!(s, LSNN_OK);
            assert_eq!(
                (info.n_in, info.n_rec, info.n_out, info.n_delay),
                (12, 24, 3, 4)
            );
            assert_eq!(info.integer, kind != WeightKind::F32);
            assert_eq!(info.weight_kind, u32::from(kind.code()));
            // Exactly net_bytes suffice.
            let mut mem = memory(info.net_bytes);
            let (s, net) = try_init(&model, mem.as_mut_ptr().cast(), info.net_bytes);
            assert_eq!(s, LSNN_OK);
            let steps = random_steps(seed + 10, 12, 80);
            let expected = run_core(&model, &steps);
            let got = run_capi(net, 24, 3, &steps);
            assert_eq!(got, expected, "{kind:?} seed {seed}");
            total_spikes += got.iter().map(|(z, _)| z.len()).sum::<usize>();
            // After a reset, the same sequence gives the same trace again.
            assert_eq!(unsafe { lsnn_net_reset(net) }, LSNN_OK);
            assert_eq!(run_capi(net, 24, 3, &steps), expected);
        }
    }
    assert!(
        total_spikes > 100,
        "the test networks must spike ({total_spikes} spikes)"
    );
}

#[test]
fn the_fuzz_seeds_run_as_in_the_core() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let (s, info) = check(&bytes);
        assert_eq!(s, LSNN_OK);
        let mut mem = memory(info.net_bytes);
        let net = init(&bytes, &mut mem);
        let steps = random_steps(7, info.n_in as usize, 30);
        let got = run_capi(net, info.n_rec as usize, info.n_out as usize, &steps);
        assert_eq!(got, run_core(&bytes, &steps));
        seen += 1;
    }
    assert!(seen >= 10);
}

#[test]
fn null_pointers_and_bad_lengths_get_status_codes() {
    let model = random_model(1, WeightKind::I8);
    let (_, info) = check(&model);
    let mut i = lsnn_model_info::default();
    unsafe {
        assert_eq!(lsnn_model_check(null(), 10, &mut i), LSNN_ERR_NULL_POINTER);
        assert_eq!(
            lsnn_model_check(model.as_ptr(), model.len(), null_mut()),
            LSNN_ERR_NULL_POINTER
        );
        assert_eq!(
            lsnn_model_check(model.as_ptr(), usize::MAX, &mut i),
            LSNN_ERR_LENGTH
        );
        assert_eq!(i, lsnn_model_info::default(), "not written on failure");
        let mut mem = memory(info.net_bytes);
        let (m, len) = (mem.as_mut_ptr().cast::<u8>(), info.net_bytes);
        let mut net = null_mut();
        assert_eq!(
            lsnn_net_init(null(), 5, m.cast(), len, &mut net),
            LSNN_ERR_NULL_POINTER
        );
        assert_eq!(
            lsnn_net_init(model.as_ptr(), model.len(), null_mut(), len, &mut net),
            LSNN_ERR_NULL_POINTER
        );
        assert_eq!(
            lsnn_net_init(model.as_ptr(), model.len(), m.cast(), len, null_mut()),
            LSNN_ERR_NULL_POINTER
        );
        assert_eq!(
            lsnn_net_init(model.as_ptr(), model.len(), m.add(4).cast(), len, &mut net),
            LSNN_ERR_ALIGNMENT
        );
        assert_eq!(
            lsnn_net_init(model.as_ptr(), model.len(), m.cast(), len - 1, &mut net),
            LSNN_ERR_MEMORY_TOO_SMALL
        );
        assert!(net.is_null(), "not written on failure");
        assert_eq!(lsnn_net_reset(null_mut()), LSNN_ERR_NULL_POINTER);
        assert_eq!(
            lsnn_net_step(null_mut(), null(), 0, null_mut()),
            LSNN_ERR_NULL_POINTER
        );
        let mut count = 0usize;
        assert_eq!(
            lsnn_net_spikes(null(), null_mut(), 0, &mut count),
            LSNN_ERR_NULL_POINTER
        );
        let mut y = [0.0f32; 3];
        assert_eq!(
            lsnn_net_outputs(null(), y.as_mut_ptr(), 3),
            LSNN_ERR_NULL_POINTER
        );
    }
}

#[test]
fn memory_that_overlaps_the_model_is_refused() {
    let model = random_model(2, WeightKind::F32);
    let (_, info) = check(&model);
    let mut buf = memory(model.len() + info.net_bytes + 64);
    let base = buf.as_mut_ptr().cast::<u8>();
    unsafe {
        std::ptr::copy_nonoverlapping(model.as_ptr(), base, model.len());
        let model_in = std::slice::from_raw_parts(base, model.len());
        // Memory starting inside the model.
        let inside = base.add(model.len().next_multiple_of(8) - 8);
        let (s, _) = try_init(model_in, inside, info.net_bytes);
        assert_eq!(s, LSNN_ERR_MEMORY_OVERLAP);
        // Right after it: fine.
        let after = base.add(model.len().next_multiple_of(8));
        let (s, _) = try_init(model_in, after, info.net_bytes);
        assert_eq!(s, LSNN_OK);
    }
}

#[test]
fn damaged_models_are_refused_with_a_reason() {
    let model = random_model(3, WeightKind::I16);
    let mut rng = Lcg(5);
    let mut codes = std::collections::BTreeSet::new();
    for len in 0..model.len() {
        let (s, _) = check(&model[..len]);
        assert!(s >= LSNN_ERR_MODEL_MAGIC, "prefix of {len} bytes: {s}");
        codes.insert(s);
    }
    for _ in 0..2000 {
        let mut bad = model.clone();
        let at = rng.next() as usize % bad.len();
        bad[at] ^= 1 << (rng.next() % 8);
        let (s, _) = check(&bad);
        assert_ne!(s, LSNN_OK, "flipped byte {at}");
        let mut mem = memory(64 << 10);
        let (s2, _) = try_init(&bad, mem.as_mut_ptr().cast(), 64 << 10);
        assert_eq!(s2, s);
        codes.insert(s);
    }
    assert!(codes.contains(&LSNN_ERR_MODEL_MAGIC) && codes.contains(&LSNN_ERR_MODEL_CHECKSUM));
    // The details, cut to the buffer and always NUL-terminated.
    let mut bad = model.clone();
    bad[20] ^= 0xff;
    for text_len in [1usize, 2, 7, 200] {
        let mut text = vec![0x55u8 as std::ffi::c_char; text_len];
        let s = unsafe { lsnn_model_error(bad.as_ptr(), bad.len(), text.as_mut_ptr(), text_len) };
        assert_eq!(s, LSNN_ERR_MODEL_CHECKSUM);
        let t = unsafe { CStr::from_ptr(text.as_ptr()) }.to_str().unwrap();
        assert!(t.len() < text_len);
        if text_len == 200 {
            assert!(t.starts_with("model checksum mismatch: stored"), "{t}");
        }
    }
    let mut text = [0 as std::ffi::c_char; 16];
    let s = unsafe { lsnn_model_error(model.as_ptr(), model.len(), text.as_mut_ptr(), 16) };
    assert_eq!(s, LSNN_OK);
    assert_eq!(
        unsafe { CStr::from_ptr(text.as_ptr()) }.to_str().unwrap(),
        "ok"
    );
    assert_eq!(
        unsafe { lsnn_model_error(model.as_ptr(), model.len(), null_mut(), 4) },
        LSNN_ERR_NULL_POINTER
    );
}

#[test]
fn pointers_that_are_not_networks_are_refused() {
    let model = random_model(1, WeightKind::F32);
    let (_, info) = check(&model);
    let mut zeroed = memory(info.net_bytes);
    let fake = zeroed.as_mut_ptr().cast::<lsnn_net>();
    unsafe {
        assert_eq!(lsnn_net_reset(fake), LSNN_ERR_NOT_A_NET);
        assert_eq!(
            lsnn_net_reset(fake.cast::<u8>().add(1).cast()),
            LSNN_ERR_ALIGNMENT
        );
    }
    // A network copied elsewhere would point into the old block: refused.
    let mut mem = memory(info.net_bytes);
    let net = init(&model, &mut mem);
    let mut copy = mem.clone();
    let moved = copy.as_mut_ptr().cast::<lsnn_net>();
    let ch = [0u32];
    unsafe {
        assert_eq!(
            lsnn_net_step(moved, ch.as_ptr(), 1, null_mut()),
            LSNN_ERR_NOT_A_NET
        );
        assert_eq!(lsnn_net_step(net, ch.as_ptr(), 1, null_mut()), LSNN_OK);
    }
}

#[test]
fn bad_steps_are_refused_before_anything_changes() {
    let model = random_model(2, WeightKind::I8);
    let (_, info) = check(&model);
    let mut mem = memory(info.net_bytes);
    let net = init(&model, &mut mem);
    let steps = random_steps(3, 12, 40);
    let mut k = 0u32;
    unsafe {
        for bad in [&[3u32, 2][..], &[4, 4], &[0, 12], &[u32::MAX]] {
            let s = lsnn_net_step(net, bad.as_ptr(), bad.len(), &mut k);
            let want = if bad.windows(2).any(|w| w[0] >= w[1]) {
                LSNN_ERR_INPUT_ORDER
            } else {
                LSNN_ERR_INPUT_CHANNEL
            };
            assert_eq!(s, want, "{bad:?}");
        }
        assert_eq!(lsnn_net_step(net, null(), 2, &mut k), LSNN_ERR_NULL_POINTER);
        let odd = [0u32; 2].as_ptr().cast::<u8>().add(1).cast::<u32>();
        assert_eq!(lsnn_net_step(net, odd, 1, &mut k), LSNN_ERR_ALIGNMENT);
        assert_eq!(
            lsnn_net_step(net, null(), 0, null_mut()),
            LSNN_OK,
            "an empty step"
        );
        assert_eq!(lsnn_net_reset(net), LSNN_OK);
    }
    // The rejected steps left no trace: the run equals the core's from the zero state.
    let rejected_first = run_capi(net, 24, 3, &steps);
    assert_eq!(rejected_first, run_core(&model, &steps));
}

#[test]
fn short_output_buffers_are_refused() {
    let model = random_model(1, WeightKind::F32);
    let (_, info) = check(&model);
    let mut mem = memory(info.net_bytes);
    let net = init(&model, &mut mem);
    let all: Vec<u32> = (0..12).collect();
    let mut spiked = 0u32;
    while spiked < 2 {
        assert_eq!(
            unsafe { lsnn_net_step(net, all.as_ptr(), all.len(), &mut spiked) },
            LSNN_OK
        );
    }
    let mut count = 0usize;
    let mut one = [u32::MAX; 1];
    unsafe {
        assert_eq!(
            lsnn_net_spikes(net, null_mut(), 0, &mut count),
            LSNN_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(count, spiked as usize, "the count, with no buffer");
        assert_eq!(
            lsnn_net_spikes(net, one.as_mut_ptr(), 1, &mut count),
            LSNN_ERR_BUFFER_TOO_SMALL
        );
        assert_ne!(one[0], u32::MAX, "the first spike, written");
        assert_eq!(
            lsnn_net_spikes(net, one.as_mut_ptr(), 1, null_mut()),
            LSNN_ERR_NULL_POINTER
        );
        assert_eq!(
            lsnn_net_spikes(net, null_mut(), 1, &mut count),
            LSNN_ERR_NULL_POINTER
        );
        let mut y = [0.0f32; 3];
        assert_eq!(
            lsnn_net_outputs(net, y.as_mut_ptr(), 2),
            LSNN_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(lsnn_net_outputs(net, null_mut(), 3), LSNN_ERR_NULL_POINTER);
        assert_eq!(lsnn_net_outputs(net, y.as_mut_ptr(), 3), LSNN_OK);
        assert!(y.iter().any(|&v| v != 0.0));
    }
}

#[test]
fn every_status_has_a_message() {
    let known = (0..=9).chain(20..=30);
    let unknown = message(-1);
    assert!(unknown.contains("unknown"));
    let mut seen = std::collections::BTreeSet::new();
    for s in known {
        let m = message(s);
        assert!(!m.is_empty() && m != unknown, "{s}");
        assert!(seen.insert(m), "{s}: duplicate message");
    }
    for s in [i32::MIN, -5, 10, 19, 31, 1000, i32::MAX] {
        assert_eq!(message(s), unknown);
    }
}
