//! The store-recall task of the LSNN tutorial (`tutorial_storerecall_with_LSNN.py` and
//! `tutorial_storerecall_utils.py` of the original), reproduced distribution for distribution.
//!
//! A sequence has `seq_len` characters of `tau_char` steps (1 ms each). A character is a value
//! (`0..n_charac`), the store symbol (`n_charac`) or the recall symbol (`n_charac + 1`). At a
//! recall the network must answer the value that followed the last store.
//!
//! Generation, as in the original:
//! 1. Symbols (per sequence, by rejection until [`validity_test`] accepts): every character starts
//!    as a uniform value in `0..2`; walking through the characters with a state that starts at
//!    "waiting for a store", each character becomes a store with probability
//!    `p = 1 / (1 + seq_delay)` while waiting for a store (the state flips to "waiting for a
//!    recall"), or a recall with probability `p` while waiting for a recall (the state flips
//!    back). One uniform draw per character.
//!
//!    (The original keeps the state across rejected attempts of one sequence. An attempt that
//!    starts "waiting for a recall" is always rejected, since its first signal would be a recall
//!    before any store, so restarting each attempt from "waiting for a store", as done here, accepts
//!    the same distribution of sequences.)
//! 2. Targets: a copy of the symbols where each recall is replaced by the value that follows the
//!    last store before it (store and recall characters keep their own symbol elsewhere).
//! 3. Input groups: the `n_in` input neurons are split as `numpy.array_split(n_in, 4)` (the first
//!    `n_in % 4` groups one neuron larger) into value 0, value 1, store and recall. A group is
//!    active during a character showing its symbol; at a store the value groups also show the
//!    value of the following character, and then, with probability 0.5 (one draw per store), the
//!    value shown at that following character is inverted (a distractor; the target is unchanged).
//! 4. Spikes: every neuron of an active group fires at each step with probability
//!    `f0_hz / 1000` independently (the original's `rate > uniform` per step and neuron); here
//!    drawn as geometric gaps between spikes, which is the same distribution at a cost
//!    proportional to the number of spikes. Inactive groups are silent.

use std::ops::Range;

use ndarray::{Array2, Array3, ArrayView3, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::TaskError;
use crate::input::{Event, InputBatch};

/// The task's name in error messages.
pub const TASK: &str = "store-recall";

/// Probability that the value shown after a store is inverted (the original's distractor).
pub const DISTRACTOR_PROB: f64 = 0.5;

/// How many rejected attempts [`generate`] allows for one sequence before giving up.
pub const MAX_ATTEMPTS: usize = 100_000;

/// Number of input groups: value 0, value 1, store, recall.
pub const N_GROUPS: usize = 4;

/// Parameters of the store-recall task (the tutorial's flags of the same names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreRecallParams {
    /// Number of value symbols; the original supports only 2.
    pub n_charac: usize,
    /// Number of input neurons, split into 4 groups.
    pub n_in: usize,
    /// Firing rate of an active input neuron in Hz (the tutorial's `f0`, 50).
    pub f0_hz: f64,
    /// Characters per sequence (12).
    pub seq_len: usize,
    /// Expected delay in characters between store and recall (6): store and recall each appear
    /// with probability `1 / (1 + seq_delay)`.
    pub seq_delay: usize,
    /// Steps (ms) per character (200).
    pub tau_char: usize,
}

impl Default for StoreRecallParams {
    /// The tutorial's defaults.
    fn default() -> Self {
        StoreRecallParams {
            n_charac: 2,
            n_in: 100,
            f0_hz: 50.0,
            seq_len: 12,
            seq_delay: 6,
            tau_char: 200,
        }
    }
}

fn invalid(name: &'static str, message: String) -> TaskError {
    TaskError::InvalidParam {
        task: TASK,
        name,
        message,
    }
}

