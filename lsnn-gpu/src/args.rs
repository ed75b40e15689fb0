//! The kernels' argument structs, passed by value: Rust twins of the structs in
//! `kernels/lsnn.cuh`. Device pointers are `u64` addresses (0 = null). A CPU test parses the
//! header and checks that both sides declare the same fields in the same order with the same
//! types, so the byte layouts agree.

macro_rules! kernel_args {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, cust::DeviceCopy)]
        #[allow(missing_docs)]
        pub struct $name { $(pub $field: $ty),* }

        impl $name {
            /// `(field, Rust type)` in declaration order.
            pub const FIELDS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($field), stringify!($ty))),*];
        }
    };
}

kernel_args!(
    /// `lsnn_forward`.
    ForwardArgs {
        neurons: u64,
        syn: u64,
        w_out: u64,
        b_out: u64,
        in_offsets: u64,
        in_channels: u64,
        in_values: u64,
        term_offsets: u64,
        terms: u64,
        lin_cz: u64,
        lin_cv: u64,
        st_v: u64,
        st_z: u64,
        st_b: u64,
        st_ring: u64,
        st_refr: u64,
        tr_v: u64,
        tr_b: u64,
        tr_spk: u64,
        tr_ref: u64,
        z0: u64,
        zsum: u64,
        psp_sum: u64,
        logits: u64,
        lin_part: u64,
        n_in: u32,
        n_rec: u32,
        n_out: u32,
        n_delay: u32,
        n_refractory: u32,
        n_steps: u32,
        n_words: u32,
        max_terms: u32,
        record_trace: u32,
        cols_capacity: u32,
        dt: f32,
        decay_b: f32,
        one_minus_decay_b: f32,
        v0: f32,
        spike: f32,
        dampening_factor: f32,
        decay_out: f32,
        gain_out: f32,
    }
);

kernel_args!(
    /// `lsnn_backward`.
    BackwardArgs {
        neurons: u64,
        syn: u64,
        rec_rows: u64,
        rec_count: u64,
        w_out: u64,
        in_offsets: u64,
        in_channels: u64,
        in_values: u64,
        term_offsets: u64,
        terms: u64,
        lin_cz: u64,
        lin_cv: u64,
        tr_v: u64,
        tr_b: u64,
        tr_spk: u64,
        tr_ref: u64,
        z0: u64,
        psp_sum: u64,
        dlogits: u64,
        reg_grad: u64,
        partial: u64,
        n_in: u32,
        n_rec: u32,
        n_out: u32,
        n_delay: u32,
        n_steps: u32,
        n_words: u32,
        max_terms: u32,
        n_params: u32,
        acc_in_shared: u32,
        rows_capacity: u32,
        has_bias: u32,
        dt: f32,
        decay_b: f32,
        one_minus_decay_b: f32,
        v0: f32,
        spike: f32,
        dampening_factor: f32,
        decay_out: f32,
        gain_out: f32,
    }
);

kernel_args!(
    /// `lsnn_loss`.
    LossArgs {
        logits: u64,
        terms: u64,
        zsum: u64,
        lin_part: u64,
        reg_coeff: u64,
        dlogits: u64,
        ce: u64,
        rates: u64,
        reg_grad: u64,
        metrics: u64,
        flags: u64,
        n_batch: u32,
        n_rec: u32,
        n_out: u32,
        n_terms: u32,
        has_reg: u32,
        reg_target: f32,
        denom: f32,
    }
);

kernel_args!(
    /// `lsnn_reduce_grads`.
    ReduceArgs {
        partial: u64,
        grad: u64,
        flags: u64,
        n_partials: u32,
        n_params: u32,
        n_in: u32,
        n_rec: u32,
        poison: u32,
        v0: f32,
    }
);

kernel_args!(
    /// `lsnn_update`.
    UpdateArgs {
        params: u64,
        theta: u64,
        sign: u64,
        grad: u64,
        adam_m: u64,
        adam_v: u64,
        syn: u64,
        counters: u64,
        flags: u64,
        seg_start: [u32; 9],
        n_segments: u32,
        rewired_mask: u32,
        kind: u32,
        n_params: u32,
        n_in: u32,
        n_rec: u32,
        lr: f64,
        lr_t: f64,
        beta1: f64,
        beta2: f64,
        epsilon: f64,
        l1: f64,
        noise_scale: f64,
        key: u64,
        v0: f32,
    }
);

kernel_args!(
    /// `lsnn_reconnect`.
    ReconnectArgs {
        params: u64,
        theta: u64,
        sign: u64,
        syn: u64,
        counters: u64,
        flags: u64,
        n_connected: u64,
        seg_start: [u32; 9],
        n_segments: u32,
        rewired_mask: u32,
        budget: u32,
        n_in: u32,
        n_rec: u32,
        seg_weight: [f64; 8],
        key: u64,
        v0: f32,
    }
);

