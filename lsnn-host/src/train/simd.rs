//! The registers the trainer's lanes are computed in, chosen at run time with pulp: on x86-64
//! with AVX-512 the 16 lanes of a group are one register (two for f64); elsewhere the portable
//! [`Lanes`] arrays, compiled with AVX2 or NEON where the CPU has them. Every register computes
//! in each lane what the scalar [`Real`] computes: the same IEEE operations, no fused
//! multiply-add, no approximations.

use lsnn_core::{LaneMask, Lanes, Real, Value};

/// Batch elements per group: 16 f32 lanes fill one AVX-512 register (two AVX2 registers).
pub const LANES: usize = 16;

/// How lanes are kept in memory.
pub type Mem<F> = Lanes<F, LANES>;

/// A register of [`LANES`] lanes: the core's [`Value`] plus what the trainer needs to move lanes
/// between memory and the register, and to turn lane bits into masks and back.
pub trait Reg: Value + Send + Sync {
    /// The lanes of `x`, in a register like `self`.
    fn load(self, x: &Mem<Self::Scalar>) -> Self;
    /// Writes the lanes to `out`.
    fn store(self, out: &mut Mem<Self::Scalar>);
    /// The first [`LANES`] values of `x` (which has that many at least), in a register like
    /// `self`.
    #[inline(always)]
    fn load_slice(self, x: &[Self::Scalar]) -> Self {
        let x = &x[..LANES];
        self.load(&Lanes(core::array::from_fn(|l| x[l])))
    }
    /// Writes the lanes to the first [`LANES`] values of `out`.
    #[inline(always)]
    fn store_slice(self, out: &mut [Self::Scalar]) {
        let mut m = Mem::default();
        self.store(&mut m);
        out[..LANES].copy_from_slice(&m.0);
    }
    /// The first values of `x` (up to [`LANES`]) in the first lanes of a register like
    /// `self`, zeros in the others.
    #[inline(always)]
    fn load_partial(self, x: &[Self::Scalar]) -> Self {
        let x = &x[..x.len().min(LANES)];
        let mut m = Mem::default();
        m.0[..x.len()].copy_from_slice(x);
        self.load(&m)
    }
    /// Writes the first lanes to `out` (up to [`LANES`] of them, as many as it holds).
    #[inline(always)]
    fn store_partial(self, out: &mut [Self::Scalar]) {
        let len = out.len().min(LANES);
        let mut m = Mem::default();
        self.store(&mut m);
        out[..len].copy_from_slice(&m.0[..len]);
    }
    /// Asks the CPU to bring `x` into its caches (a hint; nothing where there is none).
    #[inline(always)]
    fn prefetch(self, x: &[Self::Scalar]) {
        let _ = x;
    }
    /// The transpose of `tile`: lane `l` of register `j` becomes lane `j` of register `l`.
    #[inline(always)]
    fn transpose(self, tile: &[Mem<Self::Scalar>; LANES]) -> [Self; LANES] {
        core::array::from_fn(|l| self.load(&Lanes(core::array::from_fn(|j| tile[j].0[l]))))
    }
    /// The mask of the lanes set in `bits` (lane `l` is bit `l`).
    fn mask(self, bits: u16) -> Self::Mask;
    /// The lanes set in `mask` as bits.
    fn bits(self, mask: Self::Mask) -> u16;
    /// `self != other` per lane (NaN differs from everything).
    fn ne(self, other: Self) -> Self::Mask;
}

impl<F: Real> Reg for Lanes<F, LANES> {
    #[inline(always)]
    fn load(self, x: &Mem<F>) -> Self {
        *x
    }
    #[inline(always)]
    fn store(self, out: &mut Mem<F>) {
        *out = self;
    }
    #[inline(always)]
    fn mask(self, bits: u16) -> LaneMask<LANES> {
        LaneMask::from_bits(u32::from(bits))
    }
    #[inline(always)]
    fn bits(self, mask: LaneMask<LANES>) -> u16 {
        mask.bits() as u16
    }
    #[inline(always)]
    fn ne(self, other: Self) -> LaneMask<LANES> {
        LaneMask(core::array::from_fn(|l| self.0[l] != other.0[l]))
    }
}

