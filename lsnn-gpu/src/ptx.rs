//! The kernels as PTX, compiled from `kernels/*.cu` by build.rs and embedded here (candle's
//! pattern: plain .cu files, PTX constants; the launch code is in `trainer.rs`).

/// `kernels/forward.cu`: `lsnn_forward`.
pub const FORWARD: &str = include_str!(concat!(env!("OUT_DIR"), "/forward.ptx"));
/// `kernels/backward.cu`: `lsnn_backward`.
pub const BACKWARD: &str = include_str!(concat!(env!("OUT_DIR"), "/backward.ptx"));
/// `kernels/loss.cu`: `lsnn_clear`, `lsnn_loss`.
pub const LOSS: &str = include_str!(concat!(env!("OUT_DIR"), "/loss.ptx"));
/// `kernels/update.cu`: `lsnn_reduce_grads`, `lsnn_update`, `lsnn_reconnect`,
/// `lsnn_philox_test`.
pub const UPDATE: &str = include_str!(concat!(env!("OUT_DIR"), "/update.ptx"));

/// Every module: its source file, PTX and entry points.
pub const MODULES: [(&str, &str, &[&str]); 4] = [
    ("forward.cu", FORWARD, &["lsnn_forward", "lsnn_forward_256"]),
    (
        "backward.cu",
        BACKWARD,
        &["lsnn_rec_rows", "lsnn_backward", "lsnn_backward_256"],
    ),
    ("loss.cu", LOSS, &["lsnn_clear", "lsnn_loss"]),
    (
        "update.cu",
        UPDATE,
        &[
            "lsnn_reduce_grads",
            "lsnn_update",
            "lsnn_reconnect",
            "lsnn_philox_test",
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_source_is_embedded_with_its_entries() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
        let mut sources: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cu"))
            .collect();
        sources.sort();
        let mut listed: Vec<String> = MODULES.iter().map(|m| m.0.to_string()).collect();
        listed.sort();
        assert_eq!(sources, listed, "every kernels/*.cu is a module here");
        for (file, ptx, entries) in MODULES {
            assert!(ptx.len() > 1000, "{file}: PTX is {} bytes", ptx.len());
            assert!(
                ptx.contains(".target sm_80"),
                "{file}: compiled for compute_80"
            );
            assert!(ptx.contains(".address_size 64"), "{file}");
            for e in entries {
                assert!(
                    ptx.contains(&format!(".entry {e}(")),
                    "{file}: entry {e} missing from the PTX"
                );
            }
            // Every .entry in the PTX is listed (a new kernel must be named here).
            let n_entries = ptx.matches(".entry ").count();
            assert_eq!(n_entries, entries.len(), "{file}: entries");
        }
    }

    #[test]
    fn no_fused_multiply_add_in_the_mirrored_equations() {
        // -fmad=false: the forward (neuron_step) must round as lsnn-core does. (loss.cu's
        // exp/log come from libdevice, which uses fma internally: they are evaluated in f64 and
        // rounded to f32, as the host's `softmax_exp`/`softmax_ln`, which agree with them unless
        // the exact value lies within two f64 ulps of a tie between two f32s.)
        for (file, ptx, _) in MODULES.iter().filter(|m| m.0 != "loss.cu") {
            assert!(
                !ptx.contains("fma.rn.f32"),
                "{file}: contracted float multiply-add"
            );
        }
    }
}
