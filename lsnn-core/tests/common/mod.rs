//! Synapse rows of the test networks, built from dense entries.

use lsnn_core::CsrRef;

/// Compressed rows (offsets, targets, delays, weights) of an `n_pre x n_post` matrix, as the
/// core's CSR types hold them.
#[derive(Clone, Debug)]
pub struct Rows<W> {
    pub n_post: usize,
    pub offsets: Vec<u32>,
    pub targets: Vec<u16>,
    pub delays: Vec<u8>,
    pub weights: Vec<W>,
}

impl<W> Rows<W> {
    /// The entries for which `entry(pre, post)` gives `(weight, delay)`, row-major; none on
    /// the diagonal with `no_autapse`.
    pub fn from_dense(
        n_pre: usize,
        n_post: usize,
        no_autapse: bool,
        entry: impl Fn(usize, usize) -> Option<(W, u8)>,
    ) -> Self {
        let mut rows = Rows {
            n_post,
            offsets: vec![0],
            targets: vec![],
            delays: vec![],
            weights: vec![],
        };
        for pre in 0..n_pre {
            for post in 0..n_post {
                if no_autapse && pre == post {
                    continue;
                }
                if let Some((w, d)) = entry(pre, post) {
                    rows.targets.push(post as u16);
                    rows.delays.push(d);
                    rows.weights.push(w);
                }
            }
            rows.offsets.push(rows.targets.len() as u32);
        }
        rows
    }
    /// The rows as the core's borrowed CSR (any weight type).
    pub fn view(&self) -> CsrRef<'_, W>
    where
        W: Copy,
    {
        CsrRef::new(
            self.n_post,
            &self.offsets,
            &self.targets,
            &self.delays,
            &self.weights,
        )
        .unwrap()
    }
}