impl StoreRecallParams {
    /// Checks the parameters; each error names the parameter and its allowed range.
    pub fn validate(&self) -> Result<(), TaskError> {
        if self.n_charac != 2 {
            return Err(invalid(
                "n_charac",
                format!(
                    "{} is not supported: the original generator is implemented for 2 value \
                     symbols only",
                    self.n_charac
                ),
            ));
        }
        if self.n_in < N_GROUPS {
            return Err(invalid(
                "n_in",
                format!(
                    "{} is too small: the 4 input groups (value 0, value 1, store, recall) need \
                     at least one neuron each",
                    self.n_in
                ),
            ));
        }
        if self.n_in > usize::from(u16::MAX) + 1 {
            return Err(invalid(
                "n_in",
                format!("{} is above the 65536 input channels supported", self.n_in),
            ));
        }
        if !(self.f0_hz.is_finite() && (0.0..=1000.0).contains(&self.f0_hz)) {
            return Err(invalid(
                "f0_hz",
                format!(
                    "{} must be in [0, 1000] Hz (a spike probability per 1 ms step in [0, 1])",
                    self.f0_hz
                ),
            ));
        }
        if self.tau_char == 0 {
            return Err(invalid(
                "tau_char",
                "0: a character must last at least 1 step".to_string(),
            ));
        }
        if self.seq_delay == 0 {
            return Err(invalid(
                "seq_delay",
                "0 gives store/recall probability 1, which the original rejects (no valid \
                 sequence: a recall would follow every store at once)"
                    .to_string(),
            ));
        }
        if self
            .seq_delay
            .checked_add(4)
            .is_none_or(|m| m >= self.seq_len)
        {
            return Err(invalid(
                "seq_len",
                format!(
                    "{} must exceed seq_delay + 4 = {} (the original asserts \
                     2 + 1 + seq_delay + 1 < seq_len)",
                    self.seq_len,
                    self.seq_delay.saturating_add(4)
                ),
            ));
        }
        if self
            .seq_len
            .checked_mul(self.tau_char)
            .is_none_or(|t| t > u32::MAX as usize)
        {
            return Err(invalid(
                "tau_char",
                format!(
                    "seq_len * tau_char = {} * {} steps is above the 2^32 - 1 supported",
                    self.seq_len, self.tau_char
                ),
            ));
        }
        Ok(())
    }

    /// Steps per sequence: `seq_len * tau_char`.
    pub fn n_steps(&self) -> usize {
        self.seq_len * self.tau_char
    }

    /// The store symbol, `n_charac`.
    pub fn store_symbol(&self) -> u8 {
        self.n_charac as u8
    }

    /// The recall symbol, `n_charac + 1`.
    pub fn recall_symbol(&self) -> u8 {
        self.n_charac as u8 + 1
    }

    /// Probability of a store (or recall) per character: `1 / (1 + seq_delay)`.
    pub fn signal_prob(&self) -> f64 {
        1.0 / (1.0 + self.seq_delay as f64)
    }

    /// Spike probability of an active input neuron per 1 ms step: `f0_hz / 1000`.
    pub fn spike_prob(&self) -> f64 {
        self.f0_hz / 1000.0
    }

    /// The channels of the 4 input groups (value 0, value 1, store, recall), as
    /// `numpy.array_split(arange(n_in), 4)`.
    pub fn input_groups(&self) -> [Range<usize>; N_GROUPS] {
        input_groups(self.n_in)
    }
}

/// `numpy.array_split(arange(n), 4)` as ranges: the first `n % 4` groups have one more element.
pub fn input_groups(n: usize) -> [Range<usize>; N_GROUPS] {
    let base = n / N_GROUPS;
    let rem = n % N_GROUPS;
    std::array::from_fn(|g| {
        let start = g * base + g.min(rem);
        start..start + base + usize::from(g < rem)
    })
}

