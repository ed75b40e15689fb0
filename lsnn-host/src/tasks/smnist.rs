//! Sequential MNIST (`tutorial_sequential_mnist_with_LSNN.py` of the original): the 784 pixels
//! of an image are shown one per step (1 ms), then the network answers the digit.
//!
//! Two input variants, as the tutorial's `--crs_thr` flag:
//! - **threshold crossing** (default, `crs_thr = true`, `n_in = 80`): the tutorial's
//!   `find_onset_offset` on every threshold of `numpy.linspace(0, 1, n_in / 2)`. For each
//!   threshold `thr < 1`, in increasing order, two channels: onset (`pixel[t] < thr` and
//!   `pixel[t + 1] >= thr`) and offset (`pixel[t] >= thr` and `pixel[t + 1] < thr`), the spike at
//!   the earlier index `t`; the threshold equal to 1 gives one "touch" channel, on at every step
//!   whose pixel equals 1. The last channel is the cue, on at each of the `2 * 28 * ext_time`
//!   steps appended after the image (two image rows). With 80 channels: `2k` onset and `2k + 1`
//!   offset of threshold `k / 39` (k = 0..38), 78 touch, 79 cue; input `(840, 80)`.
//! - **analog** (`crs_thr = false`): one channel whose value is the pixel, no cue, 784 steps.
//!
//! With `ext_time > 1` every pixel is repeated `ext_time` times before the encoding (a crossing
//! between two pixels then sits at the last repeat of the first one), and the cue lasts
//! `2 * 28 * ext_time` steps.
//!
//! Precision, as the original: pixels are TensorFlow's MNIST loader values
//! `f32(u8) * f32(1/255)` in float32 ([`pixel_value`]), thresholds are NumPy's float64
//! `linspace` values `k * (1 / (n - 1))` with the last exactly 1 ([`thresholds`]), and every
//! comparison is made in float64. This matters at the pixel values that equal a threshold up to
//! rounding (85/255 and 170/255 against 13/39 and 26/39, and 255/255 = 1).
//!
//! Readout window ([`SmnistEncoding::loss_window`]): with threshold crossing the original
//! averages the readout over `T / ((28 + 2) * ext_time)` steps (`tf_downsample` into
//! `(28 + 2) * ext_time` chunks, last chunk) = the last 28 steps for every `ext_time`; the analog
//! variant takes the last step.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::TaskError;
use crate::data::{Batch, IMAGE_COLS, IMAGE_PIXELS};
use crate::input::{Event, InputBatch};

/// The task's name in error messages.
pub const TASK: &str = "smnist";

/// Rows appended after the image for the answer (the cue lasts `CUE_ROWS * 28 * ext_time`).
pub const CUE_ROWS: usize = 2;

/// Chunks per `ext_time` of the original's readout downsampling (`(28 + 2) * ext_time`).
pub const READOUT_CHUNKS: usize = IMAGE_COLS + CUE_ROWS;

/// The value of a pixel byte as TensorFlow's MNIST loader gives it:
/// `numpy.multiply(images.astype(float32), 1.0 / 255.0)` in float32, i.e. the product of
/// `f32(p)` and `f32(1/255)` rounded to float32 (85 -> 0.3333333432674408,
/// 170 -> 0.6666666865348816, 255 -> 1.0 exactly).
pub fn pixel_value(p: u8) -> f32 {
    f32::from(p) * (1.0f64 / 255.0) as f32
}

/// `numpy.linspace(0, 1, n)` in float64: `k * (1 / (n - 1))` for `k < n - 1`, the last exactly
/// 1.0 (NumPy multiplies `arange(n)` by the step and then sets the endpoint).
pub fn thresholds(n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![0.0],
        _ => {
            let step = 1.0 / (n - 1) as f64;
            let mut t: Vec<f64> = (0..n).map(|k| k as f64 * step + 0.0).collect();
            t[n - 1] = 1.0;
            t
        }
    }
}

/// One input channel of the threshold-crossing encoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Channel {
    /// `pixel[t] < thr <= pixel[t + 1]`.
    Onset(f64),
    /// `pixel[t + 1] < thr <= pixel[t]`.
    Offset(f64),
    /// `pixel[t] == thr` (the threshold equal to 1).
    Touch(f64),
    /// On at the appended steps.
    Cue,
}

