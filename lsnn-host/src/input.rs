//! Batches of input sequences stored as events, since input spikes are a few percent dense.

use ndarray::{Array2, ArrayView3};
use rand::Rng;
use rayon::prelude::*;

use crate::error::HostError;

/// Input of a batch: for element `b` and step `t`, the `(channel, value)` pairs whose value is
/// not 0 (a spike has value 1; analog inputs keep their value), channels ascending.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputBatch {
    n_batch: usize,
    n_steps: usize,
    n_in: usize,
    /// `offsets[b * n_steps + t]..offsets[b * n_steps + t + 1]` indexes `channels` / `values`.
    offsets: Vec<u32>,
    channels: Vec<u16>,
    values: Vec<f32>,
}

/// One input event of an element: at step `t`, `channel` takes `value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    /// Time step.
    pub t: u32,
    /// Input channel.
    pub channel: u16,
    /// Value (1 for a spike).
    pub value: f32,
}

/// One element's events in the batch's layout, counted from its first event.
struct ElementEvents {
    /// Where each step's events end.
    ends: Vec<u32>,
    channels: Vec<u16>,
    values: Vec<f32>,
}

impl ElementEvents {
    /// Checks, sorts (by step, then channel) and lays out `events`, without the zeros.
    fn new(n_steps: usize, n_in: usize, events: &mut [Event]) -> Result<ElementEvents, Event> {
        if let Some(bad) = events
            .iter()
            .find(|e| e.t as usize >= n_steps || e.channel as usize >= n_in)
        {
            return Err(*bad);
        }
        events.sort_by_key(|e| (e.t, e.channel));
        let mut element = ElementEvents {
            ends: Vec::with_capacity(n_steps),
            channels: Vec::with_capacity(events.len()),
            values: Vec::with_capacity(events.len()),
        };
        let mut next = events.iter().filter(|e| e.value != 0.0).peekable();
        for t in 0..n_steps as u32 {
            while let Some(e) = next.next_if(|e| e.t == t) {
                element.channels.push(e.channel);
                element.values.push(e.value);
            }
            element.ends.push(element.channels.len() as u32);
        }
        Ok(element)
    }
}