/// One generated batch.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreRecallBatch {
    /// The parameters it was generated with.
    pub params: StoreRecallParams,
    /// Input spikes, `[B, seq_len * tau_char, n_in]` as events.
    pub input: InputBatch,
    /// Symbols `[B, seq_len]`: values `0..n_charac`, `n_charac` = store, `n_charac + 1` = recall.
    pub input_nums: Array2<u8>,
    /// Targets `[B, seq_len]`: the symbols, with each recall replaced by the value stored at the
    /// previous store (as the original's `target_nums`; only recall positions are scored).
    pub target_nums: Array2<u8>,
    /// `[B, seq_len]`: `input_nums == recall`.
    pub recall_mask: Array2<bool>,
    /// `[B, seq_len]`: true at the value character after a store whose shown value was inverted.
    pub distractor: Array2<bool>,
    /// `[B, seq_len, 4]`: which input groups (value 0, value 1, store, recall) are active.
    pub gates: Array3<bool>,
}

impl StoreRecallBatch {
    /// Number of elements B.
    pub fn batch_size(&self) -> usize {
        self.input_nums.nrows()
    }

    /// Number of recall characters in the batch (the denominator of [`recall_error`]).
    pub fn n_recalls(&self) -> usize {
        self.recall_mask.iter().filter(|&&r| r).count()
    }
}

/// The original's validity rules for a symbol sequence:
/// at least one recall, one store and one value; the first store comes before the first recall
/// and the last recall after the last store; every store is followed by a value (so it is not
/// the last character); between two consecutive recalls there is a store, and between two
/// consecutive stores a recall.
pub fn validity_test(seq: &[u8], recall_char: u8, store_char: u8) -> bool {
    let stores: Vec<usize> = positions(seq, store_char);
    let recalls: Vec<usize> = positions(seq, recall_char);
    let (Some(&first_store), Some(&first_recall)) = (stores.first(), recalls.first()) else {
        return false;
    };
    if !seq.iter().any(|&s| s < store_char) {
        return false;
    }
    if first_recall < first_store {
        return false;
    }
    if recalls.last() < stores.last() {
        return false;
    }
    let is_value = |t: usize| {
        seq.get(t)
            .is_some_and(|&s| s != recall_char && s != store_char)
    };
    if stores.iter().any(|&t| !is_value(t + 1)) {
        return false;
    }
    let any_between = |list: &[usize], a: usize, b: usize| list.iter().any(|&x| a < x && x < b);
    if recalls
        .windows(2)
        .any(|w| !any_between(&stores, w[0], w[1]))
    {
        return false;
    }
    if stores
        .windows(2)
        .any(|w| !any_between(&recalls, w[0], w[1]))
    {
        return false;
    }
    true
}

fn positions(seq: &[u8], symbol: u8) -> Vec<usize> {
    seq.iter()
        .enumerate()
        .filter(|(_, &s)| s == symbol)
        .map(|(t, _)| t)
        .collect()
}

/// Draws one valid symbol sequence (step 1 of the module doc), giving up after `max_attempts`.
fn sample_sequence<R: Rng + ?Sized>(
    rng: &mut R,
    p: &StoreRecallParams,
    max_attempts: usize,
) -> Result<Vec<u8>, TaskError> {
    let (store, recall) = (p.store_symbol(), p.recall_symbol());
    let prob = p.signal_prob();
    let mut seq = vec![0u8; p.seq_len];
    for _ in 0..max_attempts {
        for s in seq.iter_mut() {
            *s = rng.gen_range(0..p.n_charac as u8);
        }
        let mut waiting_for_store = true;
        for s in seq.iter_mut() {
            if rng.gen::<f64>() < prob {
                *s = if waiting_for_store { store } else { recall };
                waiting_for_store = !waiting_for_store;
            }
        }
        if validity_test(&seq, recall, store) {
            return Ok(seq);
        }
    }
    Err(TaskError::TooManyRejections {
        task: TASK,
        attempts: max_attempts,
    })
}

