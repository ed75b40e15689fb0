//! The input-sequence format: round trips, robustness against arbitrary bytes, and the
//! sequence driver shared by the firmware and the host.

use lsnn_core::model::checksum;
use lsnn_core::sequence::{
    encode_sequences, run_sequence, spike_events, window_class, write_result_line, Observation,
    Sequences, WindowMeans,
};
use lsnn_core::{CellConfig, Model};
use lsnn_core::{CellState, CoreError, CsrRef, ModelParts, Neuron, WeightKind};
use proptest::prelude::*;

type Seqs = Vec<Vec<Vec<u8>>>;

fn seqs_strategy() -> impl Strategy<Value = (usize, usize, usize, Seqs)> {
    (1usize..20, 1usize..5, 1usize..4, 0usize..4).prop_flat_map(|(n_in, windows, per, b)| {
        let steps = windows * per;
        let step = prop::collection::btree_set(0..n_in as u8, 0..n_in.min(6))
            .prop_map(|s| s.into_iter().collect::<Vec<u8>>());
        let seq = prop::collection::vec(step, steps);
        (
            Just(n_in),
            Just(steps),
            Just(windows),
            prop::collection::vec(seq, b),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 512 }))]

    #[test]
    fn round_trip((n_in, steps, windows, seqs) in seqs_strategy()) {
        let bytes = encode_sequences(n_in, steps, windows, &seqs).unwrap();
        let parsed = Sequences::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.len(), seqs.len());
        prop_assert_eq!(parsed.n_in(), n_in);
        prop_assert_eq!(parsed.n_steps(), steps);
        prop_assert_eq!(parsed.n_windows(), windows);
        for (s, seq) in seqs.iter().enumerate() {
            let got: Vec<Vec<u8>> = parsed.steps(s).map(<[u8]>::to_vec).collect();
            prop_assert_eq!(&got, seq);
        }
        prop_assert_eq!(parsed.steps(seqs.len()).count(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(s) = Sequences::parse(&bytes) {
            for k in 0..s.len() {
                let _ = s.steps(k).count();
            }
        }
    }

    #[test]
    fn resealed_mutations_never_panic(
        (n_in, steps, windows, seqs) in seqs_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
    ) {
        let mut bytes = encode_sequences(n_in, steps, windows, &seqs).unwrap();
        let body = bytes.len() - 4;
        for (i, b) in &flips {
            let at = i.index(body);
            bytes[at] = *b;
        }
        let crc = checksum(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
        if let Ok(s) = Sequences::parse(&bytes) {
            for k in 0..s.len() {
                prop_assert_eq!(s.steps(k).count(), s.n_steps());
            }
        }
    }
}

#[test]
fn rejects_bad_sequences() {
    let ok = encode_sequences(3, 4, 2, &[vec![vec![0, 2], vec![], vec![1], vec![]]]).unwrap();
    assert!(Sequences::parse(&ok).is_ok());
    assert!(encode_sequences(3, 4, 3, &[]).is_err()); // windows do not divide the steps
    assert!(encode_sequences(0, 4, 2, &[]).is_err());
    assert!(encode_sequences(300, 4, 2, &[]).is_err());
    assert!(encode_sequences(3, 4, 2, &[vec![vec![]; 3]]).is_err());
    assert!(encode_sequences(3, 1, 1, &[vec![vec![3]]]).is_err()); // channel >= n_in
    let reseal = |b: &mut Vec<u8>| {
        let n = b.len() - 4;
        let crc = checksum(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
    };
    let table = 28;
    let first = table + 8;
    for (at, value) in [(first + 1, 2u8), (first, 9), (0, b'X'), (8, 2)] {
        let mut b = ok.clone();
        b[at] = value;
        reseal(&mut b);
        assert!(
            matches!(Sequences::parse(&b), Err(CoreError::Format { .. })),
            "byte {at}"
        );
    }
    let mut b = ok.clone();
    b[first + 5] ^= 1;
    assert!(Sequences::parse(&b).is_err()); // checksum
    assert!(Sequences::parse(&ok[..ok.len() - 1]).is_err());
}

#[test]
fn window_means_and_result_lines() {
    let mut w = WindowMeans::new(vec![0.0f32; 2], 2).unwrap();
    assert_eq!(w.push(&[1.0, 4.0]).unwrap(), None);
    assert_eq!(w.push(&[3.0, 0.0]).unwrap(), Some(&[2.0f32, 2.0][..]));
    assert_eq!(window_class(&[2.0, 2.0]), 0);
    assert_eq!(w.push(&[0.0, 1.0]).unwrap(), None);
    assert_eq!(w.push(&[0.0, 1.0]).unwrap(), Some(&[0.0f32, 1.0][..]));
    assert!(w.push(&[0.0]).is_err());
    assert!(WindowMeans::new(vec![0.0f32; 2], 0).is_err());
    let mut line = String::new();
    write_result_line(&mut line, 3, 17, [1, 0, 2]).unwrap();
    assert_eq!(line, "seq 3 spikes 17 pred 1 0 2");
    // The spike count is printed without 64-bit division, exactly as `{}` would.
    let mut counts = vec![
        0u64,
        1,
        9,
        10,
        99,
        100,
        4_294_967_295,
        4_294_967_296,
        u64::MAX,
    ];
    counts.extend((0..64).map(|k| 1u64 << k));
    counts.extend((1..20).map(|k| 10u64.pow(k) - 1));
    counts.extend((1..20).map(|k| 10u64.pow(k)));
    for c in counts {
        let mut line = String::new();
        write_result_line(&mut line, 0, c, []).unwrap();
        assert_eq!(line, format!("seq 0 spikes {c} pred"));
    }
}

/// A two-neuron network driven by one input; the driver reports every step and window.
#[test]
fn run_sequence_reports_steps_windows_and_spikes() {
    let config = CellConfig {
        n_delay: 2,
        n_refractory: 1,
        ..CellConfig::new()
    };
    let w_in = CsrRef::new(2, &[0, 2], &[0, 1], &[0, 1], &[0.5, 0.8]).unwrap();
    let w_rec = CsrRef::new(2, &[0, 1, 1], &[1], &[0], &[0.3]).unwrap();
    for kind in [WeightKind::F32, WeightKind::I16, WeightKind::I8] {
        let parts = ModelParts {
            config,
            tau: &[20.0, 20.0],
            thr: &[0.01, 0.02],
            beta: &[0.0, 1.0],
            w_in,
            w_rec,
            w_out: &[1.0, -1.0, -1.0, 1.0],
            b_out: None,
            tau_out: 20.0,
            weights: kind,
        };
        let bytes = parts.to_vec().unwrap();
        let model = Model::parse(&bytes).unwrap();
        let mut neurons = vec![Neuron::default(); 2];
        model.neurons_into(&mut neurons).unwrap();
        let readout = model.readout().unwrap();
        let seqs = encode_sequences(
            1,
            6,
            3,
            &[vec![vec![0], vec![0], vec![], vec![0], vec![], vec![]]],
        )
        .unwrap();
        let seqs = Sequences::parse(&seqs).unwrap();
        let (mut filtered, mut out) = ([0.0f32; 2], [0.0f32; 2]);
        let mut windows = WindowMeans::new([0.0f32; 2], seqs.window_len()).unwrap();
        let mut log = vec![];
        let mut spikes_seen = 0u64;
        let mut observe = |o: Observation<'_>| match o {
            Observation::Start(t) => log.push(format!("start {t}")),
            Observation::Stepped { z, .. } => {
                spikes_seen += z.iter().filter(|&&x| x != 0.0).count() as u64
            }
            Observation::Window { index, means } => {
                log.push(format!("window {index} {}", window_class(means)))
            }
            Observation::Done => log.push("done".into()),
        };
        let spikes = if kind == WeightKind::F32 {
            let cell = model.cell(&neurons).unwrap();
            let mut state = cell.state_in(vec![0.0; 10], vec![0; 2]).unwrap();
            run_sequence(
                &cell,
                &readout,
                &mut state,
                &mut filtered,
                &mut out,
                &mut windows,
                seqs.steps(0).map(spike_events),
                &mut observe,
            )
            .unwrap()
        } else {
            let cell = model.integer_cell(&neurons).unwrap();
            let mut state =
                CellState::with_i32_ring(vec![0.0; 6], vec![0; 2], vec![0; 4], 2, 2).unwrap();
            run_sequence(
                &cell,
                &readout,
                &mut state,
                &mut filtered,
                &mut out,
                &mut windows,
                seqs.steps(0).map(spike_events),
                &mut observe,
            )
            .unwrap()
        };
        assert_eq!(spikes, spikes_seen);
        assert!(spikes > 0, "{kind:?}");
        let starts = log.iter().filter(|l| l.starts_with("start")).count();
        let windows_seen = log.iter().filter(|l| l.starts_with("window")).count();
        assert_eq!((starts, windows_seen), (6, 3));
        assert_eq!(log.last().map(String::as_str), Some("done"));
    }
}