/// The channels of the threshold-crossing encoding with `n_in` channels in all (cue included),
/// in channel order, as the original builds them from `linspace(0, 1, n_in / 2)`.
pub fn channel_layout(n_in: usize) -> Result<Vec<Channel>, TaskError> {
    let mut chans = Vec::with_capacity(n_in);
    for thr in thresholds(n_in / 2) {
        if thr == 1.0 {
            chans.push(Channel::Touch(thr));
        } else {
            chans.push(Channel::Onset(thr));
            chans.push(Channel::Offset(thr));
        }
    }
    chans.push(Channel::Cue);
    if chans.len() != n_in || n_in < 4 || n_in > usize::from(u16::MAX) + 1 {
        return Err(TaskError::InvalidParam {
            task: TASK,
            name: "n_in",
            message: format!(
                "{n_in} channels do not fit the threshold-crossing layout (linspace(0, 1, n_in/2) \
                 gives {} threshold channels + 1 cue); use an even n_in >= 4 (80 in the tutorial)",
                chans.len() - 1
            ),
        });
    }
    Ok(chans)
}

/// The threshold-crossing spikes of one pixel sequence (already repeated for `ext_time`), as
/// `(t, channel)` sorted by step then channel: the crossings over `pixels.len()` steps, then the
/// cue channel (`n_in - 1`) at the `cue_steps` steps after them. Comparisons are made in float64.
/// This is the reference's `encode_smnist` for one row (the fixture path).
pub fn threshold_crossings(
    pixels: &[f32],
    n_in: usize,
    cue_steps: usize,
) -> Result<Vec<(usize, usize)>, TaskError> {
    let crossings = Crossings::new(&channel_layout(n_in)?);
    let y: Vec<f64> = pixels.iter().map(|&p| f64::from(p)).collect();
    let mut out = Vec::new();
    for t in 0..y.len() {
        crossings.push_step(y[t], y.get(t + 1).copied(), t, &mut out);
    }
    out.extend((0..cue_steps).map(|s| (y.len() + s, n_in - 1)));
    Ok(out)
}

/// The threshold channels of a layout by kind, thresholds ascending: a step's onsets are the
/// thresholds in `(a, b]`, its offsets those in `(b, a]`, found by two binary searches each
/// (most steps have none), where testing every channel cost 80 comparisons a step.
struct Crossings {
    onsets: Vec<(f64, usize)>,
    offsets: Vec<(f64, usize)>,
    touches: Vec<(f64, usize)>,
}

impl Crossings {
    fn new(chans: &[Channel]) -> Crossings {
        let mut kinds = Crossings {
            onsets: Vec::new(),
            offsets: Vec::new(),
            touches: Vec::new(),
        };
        for (c, ch) in chans.iter().enumerate() {
            match *ch {
                Channel::Onset(thr) => kinds.onsets.push((thr, c)),
                Channel::Offset(thr) => kinds.offsets.push((thr, c)),
                Channel::Touch(thr) => kinds.touches.push((thr, c)),
                Channel::Cue => {}
            }
        }
        // channel_layout lists its thresholds ascending (linspace), as `between` needs, and
        // so their channels too, with the touch channel (threshold 1) after the others.
        for list in [&kinds.onsets, &kinds.offsets, &kinds.touches] {
            debug_assert!(list.is_sorted_by(|x, y| x.0 <= y.0));
        }
        kinds
    }

    /// Pushes `(t, channel)` for every channel on at a step from pixel `a` to the next
    /// pixel `b` (None at the last step), channels ascending.
    fn push_step(&self, a: f64, b: Option<f64>, t: usize, out: &mut Vec<(usize, usize)>) {
        let crossed = match b {
            Some(b) if a < b => between(&self.onsets, a, b),
            Some(b) if b < a => between(&self.offsets, b, a),
            _ => &[],
        };
        out.extend(crossed.iter().map(|&(_, c)| (t, c)));
        out.extend(
            self.touches
                .iter()
                .filter(|&&(thr, _)| a == thr)
                .map(|&(_, c)| (t, c)),
        );
    }
}