/// `lsnn_update`'s `kind`: Adam.
pub const OPT_ADAM: u32 = 0;
/// `lsnn_update`'s `kind`: SGD.
pub const OPT_SGD: u32 = 1;
/// Segments a parameter set may have (`LSNN_MAX_SEGMENTS`).
pub const MAX_SEGMENTS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = include_str!("../kernels/lsnn.cuh");

    /// The fields of `struct NAME { ... };` in the header as `(name, C type, array length)`.
    fn c_fields(name: &str) -> Vec<(String, String, Option<usize>)> {
        let start = HEADER
            .find(&format!("struct {name} {{"))
            .unwrap_or_else(|| panic!("struct {name} is in lsnn.cuh"));
        let body = &HEADER[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find("};").unwrap()];
        body.split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|decl| {
                let (ty, var) = decl
                    .rsplit_once(|c: char| c.is_whitespace() || c == '*')
                    .unwrap();
                let pointer = decl.contains('*');
                let (var, len) = match var.split_once('[') {
                    Some((v, l)) => (v, Some(l.trim_end_matches(']').parse().unwrap())),
                    None => (var, None),
                };
                let ty = if pointer {
                    "pointer".to_string()
                } else {
                    ty.trim().to_string()
                };
                (var.to_string(), ty, len)
            })
            .collect()
    }

    fn rust_as_c(ty: &str) -> (String, Option<usize>) {
        let ty = ty.replace(' ', "");
        if let Some(inner) = ty.strip_prefix('[') {
            let (t, n) = inner.trim_end_matches(']').split_once(';').unwrap();
            return (rust_as_c(t).0, Some(n.parse().unwrap()));
        }
        let c = match ty.as_str() {
            "u32" => "unsigned",
            "f32" => "float",
            "f64" => "double",
            "u64" => "u64",
            other => panic!("no C twin for {other}"),
        };
        (c.to_string(), None)
    }

    fn check(name: &str, fields: &[(&str, &str)], size: usize) {
        let c = c_fields(name);
        assert_eq!(c.len(), fields.len(), "{name}: field count");
        let mut bytes = 0usize;
        for ((rn, rt), (cn, ct, clen)) in fields.iter().zip(&c) {
            assert_eq!(rn, cn, "{name}: field order");
            let (want, len) = rust_as_c(rt);
            if want == "u64" {
                assert!(
                    ct == "pointer" || ct == "unsigned long long",
                    "{name}.{cn}: {ct} is not 64-bit"
                );
            } else {
                assert_eq!(&want, ct, "{name}.{cn}: type");
            }
            assert_eq!(&len, clen, "{name}.{cn}: array length");
            let elem = match want.as_str() {
                "u64" | "double" => 8,
                _ => 4,
            };
            bytes = bytes.next_multiple_of(elem) + elem * len.unwrap_or(1);
        }
        assert_eq!(bytes.next_multiple_of(8), size, "{name}: size");
    }

    #[test]
    fn argument_structs_match_the_cuda_header() {
        check("ForwardArgs", ForwardArgs::FIELDS, size_of::<ForwardArgs>());
        check(
            "BackwardArgs",
            BackwardArgs::FIELDS,
            size_of::<BackwardArgs>(),
        );
        check("LossArgs", LossArgs::FIELDS, size_of::<LossArgs>());
        check("ReduceArgs", ReduceArgs::FIELDS, size_of::<ReduceArgs>());
        check("UpdateArgs", UpdateArgs::FIELDS, size_of::<UpdateArgs>());
        check(
            "ReconnectArgs",
            ReconnectArgs::FIELDS,
            size_of::<ReconnectArgs>(),
        );
    }

    #[test]
    fn header_constants_match() {
        assert!(HEADER.contains(&format!("#define LSNN_MAX_SEGMENTS {MAX_SEGMENTS}")));
        let threads = crate::layout::SMALL_BLOCK;
        assert!(HEADER.contains(&format!("#define LSNN_RECONNECT_THREADS {threads}")));
        assert!(HEADER.contains(&format!("#define LSNN_OPT_ADAM {OPT_ADAM}u")));
        assert!(HEADER.contains(&format!("#define LSNN_OPT_SGD {OPT_SGD}u")));
        // seg_start has one entry more than there are segments.
        assert_eq!(UpdateArgs::default().seg_start.len(), MAX_SEGMENTS + 1);
        assert_eq!(ReconnectArgs::default().seg_weight.len(), MAX_SEGMENTS);
    }
}
