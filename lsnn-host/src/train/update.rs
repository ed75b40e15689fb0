//! One parameter update of [`Weights`]: non-finite check, optimiser step, and DEEP R where
//! matrices are rewired.

use lsnn_core::Real;
use ndarray::Array2;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::deepr::{guard_and_regularise, reconnect, FlatPlace};
use super::optim::Optimizer;
use crate::error::HostError;
use crate::network::{Params, Weights};

/// DEEP R's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rewiring {
    /// l1 shrinkage of connected magnitudes per step (times the learning rate).
    pub l1: f64,
    /// Temperature of the exploration noise (0 in the tutorials).
    pub temperature: f64,
}

impl<F: Real> Weights<F> {
    /// The place of each rewired matrix in the flat parameter vector.
    pub fn flat_places(&self) -> Result<Vec<FlatPlace>, HostError> {
        let named = self.params.named();
        self.rewired
            .iter()
            .map(|m| {
                let segment = named
                    .iter()
                    .position(|(n, _)| *n == m.name)
                    .ok_or_else(|| {
                        HostError::Network(format!("cannot rewire unknown matrix {}", m.name))
                    })?;
                let start: usize = named[..segment].iter().map(|(_, a)| a.len()).sum();
                Ok(FlatPlace {
                    segment: segment as u32,
                    start: u32::try_from(start).map_err(|_| {
                        HostError::Network("over 2^32 parameters cannot be rewired".into())
                    })?,
                })
            })
            .collect()
    }

    /// Checks every gradient for NaN/Inf (naming the first offending array), then applies the
    /// optimiser and, for rewired matrices, DEEP R in the original's order.
    pub fn apply<R: Rng>(
        &mut self,
        grads: &Params<F>,
        optimizer: &mut Optimizer,
        lr: f64,
        rewiring: Option<Rewiring>,
        rng: &mut R,
    ) -> Result<(), HostError> {
        for (name, g) in grads.named() {
            if let Some(k) = g.iter().position(|x| !x.is_finite()) {
                return Err(HostError::NonFinite {
                    what: format!("gradient of {name} (entry {k})"),
                });
            }
        }
        let mut var_grads: Vec<Vec<F>> = Vec::new();
        for (name, g) in grads.named() {
            match self.rewired.iter().find(|m| m.name == name) {
                Some(m) => var_grads.push(g.iter().zip(&m.sign).map(|(&g, &s)| g * s).collect()),
                None => var_grads.push(g.to_vec()),
            }
        }
        let was_connected: Vec<Array2<bool>> = self
            .rewired
            .iter()
            .map(|m| m.theta.mapv(|t| t > F::zero()))
            .collect();
        {
            let mut thetas: Vec<(String, &mut [F])> = self
                .rewired
                .iter_mut()
                .map(|m| {
                    (
                        m.name.clone(),
                        m.theta.as_slice_mut().expect("standard layout"),
                    )
                })
                .collect();
            let mut vars: Vec<(&str, &mut [F])> = Vec::new();
            for (name, values) in self.params.named_mut() {
                match thetas.iter().position(|(n, _)| n == name) {
                    Some(at) => vars.push((name, thetas.swap_remove(at).1)),
                    None => vars.push((name, values)),
                }
            }
            let refs: Vec<&[F]> = var_grads.iter().map(|g| g.as_slice()).collect();
            optimizer.apply(lr, &mut vars, &refs);
        }
        if !self.rewired.is_empty() {
            let r = rewiring.unwrap_or(Rewiring {
                l1: 0.0,
                temperature: 0.0,
            });
            // One draw of the run's generator keys this step's Philox numbers, as on the GPU.
            let key = rng.gen::<u64>();
            let places = self.flat_places()?;
            for ((m, was), &place) in self.rewired.iter_mut().zip(&was_connected).zip(&places) {
                guard_and_regularise(&mut m.theta, was, lr, r.l1, r.temperature, key, place);
            }
            reconnect(&mut self.rewired, &places, key)?;
            self.sync_rewired()?;
        }
        Ok(())
    }
}