/// The entries of `list` (thresholds ascending) with `lo < thr <= hi`.
fn between(list: &[(f64, usize)], lo: f64, hi: f64) -> &[(f64, usize)] {
    let from = list.partition_point(|&(thr, _)| thr <= lo);
    let to = list.partition_point(|&(thr, _)| thr <= hi);
    &list[from..to.max(from)]
}

/// The input encoding of sequential MNIST (the tutorial's flags `n_in`, `crs_thr`, `ext_time`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmnistEncoding {
    /// Channels of the threshold-crossing encoding, cue included (80). Ignored by the analog
    /// variant, which has one channel (the original sets `n_in = 1` there).
    pub n_in: usize,
    /// Threshold-crossing spikes (true) or the analog pixel value on one channel (false).
    pub crs_thr: bool,
    /// Steps per pixel (1).
    pub ext_time: usize,
}

impl Default for SmnistEncoding {
    /// The tutorial's defaults: 80 channels, threshold crossing, one step per pixel.
    fn default() -> Self {
        SmnistEncoding {
            n_in: 80,
            crs_thr: true,
            ext_time: 1,
        }
    }
}

/// An encoded batch: the input and the digit of each element.
#[derive(Clone, Debug, PartialEq)]
pub struct SmnistBatch {
    /// `[B, n_steps, n_channels]` input.
    pub input: InputBatch,
    /// Digit (0-9) of each element.
    pub labels: Vec<usize>,
}

impl SmnistEncoding {
    /// Checks the parameters: `ext_time >= 1`; with threshold crossing an even `n_in >= 4`.
    pub fn validate(&self) -> Result<(), TaskError> {
        if self.ext_time == 0 {
            return Err(TaskError::InvalidParam {
                task: TASK,
                name: "ext_time",
                message: "must be >= 1 (steps per pixel)".into(),
            });
        }
        if self.crs_thr {
            channel_layout(self.n_in)?;
        }
        Ok(())
    }

    /// Input channels: `n_in` with threshold crossing, 1 for the analog variant.
    pub fn n_channels(&self) -> usize {
        if self.crs_thr {
            self.n_in
        } else {
            1
        }
    }

    /// Steps of the appended cue: `2 * 28 * ext_time` with threshold crossing, 0 for analog.
    pub fn cue_steps(&self) -> usize {
        if self.crs_thr {
            CUE_ROWS * IMAGE_COLS * self.ext_time
        } else {
            0
        }
    }

    /// Steps of one element: `784 * ext_time` plus the cue (840 for the tutorial).
    pub fn n_steps(&self) -> usize {
        IMAGE_PIXELS * self.ext_time + self.cue_steps()
    }

    /// The steps `start..end` whose mean readout gives the logits: with threshold crossing the
    /// last chunk of `downsample(out, (28 + 2) * ext_time)`, i.e. the last
    /// `n_steps / (30 * ext_time)` = 28 steps; analog: the last step (`out[:, -1]`).
    pub fn loss_window(&self) -> (usize, usize) {
        let t = self.n_steps();
        if self.crs_thr {
            let chunks = READOUT_CHUNKS * self.ext_time;
            debug_assert_eq!(
                t % chunks,
                0,
                "840 * ext_time splits into 30 * ext_time chunks"
            );
            (t - t / chunks, t)
        } else {
            (t - 1, t)
        }
    }

    /// The thresholds `linspace(0, 1, n_in / 2)` of the threshold-crossing encoding.
    pub fn thresholds(&self) -> Vec<f64> {
        thresholds(self.n_in / 2)
    }

    /// The events of one image given as `[0, 1]` float32 pixels (784 of them).
    pub fn encode_pixels(&self, pixels: &[f32]) -> Result<Vec<Event>, TaskError> {
        self.validate()?;
        if pixels.len() != IMAGE_PIXELS {
            return Err(TaskError::Shape {
                task: TASK,
                what: "image",
                got: vec![pixels.len()],
                expected: vec![IMAGE_PIXELS],
            });
        }
        let repeated: Vec<f32> = pixels
            .iter()
            .flat_map(|&p| std::iter::repeat_n(p, self.ext_time))
            .collect();
        let events = if self.crs_thr {
            threshold_crossings(&repeated, self.n_in, self.cue_steps())?
                .into_iter()
                .map(|(t, c)| Event {
                    t: t as u32,
                    channel: c as u16,
                    value: 1.0,
                })
                .collect()
        } else {
            repeated
                .iter()
                .enumerate()
                .filter(|(_, &p)| p != 0.0)
                .map(|(t, &p)| Event {
                    t: t as u32,
                    channel: 0,
                    value: p,
                })
                .collect()
        };
        Ok(events)
    }

