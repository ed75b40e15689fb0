//! PNG figures: the store-recall monitor figure, the sMNIST figure and learning curves.
//!
//! Drawn with `plotters` into a bitmap; the image format follows the file extension (use
//! `.png`). Text uses DejaVu Sans, embedded in the binary (`assets/DejaVuSans.ttf`, license in
//! `assets/DejaVuSans-LICENSE.txt`), so nothing depends on the fonts of the machine.
//!
//! The functions take the data of one batch element and return an error, never panic, for data
//! of inconsistent shapes; degenerate values (no spike, constant or non-finite curves, a single
//! step) still give a figure.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use ndarray::{Array2, ArrayView2};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use crate::error::PlotError;
use crate::tasks::store_recall::input_groups;

/// The font family name the embedded font is registered under (plotters' default family).
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn data_err(what: &'static str, message: String) -> PlotError {
    PlotError::Data { what, message }
}

/// Maps a drawing error to [`PlotError::Draw`] for `path`.
fn draw_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Registers the embedded font once per process.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| plotters::style::register_font(FONT, style, FONT_BYTES).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Up to `max` indices out of `0..n`, evenly spread, as `numpy.linspace(0, n - 1, k, dtype=int)`.
pub fn linspace_select(n: usize, max: usize) -> Vec<usize> {
    let k = n.min(max);
    match k {
        0 => Vec::new(),
        1 => vec![0],
        _ => (0..k).map(|i| i * (n - 1) / (k - 1)).collect(),
    }
}

/// `(min, max)` of the finite values, or `None` when there is none.
fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A drawable axis range around `range`: widened when empty or constant, padded by `pad` of its
/// width otherwise.
fn axis_range(range: Option<(f64, f64)>, pad: f64) -> Range<f64> {
    match range {
        None => 0.0..1.0,
        Some((lo, hi)) => {
            let width = hi - lo;
            let scale = lo.abs().max(hi.abs());
            if width <= 1e-9 * scale.max(1e-30) {
                let d = if scale > 0.0 { 0.05 * scale } else { 0.5 };
                (lo - d)..(hi + d)
            } else {
                (lo - pad * width)..(hi + pad * width)
            }
        }
    }
}

/// Population variance of the finite values of a column (0 without any).
fn variance(column: ndarray::ArrayView1<f32>) -> f64 {
    let vals: Vec<f64> = column
        .iter()
        .map(|&v| f64::from(v))
        .filter(|v| v.is_finite())
        .collect();
    if vals.is_empty() {
        return 0.0;
    }
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64
}

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Chart of one panel with the common look (light grid, left label area of `left` px).
fn panel<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    x: Range<f64>,
    y: Range<f64>,
    left: u32,
    bottom: u32,
    path: &Path,
) -> Result<Chart<'a, 'b>, PlotError> {
    ChartBuilder::on(area)
        .margin_top(6)
        .margin_right(14)
        .x_label_area_size(bottom)
        .y_label_area_size(left)
        .build_cartesian_2d(x, y)
        .map_err(draw_err(path))
}

/// Draws a spike raster of the selected columns of `data` (`[T, N]`, non-zero = spike): row `k`
/// of the plot (from the bottom) shows column `sel[k]`, coloured by `color(column)`.
fn draw_raster(
    chart: &mut Chart,
    data: ArrayView2<f32>,
    sel: &[usize],
    color: impl Fn(usize) -> RGBColor,
    path: &Path,
) -> Result<(), PlotError> {
    let mut lines = Vec::new();
    for (k, &n) in sel.iter().enumerate() {
        let style = color(n).stroke_width(1);
        for (t, &v) in data.column(n).iter().enumerate() {
            if v != 0.0 {
                let x = t as f64 + 0.5;
                lines.push(PathElement::new(
                    vec![(x, k as f64 + 0.1), (x, k as f64 + 0.9)],
                    style,
                ));
            }
        }
    }
    chart.draw_series(lines).map_err(draw_err(path))?;
    Ok(())
}