impl InputBatch {
    /// An empty batch to which elements are added with [`InputBatch::push_element`].
    pub fn new(n_steps: usize, n_in: usize) -> Self {
        InputBatch {
            n_batch: 0,
            n_steps,
            n_in,
            offsets: vec![0],
            channels: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Appends one element given its events in any order (sorted here; zero values dropped).
    /// An event outside `n_steps` x `n_in` is rejected: `Err` carries it.
    pub fn push_element(&mut self, events: &mut [Event]) -> Result<(), Event> {
        let element = ElementEvents::new(self.n_steps, self.n_in, events)?;
        self.append(&element);
        Ok(())
    }

    /// Appends elements, each given as [`InputBatch::push_element`] takes it, laid out in
    /// parallel (a batch's sorting and layout cost more than copying it in). On an event
    /// outside `n_steps` x `n_in`, nothing is appended and `Err` carries the element's index
    /// among `elements` and the event.
    pub fn push_elements(&mut self, elements: &mut [Vec<Event>]) -> Result<(), (usize, Event)> {
        let (n_steps, n_in) = (self.n_steps, self.n_in);
        let laid_out: Vec<ElementEvents> = elements
            .par_iter_mut()
            .enumerate()
            .map(|(b, events)| ElementEvents::new(n_steps, n_in, events).map_err(|e| (b, e)))
            .collect::<Result<_, _>>()?;
        let n_events: usize = laid_out.iter().map(|e| e.channels.len()).sum();
        self.offsets.reserve(laid_out.len() * n_steps);
        self.channels.reserve(n_events);
        self.values.reserve(n_events);
        for element in &laid_out {
            self.append(element);
        }
        Ok(())
    }

    fn append(&mut self, element: &ElementEvents) {
        let base = self.channels.len() as u32;
        self.offsets
            .extend(element.ends.iter().map(|&end| base + end));
        self.channels.extend_from_slice(&element.channels);
        self.values.extend_from_slice(&element.values);
        self.n_batch += 1;
    }

    /// Builds a batch from a dense `[B, T, I]` array.
    pub fn from_dense(x: ArrayView3<f32>) -> Self {
        let (n_batch, n_steps, n_in) = x.dim();
        let mut batch = InputBatch::new(n_steps, n_in);
        for b in 0..n_batch {
            let mut events: Vec<Event> = x
                .index_axis(ndarray::Axis(0), b)
                .indexed_iter()
                .filter(|(_, &v)| v != 0.0)
                .map(|((t, i), &v)| Event {
                    t: t as u32,
                    channel: i as u16,
                    value: v,
                })
                .collect();
            batch
                .push_element(&mut events)
                .expect("indices come from the array's own shape");
        }
        batch
    }

    /// Number of elements B.
    pub fn n_batch(&self) -> usize {
        self.n_batch
    }

    /// Number of steps T.
    pub fn n_steps(&self) -> usize {
        self.n_steps
    }

    /// Number of input channels I.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// The events of element `b` at step `t` as `(channel, value)`.
    pub fn events(&self, b: usize, t: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let k = b * self.n_steps + t;
        let range = self.offsets[k] as usize..self.offsets[k + 1] as usize;
        self.channels[range.clone()]
            .iter()
            .zip(&self.values[range])
            .map(|(&c, &v)| (usize::from(c), v))
    }

    /// The events in CSR form by (element, step): offsets `[B * T + 1]` (the events of
    /// (b, t) are `offsets[b * T + t]..offsets[b * T + t + 1]`), their channels (ascending
    /// within a step, each < `n_in`) and values.
    pub fn csr(&self) -> (&[u32], &[u16], &[f32]) {
        (&self.offsets, &self.channels, &self.values)
    }

    /// Total number of events in the batch.
    pub fn n_events(&self) -> usize {
        self.channels.len()
    }

    /// The dense `[T, I]` input of element `b` (for plots and tests).
    pub fn dense_element(&self, b: usize) -> Array2<f32> {
        let mut x = Array2::zeros((self.n_steps, self.n_in));
        for t in 0..self.n_steps {
            for (c, v) in self.events(b, t) {
                x[[t, c]] = v;
            }
        }
        x
    }
}

/// Random input spikes: each (step, channel) carries a spike with probability `density`,
/// elements one after the other, steps then channels in order.
pub fn random_spikes<R: Rng>(
    rng: &mut R,
    batch: usize,
    steps: usize,
    n_in: usize,
    density: f64,
) -> Result<InputBatch, HostError> {
    let mut input = InputBatch::new(steps, n_in);
    for _ in 0..batch {
        input.push_poisson(rng, |_, _| density);
    }
    Ok(input)
}

impl InputBatch {
    /// Appends an element of Poisson spikes: channel `c` spikes at step `t` with probability
    /// `probability(t, c)` (rate times dt), one draw of `rng` per step and channel, steps then
    /// channels in order.
    pub fn push_poisson<R: Rng>(&mut self, rng: &mut R, probability: impl Fn(usize, usize) -> f64) {
        let (n_steps, n_in) = (self.n_steps, self.n_in);
        let mut events: Vec<Event> = (0..n_steps)
            .flat_map(|t| (0..n_in).map(move |c| (t, c)))
            .filter(|&(t, c)| rng.gen::<f64>() < probability(t, c))
            .map(|(t, c)| Event {
                t: t as u32,
                channel: c as u16,
                value: 1.0,
            })
            .collect();
        let element = ElementEvents::new(n_steps, n_in, &mut events);
        self.append(&element.expect("every event is inside the batch"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn dense_round_trip_keeps_every_value() {
        let mut x = Array3::<f32>::zeros((2, 5, 3));
        x[[0, 1, 2]] = 1.0;
        x[[0, 1, 0]] = 1.0;
        x[[1, 4, 1]] = 0.25;
        let batch = InputBatch::from_dense(x.view());
        assert_eq!(batch.n_events(), 3);
        assert_eq!(
            batch.events(0, 1).collect::<Vec<_>>(),
            vec![(0, 1.0), (2, 1.0)]
        );
        for b in 0..2 {
            assert_eq!(batch.dense_element(b), x.index_axis(ndarray::Axis(0), b));
        }
    }

    #[test]
    fn out_of_range_events_are_rejected() {
        let mut batch = InputBatch::new(4, 2);
        let bad = Event {
            t: 4,
            channel: 0,
            value: 1.0,
        };
        assert_eq!(batch.push_element(&mut [bad]), Err(bad));
    }

    fn ev(t: u32, channel: u16, value: f32) -> Event {
        Event { t, channel, value }
    }

    #[test]
    fn elements_pushed_together_are_those_pushed_one_by_one() {
        let elements = vec![
            vec![ev(3, 1, 1.0), ev(0, 2, 0.5), ev(3, 0, 1.0), ev(1, 1, 0.0)],
            vec![],
            vec![ev(4, 2, 2.0), ev(4, 0, 1.0), ev(2, 1, -1.0)],
        ];
        let mut one_by_one = InputBatch::new(5, 3);
        for events in elements.clone() {
            one_by_one.push_element(&mut events.clone()).unwrap();
        }
        let mut together = InputBatch::new(5, 3);
        together.push_elements(&mut elements.clone()).unwrap();
        assert_eq!(together, one_by_one);
        assert_eq!(together.n_batch(), 3);
        assert_eq!(together.n_events(), 6);
        assert_eq!(
            together.events(0, 3).collect::<Vec<_>>(),
            [(0, 1.0), (1, 1.0)]
        );
        assert_eq!(
            together.events(2, 4).collect::<Vec<_>>(),
            [(0, 1.0), (2, 2.0)]
        );
    }

    #[test]
    fn a_bad_element_among_several_appends_nothing() {
        let mut batch = InputBatch::new(5, 3);
        batch.push_element(&mut [ev(0, 0, 1.0)]).unwrap();
        let before = batch.clone();
        let bad = ev(1, 3, 1.0);
        let mut elements = vec![vec![ev(2, 1, 1.0)], vec![ev(0, 0, 1.0), bad]];
        assert_eq!(batch.push_elements(&mut elements), Err((1, bad)));
        assert_eq!(batch, before);
    }
}