    /// The events of one image of pixel bytes (784 of them), converted by [`pixel_value`].
    pub fn encode_image(&self, image: &[u8]) -> Result<Vec<Event>, TaskError> {
        let px: Vec<f32> = image.iter().map(|&p| pixel_value(p)).collect();
        self.encode_pixels(&px)
    }

    /// Encodes images of pixel bytes into a batch of `n_steps` x `n_channels` (images in
    /// parallel, elements in order).
    pub fn encode_batch(&self, images: &[&[u8]]) -> Result<InputBatch, TaskError> {
        self.batch_of(images, |image| self.encode_image(image))
    }

    /// Encodes images given as `[0, 1]` float32 pixels.
    pub fn encode_batch_f32(&self, images: &[&[f32]]) -> Result<InputBatch, TaskError> {
        self.batch_of(images, |image| self.encode_pixels(image))
    }

    fn batch_of<T: Sync>(
        &self,
        images: &[T],
        encode: impl Fn(&T) -> Result<Vec<Event>, TaskError> + Sync + Send,
    ) -> Result<InputBatch, TaskError> {
        let mut encoded: Vec<Vec<Event>> =
            images.par_iter().map(encode).collect::<Result<_, _>>()?;
        let mut batch = InputBatch::new(self.n_steps(), self.n_channels());
        batch
            .push_elements(&mut encoded)
            .expect("events lie inside n_steps x n_channels");
        Ok(batch)
    }