/// The common mesh: grid lines in light grey, tick labels of 12 px; x tick labels only where
/// `x_desc` is given (the bottom panel), as the original hides them on the upper panels.
fn draw_mesh(
    chart: &mut Chart,
    x_desc: Option<&str>,
    y_fmt: &dyn Fn(&f64) -> String,
    n_y_labels: usize,
    path: &Path,
) -> Result<(), PlotError> {
    let x_fmt = |x: &f64| format!("{x:.0}");
    let no_fmt = |_: &f64| String::new();
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(BLACK.mix(0.15))
        .light_line_style(TRANSPARENT)
        .label_style(font(12.0))
        .axis_desc_style(font(14.0))
        .y_labels(n_y_labels)
        .y_label_formatter(y_fmt)
        .x_labels(8);
    if let Some(d) = x_desc {
        mesh.x_desc(d).x_label_formatter(&x_fmt);
    } else {
        mesh.x_label_formatter(&no_fmt);
    }
    mesh.draw().map_err(draw_err(path))
}

/// Writes a panel's name vertically at the left edge of the figure, centred on its plot area
/// (plotters' own `y_desc` is misplaced with the embedded-font text renderer).
fn draw_y_title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    title: &str,
    path: &Path,
) -> Result<(), PlotError> {
    let (_, y_pixels) = chart.plotting_area().get_pixel_range();
    let y = (y_pixels.start + y_pixels.end) / 2;
    root.draw(&Text::new(
        title.to_string(),
        (14, y),
        font(14.0)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(|e| PlotError::Draw {
        path: path.to_path_buf(),
        message: format!("{e:?}"),
    })
}

fn check_rows(what: &'static str, rows: usize, expected: usize) -> Result<(), PlotError> {
    if rows != expected {
        return Err(data_err(
            what,
            format!("has {rows} time steps, the input has {expected}"),
        ));
    }
    Ok(())
}

/// The data of the store-recall monitor figure, for one batch element.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreRecallMonitor {
    /// Input spikes `[T, n_in]` (non-zero = spike).
    pub input: Array2<f32>,
    /// Hidden spikes `[T, N]`.
    pub z: Array2<f32>,
    /// Thresholds `[T, N]` (the cell's `A`).
    pub thr: Array2<f32>,
    /// Softmax of the readout per step `[T, O]` (O >= 2).
    pub out_softmax: Array2<f32>,
    /// Softmax of the readout averaged per character `[seq_len, O]`.
    pub char_softmax: Array2<f32>,
    /// Target per character (only the recall characters are drawn).
    pub target_nums: Vec<u8>,
    /// True at the recall characters.
    pub recall_mask: Vec<bool>,
    /// Steps per character.
    pub tau_char: usize,
    /// Number of threshold curves to draw, the most variable first (the tutorial draws n_con).
    pub n_thr_curves: usize,
}

/// Most input / hidden neurons drawn in a raster of the store-recall figure.
pub const STORE_RECALL_MAX_RASTER: usize = 20;

/// Draws the store-recall monitor figure of the tutorial (4 stacked panels): input raster with
/// the value 0 / value 1 / store / recall bands, hidden raster, output (green target and blue
/// network answer per recall character, purple softmax of class 1 per step), and the
/// thresholds of the most variable neurons.
pub fn plot_store_recall(path: &Path, m: &StoreRecallMonitor) -> Result<(), PlotError> {
    ensure_font()?;
    let n_t = m.input.nrows();
    if n_t == 0 {
        return Err(data_err("input", "has no time step".into()));
    }
    check_rows("z", m.z.nrows(), n_t)?;
    check_rows("thr", m.thr.nrows(), n_t)?;
    check_rows("out_softmax", m.out_softmax.nrows(), n_t)?;
    if m.out_softmax.ncols() < 2 || m.char_softmax.ncols() != m.out_softmax.ncols() {
        return Err(data_err(
            "out_softmax / char_softmax",
            format!(
                "need the same number (>= 2) of classes, got {} and {}",
                m.out_softmax.ncols(),
                m.char_softmax.ncols()
            ),
        ));
    }
    let seq_len = m.char_softmax.nrows();
    if m.target_nums.len() != seq_len || m.recall_mask.len() != seq_len {
        return Err(data_err(
            "target_nums / recall_mask",
            format!(
                "lengths {} and {} differ from char_softmax's {seq_len} characters",
                m.target_nums.len(),
                m.recall_mask.len()
            ),
        ));
    }
    if m.tau_char == 0 {
        return Err(data_err("tau_char", "must be at least 1".into()));
    }

    let (width, height) = (900u32, 860u32);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let areas = root.split_by_breakpoints(
        [] as [u32; 0],
        [height * 24 / 100, height * 47 / 100, height * 72 / 100],
    );
    let x_range = 0.0..n_t as f64;
    let left = 95;
    let no_labels = |_: &f64| String::new();
    let int_labels = |y: &f64| format!("{y:.0}");

    // (a) Input raster with the four symbol bands.
    {
        let n_in = m.input.ncols();
        let sel = linspace_select(n_in, STORE_RECALL_MAX_RASTER);
        let n_rows = sel.len().max(1) as f64;
        let mut chart = panel(&areas[0], x_range.clone(), 0.0..n_rows, left, 8, path)?;
        draw_mesh(&mut chart, None, &no_labels, 2, path)?;
        draw_y_title(&root, &chart, "Input", path)?;
        let colors = [RED, BLUE, YELLOW, GREEN];
        let names = ["Value 0", "Value 1", "Store", "Recall"];
        if n_in > 0 {
            for (g, group) in input_groups(n_in).iter().enumerate() {
                let rows: Vec<usize> = (0..sel.len())
                    .filter(|&k| group.contains(&sel[k]))
                    .collect();
                let (Some(&lo), Some(&hi)) = (rows.first(), rows.last()) else {
                    continue;
                };
                let (y0, y1) = (lo as f64, hi as f64 + 1.0);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(0.0, y0), (n_t as f64, y1)],
                        colors[g].mix(0.15).filled(),
                    )))
                    .map_err(draw_err(path))?;
                let (px, py) = chart.backend_coord(&(0.0, 0.5 * (y0 + y1)));
                root.draw(&Text::new(
                    names[g],
                    (px - 8, py),
                    font(12.0).pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(draw_err(path))?;
            }
        }
        draw_raster(&mut chart, m.input.view(), &sel, |_| BLACK, path)?;
    }

    // (b) Hidden raster.
    {
        let sel = linspace_select(m.z.ncols(), STORE_RECALL_MAX_RASTER);
        let n_rows = sel.len().max(1) as f64;
        let mut chart = panel(&areas[1], x_range.clone(), 0.0..n_rows, left, 8, path)?;
        draw_mesh(&mut chart, None, &int_labels, 3, path)?;
        draw_y_title(&root, &chart, "Hidden", path)?;
        draw_raster(&mut chart, m.z.view(), &sel, |_| BLACK, path)?;
    }

    // (c) Output: targets, answers per recall character, softmax of class 1 per step.
    {
        let mut chart = panel(&areas[2], x_range.clone(), -0.3..1.1, left, 8, path)?;
        // Grid and labels at 0, 0.5 and 1 only, as the original's set_yticks([0, 0.5, 1]).
        let mut mesh = chart.configure_mesh();
        mesh.disable_y_mesh()
            .bold_line_style(BLACK.mix(0.15))
            .light_line_style(TRANSPARENT)
            .label_style(font(12.0))
            .y_labels(0)
            .x_labels(8)
            .x_label_formatter(&|_: &f64| String::new());
        mesh.draw().map_err(draw_err(path))?;
        for (y, label) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, y), (n_t as f64, y)],
                    BLACK.mix(0.15),
                )))
                .map_err(draw_err(path))?;
            let (px, py) = chart.backend_coord(&(0.0, y));
            root.draw(&Text::new(
                label,
                (px - 6, py),
                font(12.0).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(draw_err(path))?;
        }
        draw_y_title(&root, &chart, "Output", path)?;

        let tau = m.tau_char as f64;
        let segment = |i: usize, y: f64, color: RGBColor| {
            PathElement::new(
                vec![(i as f64 * tau, y), ((i + 1) as f64 * tau, y)],
                color.stroke_width(3),
            )
        };
        let recalls: Vec<usize> = (0..seq_len).filter(|&i| m.recall_mask[i]).collect();
        chart
            .draw_series(
                recalls
                    .iter()
                    .map(|&i| segment(i, f64::from(m.target_nums[i]), GREEN)),
            )
            .map_err(draw_err(path))?;
        chart
            .draw_series(recalls.iter().filter_map(|&i| {
                let s = m.char_softmax.row(i);
                let y = (f64::from(s[1]) - f64::from(s[0]) + 1.0) / 2.0;
                y.is_finite().then(|| segment(i, y, BLUE))
            }))
            .map_err(draw_err(path))?;
        let purple = RGBColor(128, 0, 128);
        let points: Vec<(f64, f64)> = m
            .out_softmax
            .column(1)
            .iter()
            .enumerate()
            .map(|(t, &v)| (t as f64, f64::from(v)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points, purple.mix(0.7).stroke_width(1)))
            .map_err(draw_err(path))?;

        // Legend in one row at the bottom centre, as the original's ncol=3 legend.
        let entries = [("Target", GREEN), ("Output", BLUE), ("softmax", purple)];
        let (x0, y0) = chart.backend_coord(&(0.0, -0.3));
        let (x1, _) = chart.backend_coord(&(n_t as f64, -0.3));
        let entry_w = 95;
        let total_w = entry_w * entries.len() as i32;
        let start = (x0 + x1) / 2 - total_w / 2;
        let y = y0 - 12;
        root.draw(&Rectangle::new(
            [(start - 6, y - 10), (start + total_w, y + 10)],
            WHITE.mix(0.85).filled(),
        ))
        .map_err(draw_err(path))?;
        for (k, (name, color)) in entries.iter().enumerate() {
            let x = start + k as i32 * entry_w;
            root.draw(&PathElement::new(
                vec![(x, y), (x + 22, y)],
                color.stroke_width(3),
            ))
            .map_err(draw_err(path))?;
            root.draw(&Text::new(
                *name,
                (x + 28, y),
                font(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(draw_err(path))?;
        }
    }

    // (d) Thresholds of the most variable neurons.
    {
        let n = m.thr.ncols();
        let mut order: Vec<(f64, usize)> = (0..n).map(|j| (variance(m.thr.column(j)), j)).collect();
        // Descending variance; ties keep numpy's reversed stable argsort (larger index first).
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        let chosen: Vec<usize> = order.iter().take(m.n_thr_curves).map(|&(_, j)| j).collect();
        let y_range = axis_range(
            finite_range(chosen.iter().flat_map(|&j| {
                m.thr
                    .column(j)
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect::<Vec<_>>()
            })),
            0.05,
        );
        let mut chart = panel(&areas[3], x_range, y_range, left, 45, path)?;
        let y_fmt = |y: &f64| format!("{y:.3}");
        draw_mesh(&mut chart, Some("Time in ms"), &y_fmt, 4, path)?;
        draw_y_title(&root, &chart, "Threshold", path)?;
        for &j in &chosen {
            let points: Vec<(f64, f64)> = m
                .thr
                .column(j)
                .iter()
                .enumerate()
                .map(|(t, &v)| (t as f64, f64::from(v)))
                .filter(|(_, v)| v.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(points, RED.mix(0.4).stroke_width(1)))
                .map_err(draw_err(path))?;
        }
    }

    root.present().map_err(draw_err(path))
}

/// The data of the sequential-MNIST figure of the tutorial, for one batch element.
#[derive(Clone, Debug, PartialEq)]
pub struct SmnistMonitor {
    /// Input spikes `[T, n_in]` (non-zero = spike).
    pub input: Array2<f32>,
    /// Spikes of the LIF ("regular", R) neurons `[T, n_lif]`.
    pub z_lif: Array2<f32>,
    /// Spikes of the ALIF ("adaptive", A) neurons `[T, n_alif]`.
    pub z_alif: Array2<f32>,
    /// Thresholds of the ALIF neurons `[T, n_alif]`.
    pub thr_alif: Array2<f32>,
    /// Softmax of the readout per step `[T, n_classes]`.
    pub out_softmax: Array2<f32>,
    /// The label of the image.
    pub target: u8,
    /// The first `n_inhibitory_lif` LIF neurons are drawn in red (inhibitory, as the tutorial's
    /// `int(N * (1 - proportion_excitatory))`); 0 draws all in black.
    pub n_inhibitory_lif: usize,
    /// Most neurons drawn per raster (the tutorial uses 300).
    pub max_raster: usize,
}

/// Draws the sMNIST figure of the tutorial (5 stacked panels): input raster, LIF raster
/// (inhibitory in red), ALIF raster, the ALIF thresholds that rise well above the others (max
/// above 1.5 times the mean max; all when none does), and the output softmax over time as a
/// heat map (viridis, 0 to 1), titled with the target.
pub fn plot_smnist(path: &Path, m: &SmnistMonitor) -> Result<(), PlotError> {
    ensure_font()?;
    let n_t = m.input.nrows();
    if n_t == 0 {
        return Err(data_err("input", "has no time step".into()));
    }
    check_rows("z_lif", m.z_lif.nrows(), n_t)?;
    check_rows("z_alif", m.z_alif.nrows(), n_t)?;
    check_rows("thr_alif", m.thr_alif.nrows(), n_t)?;
    check_rows("out_softmax", m.out_softmax.nrows(), n_t)?;

    let (width, height) = (900u32, 1000u32);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let (title_area, body) = root.split_vertically(30);
    title_area
        .draw(&Text::new(
            format!("Target: {}", m.target),
            (width as i32 / 2, 16),
            font(16.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(draw_err(path))?;
    let h = height - 30;
    let areas = body.split_by_breakpoints(
        [] as [u32; 0],
        [h * 20 / 100, h * 40 / 100, h * 60 / 100, h * 78 / 100],
    );
    let x_range = 0.0..n_t as f64;
    let left = 80;
    let int_labels = |y: &f64| format!("{y:.0}");
    let max_raster = m.max_raster.max(1);

    let rasters: [(&str, ArrayView2<f32>, usize); 3] = [
        ("Input", m.input.view(), 0),
        ("R", m.z_lif.view(), m.n_inhibitory_lif),
        ("A", m.z_alif.view(), 0),
    ];
    for (k, (name, data, n_inh)) in rasters.into_iter().enumerate() {
        let sel = linspace_select(data.ncols(), max_raster);
        let n_rows = sel.len().max(1) as f64;
        let mut chart = panel(&areas[k], x_range.clone(), 0.0..n_rows, left, 8, path)?;
        draw_mesh(&mut chart, None, &int_labels, 3, path)?;
        draw_y_title(&root, &chart, name, path)?;
        let red = RED;
        draw_raster(
            &mut chart,
            data,
            &sel,
            |n| if n < n_inh { red } else { BLACK },
            path,
        )?;
    }

    // Thresholds of A.
    {
        let n = m.thr_alif.ncols();
        let max_per: Vec<Option<f64>> = (0..n)
            .map(|j| finite_range(m.thr_alif.column(j).iter().map(|&v| f64::from(v))).map(|r| r.1))
            .collect();
        let finite_max: Vec<f64> = max_per.iter().flatten().copied().collect();
        let mean_max = finite_max.iter().sum::<f64>() / finite_max.len().max(1) as f64;
        let mut chosen: Vec<usize> = (0..n)
            .filter(|&j| max_per[j].is_some_and(|v| v > 1.5 * mean_max))
            .collect();
        if chosen.is_empty() {
            chosen = (0..n).collect();
        }
        let y_range = axis_range(
            finite_range(chosen.iter().flat_map(|&j| {
                m.thr_alif
                    .column(j)
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect::<Vec<_>>()
            })),
            0.05,
        );
        let mut chart = panel(&areas[3], x_range.clone(), y_range, left, 8, path)?;
        let y_fmt = |y: &f64| format!("{y:.2}");
        draw_mesh(&mut chart, None, &y_fmt, 3, path)?;
        draw_y_title(&root, &chart, "thresholds of A", path)?;
        for &j in &chosen {
            let points: Vec<(f64, f64)> = m
                .thr_alif
                .column(j)
                .iter()
                .enumerate()
                .map(|(t, &v)| (t as f64, f64::from(v)))
                .filter(|(_, v)| v.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(points, RED.mix(0.5).stroke_width(1)))
                .map_err(draw_err(path))?;
        }
    }

    // Output softmax as a heat map.
    {
        let n_classes = m.out_softmax.ncols();
        let mut chart = panel(
            &areas[4],
            x_range,
            0.0..n_classes.max(1) as f64,
            left,
            45,
            path,
        )?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh()
            .label_style(font(12.0))
            .axis_desc_style(font(14.0))
            .x_desc("time in ms")
            .y_labels(0)
            .x_labels(8)
            .x_label_formatter(&|x: &f64| format!("{x:.0}"));
        mesh.draw().map_err(draw_err(path))?;
        // Class labels at the centre of every other row (the original's yticks 0, 2, 4, 6, 8).
        for c in (0..n_classes).step_by(2) {
            let (px, py) = chart.backend_coord(&(0.0, c as f64 + 0.5));
            root.draw(&Text::new(
                c.to_string(),
                (px - 6, py),
                font(12.0).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(draw_err(path))?;
        }
        draw_y_title(&root, &chart, "output Y", path)?;
        let cells = m.out_softmax.indexed_iter().map(|((t, c), &v)| {
            let v = if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let color = ViridisRGB.get_color(v);
            Rectangle::new(
                [(t as f64, c as f64), (t as f64 + 1.0, c as f64 + 1.0)],
                color.filled(),
            )
        });
        chart.draw_series(cells).map_err(draw_err(path))?;
    }

    root.present().map_err(draw_err(path))
}

/// One named curve of [`plot_learning_curve`]: `(name, points (x, y))`.
pub type Curve<'a> = (&'a str, &'a [(f64, f64)]);

/// Draws curves (e.g. recall error and loss against the iteration) with a legend. Non-finite
/// points are skipped; empty series give empty axes.
pub fn plot_learning_curve(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[Curve],
) -> Result<(), PlotError> {
    ensure_font()?;
    let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
    let all = || series.iter().flat_map(|(_, s)| s.iter().filter(finite));
    let x_range = axis_range(finite_range(all().map(|p| p.0)), 0.0);
    let y_range = axis_range(finite_range(all().map(|p| p.1)), 0.05);

    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, font(18.0))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)
        .map_err(draw_err(path))?;
    let x_fmt = |x: &f64| format!("{x}");
    let y_fmt = |y: &f64| format!("{y:.3}");
    chart
        .configure_mesh()
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(TRANSPARENT)
        .label_style(font(12.0))
        .axis_desc_style(font(14.0))
        .x_desc(x_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()
        .map_err(draw_err(path))?;
    for (k, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                points.iter().filter(finite).copied(),
                style,
            ))
            .map_err(draw_err(path))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(font(13.0))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(draw_err(path))?;
    }
    root.present().map_err(draw_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::store_recall::{generate, StoreRecallParams};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.len() > 1000,
            "{}: {} bytes",
            path.display(),
            bytes.len()
        );
        assert_eq!(bytes[..8], PNG_SIGNATURE, "{}", path.display());
    }

    /// A plausible monitor: generated input, random hidden spikes with ALIF-like thresholds,
    /// and a readout that leans towards the stored value.
    pub(crate) fn realistic_store_recall(seed: u64) -> StoreRecallMonitor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let p = StoreRecallParams::default();
        let batch = generate(&mut rng, 1, &p).unwrap();
        let n_t = p.n_steps();
        let n = 20;
        let mut z = Array2::zeros((n_t, n));
        let mut thr = Array2::zeros((n_t, n));
        let decay = (-1.0f32 / 1200.0).exp();
        let mut b = vec![0.0f32; n];
        for t in 0..n_t {
            for j in 0..n {
                let rate = 0.01 + 0.02 * (j % 3) as f64;
                if rng.gen::<f64>() < rate {
                    z[[t, j]] = 1.0;
                }
                b[j] = decay * b[j] + (1.0 - decay) * z[[t, j]];
                let beta = if j >= 10 { 1.7 } else { 0.0 };
                thr[[t, j]] = 0.01 + beta * b[j];
            }
        }
        let mut out = Array2::zeros((n_t, 2));
        let mut memory = 0.5f32;
        let mut p1 = 0.5f32;
        for t in 0..n_t {
            let c = t / p.tau_char;
            if batch.input_nums[[0, c]] == p.store_symbol() {
                memory = f32::from(batch.input_nums[[0, c + 1]]);
            }
            let goal = 0.5 + 0.7 * (memory - 0.5) + 0.1 * (rng.gen::<f32>() - 0.5);
            p1 += 0.02 * (goal - p1);
            out[[t, 0]] = 1.0 - p1;
            out[[t, 1]] = p1;
        }
        let mut chars = vec![0.0f32; p.seq_len * 2];
        lsnn_core::downsample(out.as_slice().unwrap(), 2, p.seq_len, &mut chars).unwrap();
        let char_softmax = Array2::from_shape_vec((p.seq_len, 2), chars).unwrap();
        StoreRecallMonitor {
            input: batch.input.dense_element(0),
            z,
            thr,
            out_softmax: out,
            char_softmax,
            target_nums: batch.target_nums.row(0).to_vec(),
            recall_mask: batch.recall_mask.row(0).to_vec(),
            tau_char: p.tau_char,
            n_thr_curves: 10,
        }
    }

    fn degenerate_store_recall(n_t: usize) -> StoreRecallMonitor {
        StoreRecallMonitor {
            input: Array2::zeros((n_t, 100)),
            z: Array2::zeros((n_t, 20)),
            thr: Array2::from_elem((n_t, 20), 0.01),
            out_softmax: Array2::from_elem((n_t, 2), 0.5),
            char_softmax: Array2::from_elem((1, 2), 0.5),
            target_nums: vec![1],
            recall_mask: vec![true],
            tau_char: n_t.max(1),
            n_thr_curves: 10,
        }
    }

    #[test]
    fn linspace_selection_matches_numpy() {
        assert_eq!(linspace_select(0, 20), Vec::<usize>::new());
        assert_eq!(linspace_select(1, 20), vec![0]);
        assert_eq!(linspace_select(5, 20), vec![0, 1, 2, 3, 4]);
        // numpy.linspace(0, 99, 20, dtype=int)
        assert_eq!(
            linspace_select(100, 20),
            vec![0, 5, 10, 15, 20, 26, 31, 36, 41, 46, 52, 57, 62, 67, 72, 78, 83, 88, 93, 99]
        );
    }

    #[test]
    fn store_recall_figure_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sr.png");
        plot_store_recall(&path, &realistic_store_recall(1)).unwrap();
        assert_png(&path);
    }

    #[test]
    fn store_recall_figure_survives_degenerate_data() {
        let dir = tempfile::tempdir().unwrap();
        for (k, n_t) in [1usize, 2, 50].into_iter().enumerate() {
            let path = dir.path().join(format!("d{k}.png"));
            plot_store_recall(&path, &degenerate_store_recall(n_t)).unwrap();
            assert_png(&path);
        }
        // No neuron at all, NaN outputs and thresholds, no recall.
        let mut m = degenerate_store_recall(10);
        m.input = Array2::zeros((10, 0));
        m.z = Array2::zeros((10, 0));
        m.thr = Array2::zeros((10, 0));
        m.out_softmax.fill(f32::NAN);
        m.char_softmax.fill(f32::NAN);
        m.recall_mask = vec![false];
        let path = dir.path().join("empty.png");
        plot_store_recall(&path, &m).unwrap();
        assert_png(&path);
        let mut m = degenerate_store_recall(10);
        m.thr.fill(f32::NAN);
        m.thr[[3, 2]] = f32::INFINITY;
        m.n_thr_curves = 100;
        plot_store_recall(&path, &m).unwrap();
        // Few inputs: some groups have no selected neuron.
        let mut m = degenerate_store_recall(10);
        m.input = Array2::ones((10, 3));
        plot_store_recall(&path, &m).unwrap();
    }

    #[test]
    fn store_recall_figure_rejects_inconsistent_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let good = degenerate_store_recall(10);
        let mut cases = Vec::new();
        let mut m = good.clone();
        m.z = Array2::zeros((9, 20));
        cases.push(m);
        let mut m = good.clone();
        m.out_softmax = Array2::zeros((10, 1));
        m.char_softmax = Array2::zeros((1, 1));
        cases.push(m);
        let mut m = good.clone();
        m.recall_mask = vec![];
        cases.push(m);
        let mut m = good.clone();
        m.tau_char = 0;
        cases.push(m);
        cases.push(degenerate_store_recall(0));
        for m in cases {
            assert!(matches!(
                plot_store_recall(&path, &m),
                Err(PlotError::Data { .. })
            ));
        }
        let missing = dir.path().join("no/such/dir/x.png");
        assert!(matches!(
            plot_store_recall(&missing, &good),
            Err(PlotError::Draw { .. })
        ));
    }

    fn realistic_smnist(seed: u64, n_t: usize) -> SmnistMonitor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spikes = |rng: &mut ChaCha8Rng, n: usize, rate: f64| {
            Array2::from_shape_fn((n_t, n), |_| f32::from(u8::from(rng.gen::<f64>() < rate)))
        };
        let input = spikes(&mut rng, 80, 0.02);
        let z_lif = spikes(&mut rng, 120, 0.01);
        let z_alif = spikes(&mut rng, 100, 0.01);
        let mut thr = Array2::from_elem((n_t, 100), 0.01f32);
        for j in 0..100 {
            let mut b = 0.0f32;
            for t in 0..n_t {
                b = 0.998 * b + 0.002 * z_alif[[t, j]];
                thr[[t, j]] = 0.01 + 1.8 * b * (1.0 + (j % 7) as f32);
            }
        }
        let mut out = Array2::zeros((n_t, 10));
        for t in 0..n_t {
            let logits: Vec<f32> = (0..10)
                .map(|c| {
                    if c == 3 {
                        t as f32 / n_t as f32 * 4.0
                    } else {
                        rng.gen::<f32>()
                    }
                })
                .collect();
            let sum: f32 = logits.iter().map(|l| l.exp()).sum();
            for c in 0..10 {
                out[[t, c]] = logits[c].exp() / sum;
            }
        }
        SmnistMonitor {
            input,
            z_lif,
            z_alif,
            thr_alif: thr,
            out_softmax: out,
            target: 3,
            n_inhibitory_lif: 55,
            max_raster: 300,
        }
    }

    #[test]
    fn smnist_figure_is_a_png_and_survives_degenerate_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smnist.png");
        plot_smnist(&path, &realistic_smnist(2, 840)).unwrap();
        assert_png(&path);
        for n_t in [1, 3] {
            let m = SmnistMonitor {
                input: Array2::zeros((n_t, 80)),
                z_lif: Array2::zeros((n_t, 120)),
                z_alif: Array2::zeros((n_t, 0)),
                thr_alif: Array2::zeros((n_t, 0)),
                out_softmax: Array2::from_elem((n_t, 10), f32::NAN),
                target: 0,
                n_inhibitory_lif: 0,
                max_raster: 0,
            };
            let path = dir.path().join(format!("smnist{n_t}.png"));
            plot_smnist(&path, &m).unwrap();
            assert_png(&path);
        }
        let mut m = realistic_smnist(3, 20);
        m.thr_alif = Array2::from_elem((20, 100), 0.01);
        plot_smnist(&path, &m).unwrap();
        m.out_softmax = Array2::zeros((19, 10));
        assert!(matches!(
            plot_smnist(&path, &m),
            Err(PlotError::Data { .. })
        ));
    }

    #[test]
    fn learning_curve_is_a_png_and_survives_degenerate_data() {
        let dir = tempfile::tempdir().unwrap();
        let err: Vec<(f64, f64)> = (0..200)
            .map(|i| (i as f64, 0.5 * (-(i as f64) / 50.0).exp()))
            .collect();
        let loss: Vec<(f64, f64)> = (0..200)
            .map(|i| (i as f64, 0.7 * (-(i as f64) / 80.0).exp() + 0.05))
            .collect();
        let path = dir.path().join("curve.png");
        plot_learning_curve(
            &path,
            "Store-recall",
            "iteration",
            &[("recall error", &err), ("loss", &loss)],
        )
        .unwrap();
        assert_png(&path);

        let single = [(3.0, 0.25)];
        let with_nan = [
            (0.0, f64::NAN),
            (1.0, 1.0),
            (f64::INFINITY, 2.0),
            (2.0, 1.0),
        ];
        let cases: Vec<Vec<Curve>> = vec![
            vec![],
            vec![("empty", &[])],
            vec![("one point", &single)],
            vec![("nan", &with_nan)],
        ];
        for (k, series) in cases.iter().enumerate() {
            let path = dir.path().join(format!("c{k}.png"));
            plot_learning_curve(&path, "", "", series).unwrap();
            assert_png(&path);
        }
    }

    /// Writes sample figures for a person to look at:
    /// `LSNN_PLOT_SAMPLES=/tmp cargo test -p lsnn-host write_sample_figures -- --ignored`.
    #[test]
    #[ignore = "writes sample figures into $LSNN_PLOT_SAMPLES (default /tmp)"]
    fn write_sample_figures() {
        let dir = std::env::var_os("LSNN_PLOT_SAMPLES").map_or_else(
            || std::path::PathBuf::from("/tmp"),
            std::path::PathBuf::from,
        );
        plot_store_recall(
            &dir.join("store_recall_sample.png"),
            &realistic_store_recall(11),
        )
        .unwrap();
        plot_smnist(&dir.join("smnist_sample.png"), &realistic_smnist(12, 840)).unwrap();
        let err: Vec<(f64, f64)> = (0..200)
            .map(|i| (i as f64, 0.5 * (-(i as f64) / 50.0).exp()))
            .collect();
        plot_learning_curve(
            &dir.join("learning_curve_sample.png"),
            "Store-recall",
            "iteration",
            &[("recall error", &err)],
        )
        .unwrap();
    }
}