/// Appends the spikes of one neuron active over `steps`: each step spikes with probability
/// `prob` independently, drawn as geometric gaps.
fn push_bernoulli_spikes<R: Rng + ?Sized>(
    rng: &mut R,
    prob: f64,
    steps: Range<usize>,
    channel: u16,
    events: &mut Vec<Event>,
) {
    let spike = |t: usize| Event {
        t: t as u32,
        channel,
        value: 1.0,
    };
    if prob <= 0.0 {
        return;
    }
    if prob >= 1.0 {
        events.extend(steps.map(spike));
        return;
    }
    // Number of failures before the next success: floor(ln(u) / ln(1 - prob)) with u uniform
    // on (0, 1], so that P(gap >= k) = (1 - prob)^k.
    let log_q = (-prob).ln_1p();
    let mut t = steps.start;
    while t < steps.end {
        let u = 1.0 - rng.gen::<f64>();
        let gap = (u.ln() / log_q).floor();
        if gap >= (steps.end - t) as f64 {
            break;
        }
        t += gap as usize;
        events.push(spike(t));
        t += 1;
    }
}

/// Generates a batch of `batch_size` sequences.
pub fn generate<R: Rng + ?Sized>(
    rng: &mut R,
    batch_size: usize,
    p: &StoreRecallParams,
) -> Result<StoreRecallBatch, TaskError> {
    generate_with_max_attempts(rng, batch_size, p, MAX_ATTEMPTS)
}

fn generate_with_max_attempts<R: Rng + ?Sized>(
    rng: &mut R,
    batch_size: usize,
    p: &StoreRecallParams,
    max_attempts: usize,
) -> Result<StoreRecallBatch, TaskError> {
    p.validate()?;
    let (len, tau) = (p.seq_len, p.tau_char);
    let (store, recall) = (p.store_symbol(), p.recall_symbol());
    let groups = p.input_groups();
    let spike_prob = p.spike_prob();

    let mut input = InputBatch::new(p.n_steps(), p.n_in);
    let mut input_nums = Array2::zeros((batch_size, len));
    let mut target_nums = Array2::zeros((batch_size, len));
    let mut recall_mask = Array2::from_elem((batch_size, len), false);
    let mut distractor = Array2::from_elem((batch_size, len), false);
    let mut gates = Array3::from_elem((batch_size, len, N_GROUPS), false);
    let mut events = Vec::new();

    for b in 0..batch_size {
        let seq = sample_sequence(rng, p, max_attempts)?;

        let mut stored = None;
        for (c, &s) in seq.iter().enumerate() {
            input_nums[[b, c]] = s;
            if s == store {
                stored = Some(seq[c + 1]); // a value follows every store (validity)
            }
            target_nums[[b, c]] = if s == recall {
                stored.expect("a store precedes every recall (validity)")
            } else {
                s
            };
            recall_mask[[b, c]] = s == recall;
            gates[[b, c, usize::from(s)]] = true;
        }
        // A store also shows the following value, which is then inverted with p = 0.5.
        for c in 0..len {
            if seq[c] == store {
                let next = usize::from(seq[c + 1]);
                gates[[b, c, next]] = true;
                if rng.gen::<f64>() < DISTRACTOR_PROB {
                    distractor[[b, c + 1]] = true;
                    gates[[b, c + 1, next]] = false;
                    gates[[b, c + 1, 1 - next]] = true;
                }
            }
        }

        events.clear();
        for c in 0..len {
            for (g, group) in groups.iter().enumerate() {
                if gates[[b, c, g]] {
                    for n in group.clone() {
                        push_bernoulli_spikes(
                            rng,
                            spike_prob,
                            c * tau..(c + 1) * tau,
                            n as u16,
                            &mut events,
                        );
                    }
                }
            }
        }
        input
            .push_element(&mut events)
            .expect("events lie inside n_steps x n_in by construction");
    }

    Ok(StoreRecallBatch {
        params: p.clone(),
        input,
        input_nums,
        target_nums,
        recall_mask,
        distractor,
        gates,
    })
}