    /// Encodes a batch drawn from a data split, with its labels.
    pub fn encode(&self, batch: &Batch) -> Result<SmnistBatch, TaskError> {
        Ok(SmnistBatch {
            input: self.encode_batch(&batch.images())?,
            labels: batch.labels.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_values_match_tensorflow() {
        assert_eq!(f64::from(pixel_value(85)), 0.3333333432674408);
        assert_eq!(f64::from(pixel_value(170)), 0.6666666865348816);
        assert_eq!(pixel_value(255), 1.0);
        assert_eq!(pixel_value(0), 0.0);
        // Correctly rounded f32 division gives the same constant.
        assert_eq!((1.0f64 / 255.0) as f32, 1.0f32 / 255.0);
    }

    #[test]
    fn thresholds_are_numpy_linspace() {
        let t = thresholds(40);
        assert_eq!(t.len(), 40);
        assert_eq!(t[0], 0.0);
        assert_eq!(t[39], 1.0);
        // 13/39 in float64 is below the float32 pixel 85/255, 26/39 below 170/255.
        assert_eq!(t[13], 13.0 * (1.0 / 39.0));
        assert!(t[13] < f64::from(pixel_value(85)));
        assert!(t[26] < f64::from(pixel_value(170)));
    }

    /// `numpy.linspace(0, 1, 40)` as printed by NumPy 2.4.6 (`.view(uint64)`).
    #[test]
    fn thresholds_are_bit_identical_to_numpy() {
        #[rustfmt::skip]
        const NUMPY: [u64; 40] = [
            0x0000000000000000, 0x3f9a41a41a41a41a, 0x3faa41a41a41a41a, 0x3fb3b13b13b13b14,
            0x3fba41a41a41a41a, 0x3fc0690690690690, 0x3fc3b13b13b13b14, 0x3fc6f96f96f96f97,
            0x3fca41a41a41a41a, 0x3fcd89d89d89d89d, 0x3fd0690690690690, 0x3fd20d20d20d20d2,
            0x3fd3b13b13b13b14, 0x3fd5555555555555, 0x3fd6f96f96f96f97, 0x3fd89d89d89d89d8,
            0x3fda41a41a41a41a, 0x3fdbe5be5be5be5c, 0x3fdd89d89d89d89d, 0x3fdf2df2df2df2df,
            0x3fe0690690690690, 0x3fe13b13b13b13b1, 0x3fe20d20d20d20d2, 0x3fe2df2df2df2df3,
            0x3fe3b13b13b13b14, 0x3fe4834834834834, 0x3fe5555555555555, 0x3fe6276276276276,
            0x3fe6f96f96f96f97, 0x3fe7cb7cb7cb7cb8, 0x3fe89d89d89d89d8, 0x3fe96f96f96f96f9,
            0x3fea41a41a41a41a, 0x3feb13b13b13b13b, 0x3febe5be5be5be5c, 0x3fecb7cb7cb7cb7c,
            0x3fed89d89d89d89d, 0x3fee5be5be5be5be, 0x3fef2df2df2df2df, 0x3ff0000000000000,
        ];
        let got: Vec<u64> = thresholds(40).iter().map(|t| t.to_bits()).collect();
        assert_eq!(got, NUMPY);
    }

    /// The definition, channel by channel: what `threshold_crossings` must give.
    fn crossings_channel_by_channel(pixels: &[f32], n_in: usize) -> Vec<(usize, usize)> {
        let chans = channel_layout(n_in).unwrap();
        let y: Vec<f64> = pixels.iter().map(|&p| f64::from(p)).collect();
        let mut out = Vec::new();
        for t in 0..y.len() {
            let (a, b) = (y[t], y.get(t + 1).copied());
            for (c, ch) in chans.iter().enumerate() {
                let on = match (*ch, b) {
                    (Channel::Onset(thr), Some(b)) => a < thr && b >= thr,
                    (Channel::Offset(thr), Some(b)) => a >= thr && b < thr,
                    (Channel::Touch(thr), _) => a == thr,
                    _ => false,
                };
                if on {
                    out.push((t, c));
                }
            }
        }
        out
    }

    proptest::proptest! {
        /// Pixels as bytes, with runs (equal neighbours) and the thresholds themselves (in
        /// float32, as pixels are), against the definition for layouts of 4 to 120 channels.
        #[test]
        fn crossings_follow_their_definition(
            half in 2usize..=60,
            picks in proptest::collection::vec((0u8..4, proptest::num::u8::ANY), 0..200),
        ) {
            let n_in = 2 * half;
            let thr = thresholds(half);
            let mut pixels = Vec::new();
            for (kind, x) in picks {
                let p = match kind {
                    0 => pixel_value(x),
                    1 => thr[usize::from(x) % half] as f32,
                    2 => pixels.last().copied().unwrap_or(0.0),
                    _ => [0.0, 1.0][usize::from(x) % 2],
                };
                pixels.push(p);
            }
            let got = threshold_crossings(&pixels, n_in, 3).unwrap();
            let mut want = crossings_channel_by_channel(&pixels, n_in);
            want.extend((0..3).map(|s| (pixels.len() + s, n_in - 1)));
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn layout_of_80_channels() {
        let chans = channel_layout(80).unwrap();
        assert_eq!(chans.len(), 80);
        assert_eq!(chans[0], Channel::Onset(0.0));
        assert_eq!(chans[77], Channel::Offset(38.0 * (1.0 / 39.0)));
        assert_eq!(chans[78], Channel::Touch(1.0));
        assert_eq!(chans[79], Channel::Cue);
        assert!(channel_layout(81).is_err());
        assert!(channel_layout(2).is_err());
        assert_eq!(channel_layout(4).unwrap().len(), 4);
    }

    #[test]
    fn windows() {
        let e = SmnistEncoding::default();
        assert_eq!((e.n_steps(), e.loss_window()), (840, (812, 840)));
        let e3 = SmnistEncoding { ext_time: 3, ..e };
        assert_eq!((e3.n_steps(), e3.loss_window()), (2520, (2492, 2520)));
        let a = SmnistEncoding {
            crs_thr: false,
            ext_time: 2,
            ..e
        };
        assert_eq!(
            (a.n_channels(), a.n_steps(), a.loss_window()),
            (1, 1568, (1567, 1568))
        );
    }
}