/// A computation over the lanes of a group, run in the best register the CPU has.
pub trait Kernel<F: Real> {
    /// What it computes.
    type Output;
    /// Runs with registers like `like`.
    fn run<X: Reg<Scalar = F>>(self, like: X) -> Self::Output;
}

/// The floats the trainer runs in, with their AVX-512 registers.
pub trait SimdReal: Real {
    /// 16 lanes in AVX-512 registers.
    #[cfg(target_arch = "x86_64")]
    type Avx512: Reg<Scalar = Self>;
    /// A zero register (the token proves the CPU has AVX-512).
    #[cfg(target_arch = "x86_64")]
    fn avx512(simd: pulp::x86::V4) -> Self::Avx512;
}

impl SimdReal for f32 {
    #[cfg(target_arch = "x86_64")]
    type Avx512 = avx512::F32x16;
    #[cfg(target_arch = "x86_64")]
    fn avx512(simd: pulp::x86::V4) -> Self::Avx512 {
        avx512::F32x16::zero(simd)
    }
}

impl SimdReal for f64 {
    #[cfg(target_arch = "x86_64")]
    type Avx512 = avx512::F64x16;
    #[cfg(target_arch = "x86_64")]
    fn avx512(simd: pulp::x86::V4) -> Self::Avx512 {
        avx512::F64x16::zero(simd)
    }
}

/// Which registers [`dispatch`] may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isa {
    /// The best the CPU has.
    #[default]
    Best,
    /// The portable [`Lanes`] arrays, compiled for the target's baseline (the same bits, more
    /// slowly; for checks).
    Portable,
}