/// Fraction of recall characters whose predicted value (argmax of `char_logits`, the first
/// maximum on ties) differs from the target: the original's `recall_errors`. `char_logits` is
/// `[B, seq_len, n_charac]` (the readout downsampled to one value per character); a row with a
/// NaN counts as wrong. A batch without recall characters gives NaN (the mean of nothing), as in
/// the original.
pub fn recall_error(
    char_logits: ArrayView3<f32>,
    batch: &StoreRecallBatch,
) -> Result<f64, TaskError> {
    let (n_batch, len) = batch.input_nums.dim();
    let expected = [n_batch, len, batch.params.n_charac];
    if char_logits.shape() != expected {
        return Err(TaskError::Shape {
            task: TASK,
            what: "char_logits",
            got: char_logits.shape().to_vec(),
            expected: expected.to_vec(),
        });
    }
    let mut n_recalls = 0usize;
    let mut n_wrong = 0usize;
    for ((b, c), _) in batch.recall_mask.indexed_iter().filter(|(_, &r)| r) {
        n_recalls += 1;
        let row = char_logits
            .index_axis_move(Axis(0), b)
            .index_axis_move(Axis(0), c);
        let wrong = if row.iter().any(|v| v.is_nan()) {
            true
        } else {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = k;
                }
            }
            best != usize::from(batch.target_nums[[b, c]])
        };
        n_wrong += usize::from(wrong);
    }
    Ok(if n_recalls == 0 {
        f64::NAN
    } else {
        n_wrong as f64 / n_recalls as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const S: u8 = 2;
    const R: u8 = 3;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn validity_rules_match_the_original_on_hand_made_sequences() {
        let valid: &[&[u8]] = &[
            &[S, 0, R],
            &[S, 1, 0, R, 1],
            &[0, S, 1, 0, R, 1, S, 0, 0, R, 0],
            &[1, 1, S, 0, 1, 1, 1, R],
        ];
        for seq in valid {
            assert!(validity_test(seq, R, S), "{seq:?} should be valid");
        }
        let invalid: &[(&[u8], &str)] = &[
            (&[], "empty"),
            (&[0, 1, 0], "no signal"),
            (&[S, 0, 1], "no recall"),
            (&[0, R, 1], "no store"),
            (&[R, S, 0, R], "first recall before first store"),
            (&[S, 0, R, 1, S], "store last"),
            (&[S, 0, R, S, 1], "last store after last recall"),
            (&[S, R, 0], "store followed by recall"),
            (&[S, S, 0, R], "store followed by store"),
            (&[S, 0, R, 1, R], "two recalls without a store between"),
            (&[S, 0, S, 1, R], "two stores without a recall between"),
        ];
        for (seq, why) in invalid {
            assert!(
                !validity_test(seq, R, S),
                "{seq:?} should be invalid: {why}"
            );
        }
    }

    #[test]
    fn input_groups_follow_numpy_array_split() {
        assert_eq!(input_groups(100), [0..25, 25..50, 50..75, 75..100]);
        assert_eq!(input_groups(10), [0..3, 3..6, 6..8, 8..10]);
        assert_eq!(input_groups(4), [0..1, 1..2, 2..3, 3..4]);
    }

    #[test]
    fn validate_rejects_each_bad_parameter_with_its_name() {
        let ok = StoreRecallParams::default();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.n_steps(), 2400);
        let cases: Vec<(StoreRecallParams, &str)> = vec![
            (
                StoreRecallParams {
                    n_charac: 3,
                    ..ok.clone()
                },
                "n_charac",
            ),
            (
                StoreRecallParams {
                    n_in: 3,
                    ..ok.clone()
                },
                "n_in",
            ),
            (
                StoreRecallParams {
                    n_in: 70_000,
                    ..ok.clone()
                },
                "n_in",
            ),
            (
                StoreRecallParams {
                    f0_hz: -1.0,
                    ..ok.clone()
                },
                "f0_hz",
            ),
            (
                StoreRecallParams {
                    f0_hz: 1000.5,
                    ..ok.clone()
                },
                "f0_hz",
            ),
            (
                StoreRecallParams {
                    f0_hz: f64::NAN,
                    ..ok.clone()
                },
                "f0_hz",
            ),
            (
                StoreRecallParams {
                    tau_char: 0,
                    ..ok.clone()
                },
                "tau_char",
            ),
            (
                StoreRecallParams {
                    seq_delay: 0,
                    ..ok.clone()
                },
                "seq_delay",
            ),
            (
                StoreRecallParams {
                    seq_len: 10,
                    ..ok.clone()
                },
                "seq_len",
            ),
            (
                StoreRecallParams {
                    seq_delay: usize::MAX,
                    ..ok.clone()
                },
                "seq_len",
            ),
            (
                StoreRecallParams {
                    tau_char: usize::MAX / 2,
                    ..ok.clone()
                },
                "tau_char",
            ),
        ];
        for (p, name) in cases {
            match p.validate() {
                Err(TaskError::InvalidParam {
                    name: got, message, ..
                }) => {
                    assert_eq!(got, name, "{p:?}: {message}");
                    assert!(!message.is_empty());
                }
                other => panic!("{p:?}: expected an error on {name}, got {other:?}"),
            }
            assert!(generate(&mut rng(0), 1, &p).is_err());
        }
        // The smallest seq_len allowed.
        let short = StoreRecallParams { seq_len: 11, ..ok };
        assert_eq!(short.validate(), Ok(()));
        assert!(generate(&mut rng(0), 4, &short).is_ok());
    }

    #[test]
    fn generated_sequences_are_valid_and_targets_are_the_stored_values() {
        let p = StoreRecallParams {
            tau_char: 5,
            ..Default::default()
        };
        let batch = generate(&mut rng(1), 500, &p).unwrap();
        assert_eq!(batch.batch_size(), 500);
        assert_eq!(batch.input.n_batch(), 500);
        assert_eq!(batch.input.n_steps(), 60);
        assert_eq!(batch.input.n_in(), 100);
        let mut n_recalls = 0;
        for b in 0..500 {
            let seq = batch.input_nums.row(b).to_vec();
            assert!(validity_test(&seq, R, S), "{seq:?}");
            assert!(seq.iter().all(|&s| s <= R));
            let mut last_store = None;
            for c in 0..p.seq_len {
                let target = batch.target_nums[[b, c]];
                assert_eq!(batch.recall_mask[[b, c]], seq[c] == R);
                if seq[c] == S {
                    last_store = Some(c);
                }
                if seq[c] == R {
                    n_recalls += 1;
                    assert_eq!(target, seq[last_store.unwrap() + 1], "{seq:?} at {c}");
                    assert!(target < S);
                } else {
                    assert_eq!(target, seq[c]);
                }
            }
        }
        assert_eq!(batch.n_recalls(), n_recalls);
        // Store and recall come with probability 1/7 per character before selection; selection
        // keeps at least one of each, so the mean per sequence lies between 1 and 12/7 + 1.
        let mean = n_recalls as f64 / 500.0;
        assert!((1.0..2.8).contains(&mean), "recalls per sequence {mean}");
    }

    #[test]
    fn value_groups_at_a_store_show_the_following_true_value() {
        // f0 = 1000 Hz: every neuron of an active group fires at every step, so the input shows
        // the gates exactly.
        let p = StoreRecallParams {
            n_in: 10,
            f0_hz: 1000.0,
            tau_char: 3,
            ..Default::default()
        };
        let batch = generate(&mut rng(2), 200, &p).unwrap();
        let groups = p.input_groups();
        for b in 0..200 {
            let seq = batch.input_nums.row(b);
            let x = batch.input.dense_element(b);
            for c in 0..p.seq_len {
                let mut expected = [false; 4];
                expected[usize::from(seq[c])] = true;
                if seq[c] == S {
                    expected[usize::from(seq[c + 1])] = true;
                }
                if c > 0 && seq[c - 1] == S {
                    assert!(seq[c] < S);
                    if batch.distractor[[b, c]] {
                        expected = [false; 4];
                        expected[usize::from(1 - seq[c])] = true;
                    }
                } else {
                    assert!(!batch.distractor[[b, c]]);
                }
                for g in 0..4 {
                    assert_eq!(batch.gates[[b, c, g]], expected[g], "b {b} c {c} g {g}");
                    for t in c * 3..(c + 1) * 3 {
                        for n in groups[g].clone() {
                            assert_eq!(x[[t, n]], if expected[g] { 1.0 } else { 0.0 });
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn distractor_inverts_about_half_of_the_stores() {
        let p = StoreRecallParams {
            tau_char: 1,
            ..Default::default()
        };
        let batch = generate(&mut rng(3), 4000, &p).unwrap();
        let n_stores = batch.input_nums.iter().filter(|&&s| s == S).count();
        let n_inverted = batch.distractor.iter().filter(|&&d| d).count();
        let frac = n_inverted as f64 / n_stores as f64;
        let std = (0.25 / n_stores as f64).sqrt();
        assert!(n_stores > 4000);
        assert!((frac - 0.5).abs() < 5.0 * std, "{n_inverted}/{n_stores}");
    }

    #[test]
    fn spike_rate_of_active_groups_is_f0_and_inactive_groups_are_silent() {
        let p = StoreRecallParams::default(); // 50 Hz, 200 ms characters, 100 neurons
        let batch = generate(&mut rng(4), 32, &p).unwrap();
        let groups = p.input_groups();
        let tau = p.tau_char;
        // Active (neuron, step) slots and spikes; separately at the first and last step of each
        // character, which catches an off-by-one in the gap sampling.
        let (mut slots, mut spikes) = (0usize, 0usize);
        let (mut edge_slots, mut first_spikes, mut last_spikes) = (0usize, 0usize, 0usize);
        for b in 0..32 {
            let x = batch.input.dense_element(b);
            for c in 0..p.seq_len {
                for (g, group) in groups.iter().enumerate() {
                    let active = batch.gates[[b, c, g]];
                    for n in group.clone() {
                        let count = (c * tau..(c + 1) * tau)
                            .filter(|&t| x[[t, n]] != 0.0)
                            .count();
                        if active {
                            slots += tau;
                            spikes += count;
                            edge_slots += 1;
                            first_spikes += usize::from(x[[c * tau, n]] != 0.0);
                            last_spikes += usize::from(x[[(c + 1) * tau - 1, n]] != 0.0);
                        } else {
                            assert_eq!(count, 0, "inactive group {g} fired (b {b} c {c})");
                        }
                    }
                }
            }
        }
        assert!(x_values_are_spikes(&batch));
        let check = |k: usize, n: usize, what: &str| {
            let prob = 0.05;
            let std = (n as f64 * prob * (1.0 - prob)).sqrt();
            let dev = (k as f64 - n as f64 * prob).abs();
            assert!(dev < 5.0 * std, "{what}: {k} spikes in {n} slots");
        };
        check(spikes, slots, "all steps");
        check(first_spikes, edge_slots, "first step of characters");
        check(last_spikes, edge_slots, "last step of characters");
        assert_eq!(batch.input.n_events(), spikes);
    }

    fn x_values_are_spikes(batch: &StoreRecallBatch) -> bool {
        (0..batch.batch_size()).all(|b| {
            (0..batch.input.n_steps()).all(|t| batch.input.events(b, t).all(|(_, v)| v == 1.0))
        })
    }

    #[test]
    fn zero_rate_gives_no_spike() {
        let p = StoreRecallParams {
            f0_hz: 0.0,
            ..Default::default()
        };
        let batch = generate(&mut rng(5), 8, &p).unwrap();
        assert_eq!(batch.input.n_events(), 0);
        assert_eq!(batch.input.n_batch(), 8);
    }

    #[test]
    fn same_seed_gives_the_same_batch() {
        let p = StoreRecallParams::default();
        let a = generate(&mut rng(6), 16, &p).unwrap();
        let b = generate(&mut rng(6), 16, &p).unwrap();
        let c = generate(&mut rng(7), 16, &p).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.input, c.input);
    }

    #[test]
    fn rare_valid_sequences_end_in_an_error_not_a_hang() {
        let p = StoreRecallParams {
            seq_len: 5000,
            seq_delay: 1,
            tau_char: 1,
            ..Default::default()
        };
        let err = generate_with_max_attempts(&mut rng(8), 1, &p, 20).unwrap_err();
        assert_eq!(
            err,
            TaskError::TooManyRejections {
                task: TASK,
                attempts: 20
            }
        );
    }

    fn hand_made_batch() -> StoreRecallBatch {
        let p = StoreRecallParams {
            tau_char: 1,
            ..Default::default()
        };
        let mut batch = generate(&mut rng(9), 2, &p).unwrap();
        // Replace the symbols by two known sequences (12 characters each).
        let seqs: [[u8; 12]; 2] = [
            [S, 1, 0, R, 0, 0, 0, 0, 0, 0, 0, 0],
            [S, 0, R, S, 1, R, 1, 1, 1, 1, 1, 1],
        ];
        for (b, seq) in seqs.iter().enumerate() {
            for (c, &s) in seq.iter().enumerate() {
                batch.input_nums[[b, c]] = s;
                batch.recall_mask[[b, c]] = s == R;
                batch.target_nums[[b, c]] = s;
            }
        }
        batch.target_nums[[0, 3]] = 1;
        batch.target_nums[[1, 2]] = 0;
        batch.target_nums[[1, 5]] = 1;
        batch
    }

    #[test]
    fn recall_error_scores_only_recall_characters() {
        let batch = hand_made_batch();
        let mut logits = ndarray::Array3::<f32>::zeros((2, 12, 2));
        // Non-recall characters are all "wrong" on purpose: they must not count.
        for b in 0..2 {
            for c in 0..12 {
                logits[[b, c, 0]] = 5.0;
            }
        }
        // Recalls: (0,3) target 1 -> correct; (1,2) target 0 -> correct; (1,5) target 1 -> wrong.
        logits[[0, 3, 1]] = 6.0;
        logits[[1, 2, 0]] = 1.0;
        logits[[1, 2, 1]] = -1.0;
        logits[[1, 5, 0]] = 0.5;
        logits[[1, 5, 1]] = 0.5; // a tie picks the first class, 0: wrong
        let err = recall_error(logits.view(), &batch).unwrap();
        assert!((err - 1.0 / 3.0).abs() < 1e-12, "{err}");

        logits[[1, 5, 1]] = 0.6;
        assert_eq!(recall_error(logits.view(), &batch).unwrap(), 0.0);

        logits[[0, 3, 0]] = f32::NAN;
        let err = recall_error(logits.view(), &batch).unwrap();
        assert!(
            (err - 1.0 / 3.0).abs() < 1e-12,
            "a NaN row counts as wrong: {err}"
        );

        let bad = ndarray::Array3::<f32>::zeros((2, 12, 3));
        assert!(matches!(
            recall_error(bad.view(), &batch),
            Err(TaskError::Shape { .. })
        ));

        let mut none = batch.clone();
        none.recall_mask.fill(false);
        assert!(recall_error(logits.view(), &none).unwrap().is_nan());
    }
}
