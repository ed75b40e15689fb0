//! Philox4x32-10, the counter-based generator of DEEP R's random numbers on the host trainer and
//! in lsnn-gpu's kernels (`lsnn_philox` in `lsnn-gpu/kernels/lsnn.cuh`): a draw is a pure function
//! of (key, counter), so both place reconnected synapses and draw noise identically whatever
//! runs in parallel. Tested here against Random123's known-answer vectors, and against the
//! kernel by lsnn-gpu's device test `philox_matches_the_rust_mirror`.

/// Counter word 1 (the stream) of DEEP R's noise on connected entries.
pub const STREAM_NOISE: u32 = 0;
/// Stream of the categorical split of new connections among the matrices.
pub const STREAM_SPLIT: u32 = 1;
/// Stream of the placement of new connections (rejection sampling).
pub const STREAM_PICK: u32 = 2;

/// One Philox4x32-10 block for `counter` under `key`.
pub fn philox4x32_10(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    const M0: u32 = 0xD251_1F53;
    const M1: u32 = 0xCD9E_8D57;
    for r in 0..10 {
        if r > 0 {
            k[0] = k[0].wrapping_add(0x9E37_79B9);
            k[1] = k[1].wrapping_add(0xBB67_AE85);
        }
        let p0 = u64::from(M0) * u64::from(c[0]);
        let p1 = u64::from(M1) * u64::from(c[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The two key words of a 64-bit key (`lsnn_key`).
pub fn key_words(key: u64) -> [u32; 2] {
    [key as u32, (key >> 32) as u32]
}

/// Uniform in [0, 1) with 53 bits from two words (`lsnn_uniform53`).
pub fn uniform53(a: u32, b: u32) -> f64 {
    (f64::from(a >> 5) * 67_108_864.0 + f64::from(b >> 6)) * (1.0 / 9_007_199_254_740_992.0)
}

/// Standard normal by Box-Muller from the four words of one block (`lsnn_normal`).
pub fn normal(r: [u32; 4]) -> f64 {
    const TWO_53: f64 = 9_007_199_254_740_992.0;
    let u1 = (uniform53(r[0], r[1]) * TWO_53 + 1.0) / TWO_53;
    let u2 = uniform53(r[2], r[3]);
    libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(core::f64::consts::TAU * u2)
}

/// `floor(x * n / 2^32)`: a uniform index below `n` from one word (CUDA's `__umulhi`).
pub fn below(x: u32, n: u32) -> u32 {
    ((u64::from(x) * u64::from(n)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn uniforms_cover_the_unit_interval() {
        assert_eq!(uniform53(0, 0), 0.0);
        let top = uniform53(u32::MAX, u32::MAX);
        assert!(top < 1.0 && top > 1.0 - 1e-15);
        let key = key_words(0x0123_4567_89ab_cdef);
        assert_eq!(key, [0x89ab_cdef, 0x0123_4567]);
        let mean = (0..10_000u32)
            .map(|i| {
                let r = philox4x32_10([i, 1, 0, 0], key);
                uniform53(r[0], r[1])
            })
            .sum::<f64>()
            / 10_000.0;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }
}
