//! Optimisers with TensorFlow 1's exact update rules.

use lsnn_core::Real;
use serde::{Deserialize, Serialize};

/// Which optimiser to use.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// `tf.train.AdamOptimizer` (beta1 0.9, beta2 0.999, epsilon 1e-8 by default).
    Adam,
    /// Plain gradient descent: `x -= lr * g`.
    Sgd,
}

/// An optimiser over named flat arrays; its state can be saved and restored exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    /// The update rule.
    pub kind: OptimizerKind,
    /// Adam's beta1.
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's epsilon (added to sqrt(v) after the bias correction, as TF 1 does).
    pub epsilon: f64,
    /// Number of updates applied so far.
    pub step: u64,
    /// First moments per variable, in f64 so that checkpoints restore them bit for bit.
    pub m: Vec<(String, Vec<f64>)>,
    /// Second moments per variable.
    pub v: Vec<(String, Vec<f64>)>,
}

impl Optimizer {
    /// Adam with TensorFlow's defaults.
    pub fn adam() -> Self {
        Optimizer {
            kind: OptimizerKind::Adam,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Plain SGD.
    pub fn sgd() -> Self {
        Optimizer {
            kind: OptimizerKind::Sgd,
            ..Optimizer::adam()
        }
    }

    /// Applies one update with learning rate `lr` to every variable `(name, values)` from its
    /// gradient (same order and lengths).
    pub fn apply<F: Real>(&mut self, lr: f64, vars: &mut [(&str, &mut [F])], grads: &[&[F]]) {
        self.step += 1;
        match self.kind {
            OptimizerKind::Sgd => {
                for ((_, x), g) in vars.iter_mut().zip(grads) {
                    for (x, &g) in x.iter_mut().zip(g.iter()) {
                        *x = *x - F::of(lr) * g;
                    }
                }
            }
            OptimizerKind::Adam => {
                let t = self.step as i32;
                let lr_t = lr * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t));
                let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
                for ((name, x), g) in vars.iter_mut().zip(grads) {
                    let m = moment(&mut self.m, name, x.len());
                    let v = moment(&mut self.v, name, x.len());
                    for (((x, &g), m), v) in x.iter_mut().zip(g.iter()).zip(m).zip(v) {
                        let g = g.to_f64();
                        *m = b1 * *m + (1.0 - b1) * g;
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        *x = F::of(x.to_f64() - lr_t * *m / (v.sqrt() + eps));
                    }
                }
            }
        }
    }
}

fn moment<'a>(store: &'a mut Vec<(String, Vec<f64>)>, name: &str, len: usize) -> &'a mut Vec<f64> {
    let at = match store.iter().position(|(n, _)| n == name) {
        Some(at) => at,
        None => {
            store.push((name.to_string(), vec![0.0; len]));
            store.len() - 1
        }
    };
    &mut store[at].1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_follows_tensorflow_1() {
        let mut opt = Optimizer::adam();
        let mut x = vec![1.0f64, -2.0];
        let grads = [[0.5, -1.0], [0.25, 3.0]];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        let mut expected = x.clone();
        for (t, g) in grads.iter().enumerate() {
            opt.apply(0.01, &mut [("x", &mut x[..])], &[&g[..]]);
            let t = t as i32 + 1;
            let lr_t = 0.01 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
            for k in 0..2 {
                m[k] = 0.9 * m[k] + 0.1 * g[k];
                v[k] = 0.999 * v[k] + 0.001 * g[k] * g[k];
                expected[k] -= lr_t * m[k] / (v[k].sqrt() + 1e-8);
            }
            assert_eq!(x, expected);
        }
        // The first step moves every coordinate by about lr whatever the gradient scale (TF adds
        // epsilon to sqrt(v), so with a tiny gradient the step is 3e-4 relative short of lr).
        let mut y = [0.0f64];
        Optimizer::adam().apply(0.01, &mut [("y", &mut y[..])], &[&[1e-3][..]]);
        assert!((y[0] + 0.01).abs() < 1e-5);
    }

    #[test]
    fn sgd_is_plain_gradient_descent() {
        let mut opt = Optimizer::sgd();
        let mut x = vec![1.0f32];
        opt.apply(0.5, &mut [("x", &mut x[..])], &[&[2.0][..]]);
        assert_eq!(x, vec![0.0]);
    }
}