/// Runs `kernel` with AVX-512 registers where the CPU has them, else with [`Lanes`] arrays
/// compiled for AVX2 where the CPU has it, or for the target's baseline (on aarch64 that
/// includes NEON).
#[inline(always)]
pub fn dispatch<F: SimdReal, K: Kernel<F>>(isa: Isa, kernel: K) -> K::Output {
    let portable = Mem::<F>::default();
    if isa == Isa::Portable {
        return kernel.run(portable);
    }
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(simd) = pulp::x86::V4::try_new() {
            return simd.vectorize(
                #[inline(always)]
                || kernel.run(F::avx512(simd)),
            );
        }
        if let Some(simd) = pulp::x86::V3::try_new() {
            return simd.vectorize(
                #[inline(always)]
                || kernel.run(portable),
            );
        }
    }
    kernel.run(portable)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::ops::{Add, Div, Mul, Sub};

    use lsnn_core::{Mask, Value};
    use pulp::x86::V4;
    use pulp::{b16, b8, f32x16, f64x8, Simd as _};

    use super::{Mem, Reg, LANES};

    /// 16 f32 lanes in one AVX-512 register, with the token that proves the CPU has it.
    #[derive(Clone, Copy, Debug)]
    pub struct F32x16 {
        simd: V4,
        v: f32x16,
    }

    /// 16 f64 lanes in two AVX-512 registers.
    #[derive(Clone, Copy, Debug)]
    pub struct F64x16 {
        simd: V4,
        v: [f64x8; 2],
    }

    /// Lane bits of a comparison (lane `l` is bit `l`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Bits16(u16);

    impl Mask for Bits16 {
        #[inline(always)]
        fn all(self) -> bool {
            self.0 == u16::MAX
        }
        #[inline(always)]
        fn and_not(self, other: Self) -> Self {
            Bits16(self.0 & !other.0)
        }
        #[inline(always)]
        fn pick(self, yes: Self, no: Self) -> Self {
            Bits16((self.0 & yes.0) | (!self.0 & no.0))
        }
    }

    impl F32x16 {
        pub fn zero(simd: V4) -> Self {
            F32x16 {
                simd,
                v: simd.splat_f32x16(0.0),
            }
        }
        #[inline(always)]
        fn with(self, v: f32x16) -> Self {
            F32x16 { simd: self.simd, v }
        }
    }

    impl F64x16 {
        pub fn zero(simd: V4) -> Self {
            F64x16 {
                simd,
                v: [simd.splat_f64x8(0.0); 2],
            }
        }
        #[inline(always)]
        fn with(self, f: impl Fn(V4, usize) -> f64x8) -> Self {
            F64x16 {
                simd: self.simd,
                v: [f(self.simd, 0), f(self.simd, 1)],
            }
        }
    }

    macro_rules! ops {
        ($($trait:ident $method:ident $f32:ident $f64:ident),*) => {$(
            impl $trait for F32x16 {
                type Output = Self;
                #[inline(always)]
                fn $method(self, other: Self) -> Self {
                    self.with(self.simd.$f32(self.v, other.v))
                }
            }
            impl $trait for F64x16 {
                type Output = Self;
                #[inline(always)]
                fn $method(self, other: Self) -> Self {
                    self.with(|s, h| s.$f64(self.v[h], other.v[h]))
                }
            }
        )*};
    }

    ops!(
        Add add add_f32x16 add_f64x8,
        Sub sub sub_f32x16 sub_f64x8,
        Mul mul mul_f32x16 mul_f64x8,
        Div div div_f32x16 div_f64x8
    );

    impl Value for F32x16 {
        type Scalar = f32;
        type Mask = Bits16;
        #[inline(always)]
        fn splat(self, x: f32) -> Self {
            self.with(self.simd.splat_f32x16(x))
        }
        #[inline(always)]
        fn abs(self) -> Self {
            self.with(self.simd.abs_f32x16(self.v))
        }
        /// As `f32::max`: where `other` is NaN, `self` (the instruction would give `other`).
        #[inline(always)]
        fn max(self, other: Self) -> Self {
            let s = self.simd;
            let m = s.max_f32x16(self.v, other.v);
            self.with(s.select_f32x16(s.is_nan_f32x16(other.v), self.v, m))
        }
        #[inline(always)]
        fn gt(self, other: Self) -> Bits16 {
            Bits16(self.simd.cmp_gt_f32x16(self.v, other.v).0)
        }
        #[inline(always)]
        fn select(mask: Bits16, yes: Self, no: Self) -> Self {
            yes.with(yes.simd.select_f32x16(b16(mask.0), yes.v, no.v))
        }
    }

    impl Reg for F32x16 {
        #[inline(always)]
        fn load(self, x: &Mem<f32>) -> Self {
            self.with(pulp::cast(x.0))
        }
        #[inline(always)]
        fn store(self, out: &mut Mem<f32>) {
            out.0 = pulp::cast(self.v);
        }
        #[inline(always)]
        fn load_slice(self, x: &[f32]) -> Self {
            let x: &[f32; LANES] = x[..LANES].try_into().expect("sliced to LANES");
            self.with(pulp::cast(*x))
        }
        #[inline(always)]
        fn store_slice(self, out: &mut [f32]) {
            let out: &mut [f32; LANES] = (&mut out[..LANES]).try_into().expect("sliced to LANES");
            *out = pulp::cast(self.v);
        }
        /// One masked move: no copy through memory (and no call to `memcpy`).
        #[inline(always)]
        fn load_partial(self, x: &[f32]) -> Self {
            self.with(self.simd.partial_load_f32s(&x[..x.len().min(LANES)]))
        }
        #[inline(always)]
        fn store_partial(self, out: &mut [f32]) {
            let len = out.len().min(LANES);
            self.simd.partial_store_f32s(&mut out[..len], self.v);
        }
        #[inline(always)]
        fn prefetch(self, x: &[f32]) {
            prefetch_lines(self.simd, x);
        }
        /// Four rounds of two-register permutes, each swapping the off-diagonal blocks of
        /// size 8, 4, 2 and 1 (64 instructions instead of 256 scalar moves).
        #[inline(always)]
        fn transpose(self, tile: &[Mem<f32>; LANES]) -> [Self; LANES] {
            let mut r = [self.v; LANES];
            for j in 0..LANES {
                r[j] = pulp::cast(tile[j].0);
            }
            swap_blocks(self.simd, &mut r, 8);
            swap_blocks(self.simd, &mut r, 4);
            swap_blocks(self.simd, &mut r, 2);
            swap_blocks(self.simd, &mut r, 1);
            let mut out = [self; LANES];
            for j in 0..LANES {
                out[j] = self.with(r[j]);
            }
            out
        }
        #[inline(always)]
        fn mask(self, bits: u16) -> Bits16 {
            Bits16(bits)
        }
        #[inline(always)]
        fn bits(self, mask: Bits16) -> u16 {
            mask.0
        }
        #[inline(always)]
        fn ne(self, other: Self) -> Bits16 {
            Bits16(self.simd.cmp_not_eq_f32x16(self.v, other.v).0)
        }
    }

    /// Where a permute of rows `i` and `i + b` (bit b of `i` clear) takes each column from
    /// (16 and above: the second row) when it swaps their off-diagonal blocks of size b: for
    /// the upper row its own column c where bit b of c is clear, else the lower row's c - b;
    /// for the lower row the upper's c + b, else its own c.
    const fn block_swap(b: usize, upper: bool) -> [i32; LANES] {
        let mut index = [0; LANES];
        let mut c = 0;
        while c < LANES {
            let from = match (upper, c & b == 0) {
                (true, true) => c,
                (true, false) => LANES + c - b,
                (false, true) => c + b,
                (false, false) => LANES + c,
            };
            index[c] = from as i32;
            c += 1;
        }
        index
    }

    /// Swaps the off-diagonal blocks of size `b` of every `2b x 2b` block of `r`.
    #[inline(always)]
    fn swap_blocks(simd: V4, r: &mut [f32x16; LANES], b: usize) {
        const TABLES: [[[i32; LANES]; 2]; 4] = [
            [block_swap(1, true), block_swap(1, false)],
            [block_swap(2, true), block_swap(2, false)],
            [block_swap(4, true), block_swap(4, false)],
            [block_swap(8, true), block_swap(8, false)],
        ];
        let [upper, lower] = TABLES[b.trailing_zeros() as usize].map(pulp::cast);
        for i in 0..LANES {
            if i & b == 0 {
                let (a, c) = (pulp::cast(r[i]), pulp::cast(r[i + b]));
                r[i] = pulp::cast(simd.avx512f._mm512_permutex2var_ps(a, upper, c));
                r[i + b] = pulp::cast(simd.avx512f._mm512_permutex2var_ps(a, lower, c));
            }
        }
    }

    /// Prefetches every cache line of `x` (64 bytes each) into all cache levels.
    #[inline(always)]
    fn prefetch_lines<T>(simd: V4, x: &[T]) {
        let bytes = core::mem::size_of_val(x);
        let first = x.as_ptr().cast::<i8>();
        for at in (0..bytes).step_by(64) {
            // The address stays inside `x` (`wrapping_add` is only arithmetic); a prefetch
            // reads nothing the program sees.
            simd.sse
                ._mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(first.wrapping_add(at));
        }
    }

    /// The two halves' lane bits as 16.
    #[inline(always)]
    fn join(lo: b8, hi: b8) -> Bits16 {
        Bits16(u16::from(lo.0) | (u16::from(hi.0) << 8))
    }

    /// The lane bits of each half.
    #[inline(always)]
    fn halves(mask: Bits16) -> [b8; 2] {
        [b8(mask.0 as u8), b8((mask.0 >> 8) as u8)]
    }

    impl Value for F64x16 {
        type Scalar = f64;
        type Mask = Bits16;
        #[inline(always)]
        fn splat(self, x: f64) -> Self {
            self.with(|s, _| s.splat_f64x8(x))
        }
        #[inline(always)]
        fn abs(self) -> Self {
            self.with(|s, h| s.abs_f64x8(self.v[h]))
        }
        /// As `f64::max` (see [`F32x16::max`]).
        #[inline(always)]
        fn max(self, other: Self) -> Self {
            self.with(|s, h| {
                let m = s.max_f64x8(self.v[h], other.v[h]);
                s.select_f64x8(s.is_nan_f64x8(other.v[h]), self.v[h], m)
            })
        }
        #[inline(always)]
        fn gt(self, other: Self) -> Bits16 {
            let s = self.simd;
            join(
                s.cmp_gt_f64x8(self.v[0], other.v[0]),
                s.cmp_gt_f64x8(self.v[1], other.v[1]),
            )
        }
        #[inline(always)]
        fn select(mask: Bits16, yes: Self, no: Self) -> Self {
            let m = halves(mask);
            yes.with(|s, h| s.select_f64x8(m[h], yes.v[h], no.v[h]))
        }
    }

    impl Reg for F64x16 {
        #[inline(always)]
        fn load(self, x: &Mem<f64>) -> Self {
            F64x16 {
                simd: self.simd,
                v: pulp::cast(x.0),
            }
        }
        #[inline(always)]
        fn store(self, out: &mut Mem<f64>) {
            out.0 = pulp::cast(self.v);
        }
        #[inline(always)]
        fn prefetch(self, x: &[f64]) {
            prefetch_lines(self.simd, x);
        }
        #[inline(always)]
        fn mask(self, bits: u16) -> Bits16 {
            Bits16(bits)
        }
        #[inline(always)]
        fn bits(self, mask: Bits16) -> u16 {
            mask.0
        }
        #[inline(always)]
        fn ne(self, other: Self) -> Bits16 {
            let s = self.simd;
            join(
                s.cmp_not_eq_f64x8(self.v[0], other.v[0]),
                s.cmp_not_eq_f64x8(self.v[1], other.v[1]),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values where the IEEE corner cases are: zeros of both signs, NaN, infinities,
    /// subnormals, and ordinary numbers.
    fn corner_cases() -> [f64; 16] {
        [
            1.5,
            -0.0,
            f64::NAN,
            3.0,
            f64::INFINITY,
            -2.0,
            1e-310,
            0.0,
            -f64::INFINITY,
            0.1,
            -7.25,
            1e300,
            -1e-300,
            2.0,
            0.3,
            -0.5,
        ]
    }

    struct Check<F>(Mem<F>, Mem<F>);

    impl<F: SimdReal> Kernel<F> for Check<F> {
        type Output = Vec<(Mem<F>, Mem<F>, u16, u16)>;
        fn run<X: Reg<Scalar = F>>(self, like: X) -> Self::Output {
            let (a, b) = (like.load(&self.0), like.load(&self.1));
            let mut out = Vec::new();
            for r in [a + b, a - b, a * b, a / b, a.abs(), a.max(b), b.max(a)] {
                let mut m = Mem::default();
                r.store(&mut m);
                let mut sel = Mem::default();
                X::select(a.gt(b), a, b).store(&mut sel);
                out.push((m, sel, like.bits(a.gt(b)), like.bits(a.ne(b))));
            }
            out
        }
    }

    fn lanes_match_scalar<F: SimdReal>() {
        let a: Mem<F> = Lanes(corner_cases().map(F::of));
        let mut b = a;
        b.0.rotate_left(3);
        let scalar: [fn(F, F) -> F; 7] = [
            |x, y| x + y,
            |x, y| x - y,
            |x, y| x * y,
            |x, y| x / y,
            |x, _| x.abs(),
            |x, y| x.max(y),
            |x, y| y.max(x),
        ];
        let best = dispatch(Isa::Best, Check(a, b));
        assert_eq!(
            format!("{best:?}"),
            format!("{:?}", dispatch(Isa::Portable, Check(a, b)))
        );
        for (k, (r, sel, gt, ne)) in best.into_iter().enumerate() {
            for l in 0..LANES {
                let (x, y) = (a.0[l], b.0[l]);
                let want = scalar[k](x, y);
                let got = r.0[l];
                assert!(
                    got.to_bits_u64() == want.to_bits_u64() || (got.is_nan() && want.is_nan()),
                    "op {k}, lane {l}: {got:?} vs {want:?}"
                );
                let pick = if x > y { x } else { y };
                assert!(sel.0[l].to_bits_u64() == pick.to_bits_u64() || pick.is_nan());
                assert_eq!(gt >> l & 1 == 1, x > y, "gt, lane {l}");
                assert_eq!(ne >> l & 1 == 1, x != y, "ne, lane {l}");
            }
        }
    }

    #[test]
    fn every_lane_computes_the_scalar_bits() {
        lanes_match_scalar::<f32>();
        lanes_match_scalar::<f64>();
    }

    struct Transpose<F>([Mem<F>; LANES]);

    impl<F: SimdReal> Kernel<F> for Transpose<F> {
        type Output = [Mem<F>; LANES];
        fn run<X: Reg<Scalar = F>>(self, like: X) -> Self::Output {
            let mut out = [Mem::default(); LANES];
            for (m, r) in out.iter_mut().zip(like.transpose(&self.0)) {
                r.store(m);
            }
            out
        }
    }

    fn transposes<F: SimdReal>() {
        let corner = corner_cases();
        let tile: [Mem<F>; LANES] = core::array::from_fn(|j| {
            Lanes(core::array::from_fn(|l| match (j + l) % 3 {
                0 => F::of(corner[(j * 7 + l) % LANES]),
                _ => F::of((j * LANES + l) as f64),
            }))
        });
        for isa in [Isa::Best, Isa::Portable] {
            let out = dispatch(isa, Transpose(tile));
            for (j, row) in tile.iter().enumerate() {
                for (l, want) in row.0.iter().enumerate() {
                    let got = out[l].0[j];
                    assert_eq!(got.to_bits_u64(), want.to_bits_u64(), "{isa:?}, ({j}, {l})");
                }
            }
        }
    }

    #[test]
    fn transpose_moves_lane_l_of_register_j_to_lane_j_of_register_l() {
        transposes::<f32>();
        transposes::<f64>();
    }

    /// Loads `len` values partially, adds 1 in every lane, stores `len` lanes back.
    struct Partial<F>(Vec<F>, usize);

    impl<F: SimdReal> Kernel<F> for Partial<F> {
        type Output = (Mem<F>, Vec<F>);
        fn run<X: Reg<Scalar = F>>(self, like: X) -> Self::Output {
            let Partial(mut values, len) = self;
            let r = like.load_partial(&values[..len]);
            let mut loaded = Mem::default();
            r.store(&mut loaded);
            (r + like.splat(F::one())).store_partial(&mut values[..len]);
            (loaded, values)
        }
    }

    fn partial_moves<F: SimdReal>() {
        let corner = corner_cases();
        for len in 0..LANES {
            let values: Vec<F> = (0..LANES + 1).map(|i| F::of(corner[i % LANES])).collect();
            for isa in [Isa::Best, Isa::Portable] {
                let (loaded, stored) = dispatch(isa, Partial(values.clone(), len));
                for (l, (&got, &value)) in loaded.0.iter().zip(&values).enumerate() {
                    let want = if l < len { value } else { F::zero() };
                    assert_eq!(
                        got.to_bits_u64(),
                        want.to_bits_u64(),
                        "{isa:?} load {len}: {l}"
                    );
                }
                for (i, (&got, &was)) in stored.iter().zip(&values).enumerate() {
                    let want = if i < len { was + F::one() } else { was };
                    assert_eq!(
                        got.to_bits_u64(),
                        want.to_bits_u64(),
                        "{isa:?} store {len}: {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn partial_moves_touch_only_the_first_values() {
        partial_moves::<f32>();
        partial_moves::<f64>();
    }
}
