//! # lsnn-gpu
//!
//! The CUDA training path of lsnn-rs. Not implemented yet: the kernels, their `build.rs`
//! (nvcc to PTX) and the `cust` launch code arrive with the GPU issue. The crate exists so the
//! workspace has its final shape; it is outside `default-members`, so plain `cargo test` never
//! needs a CUDA toolkit.
#![forbid(unsafe_code)]
