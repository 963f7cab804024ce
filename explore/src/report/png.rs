//! One run's timeline as a PNG, for places that show images but not HTML (a pull request
//! comment, a chat message, a CI artifact preview).
//!
//! It is the very chart of the HTML page: `html::timeline_svg` draws it, and `resvg`
//! (pure Rust) rasterises it. Text is set in whatever the system's font directories hold
//! (the chart asks for DejaVu Sans first); on a machine without fonts the chart is still
//! drawn, only without its labels.

use std::sync::{Arc, OnceLock};

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::fontdb::{Database, Family, Query};
use resvg::usvg::{self, Options};

use super::html::{timeline_height, timeline_svg};
use super::model::ExploreReport;

/// Width of [`png`]'s image, pixels.
pub const PNG_WIDTH: u32 = 1200;

/// Narrowest image [`png_sized`] draws: below this the axes' labels overlap the plot.
pub const MIN_WIDTH: u32 = 320;

/// Lowest image [`png_sized`] draws.
pub const MIN_HEIGHT: u32 = 200;

/// Widest and highest image [`png_sized`] draws (a 16k × 16k pixmap is 1 GiB).
pub const MAX_SIDE: u32 = 8192;

/// Why a run's PNG could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    /// The report has no run at that index.
    #[error("run {run} is not in the report, which has {runs} run(s) numbered from 0; pick one of those")]
    NoSuchRun {
        /// The index asked for.
        run: usize,
        /// How many runs the report holds.
        runs: usize,
    },
    /// The requested size is outside what the chart can be drawn at.
    #[error(
        "a {width}x{height} image cannot be drawn; pick a width from {MIN_WIDTH} and a height \
         from {MIN_HEIGHT}, both at most {MAX_SIDE} pixels"
    )]
    Size {
        /// Requested width, pixels.
        width: u32,
        /// Requested height, pixels.
        height: u32,
    },
    /// The chart's SVG did not parse: a bug in the renderer, not in the report.
    #[error("the timeline of run {run} is not valid SVG (a bug in msctl's report renderer)")]
    Svg {
        /// The run being drawn.
        run: usize,
        /// What the SVG parser said.
        #[source]
        source: usvg::Error,
    },
    /// The pixels could not be encoded as PNG.
    #[error("the timeline of run {run} could not be encoded as PNG")]
    Encode {
        /// The run being drawn.
        run: usize,
        /// What the encoder said (its type belongs to a crate `resvg` does not re-export).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The timeline of `report.runs[run]` as PNG bytes, [`PNG_WIDTH`] wide and as high as the
/// run's fault lanes need (the page's chart, pixel for pixel at 1:1).
pub fn png(report: &ExploreReport, run: usize) -> Result<Vec<u8>, PngError> {
    let r = report.runs.get(run).ok_or(PngError::NoSuchRun {
        run,
        runs: report.runs.len(),
    })?;
    png_sized(
        report,
        run,
        PNG_WIDTH,
        timeline_height(r).clamp(MIN_HEIGHT, MAX_SIDE),
    )
}

/// The timeline of `report.runs[run]` as PNG bytes of exactly `width` × `height` pixels;
/// the plot takes the height the fault lanes leave.
pub fn png_sized(
    report: &ExploreReport,
    run: usize,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, PngError> {
    let r = report.runs.get(run).ok_or(PngError::NoSuchRun {
        run,
        runs: report.runs.len(),
    })?;
    if !(MIN_WIDTH..=MAX_SIDE).contains(&width) || !(MIN_HEIGHT..=MAX_SIDE).contains(&height) {
        return Err(PngError::Size { width, height });
    }
    rasterise(
        &timeline_svg(r, width, height),
        system_fonts(),
        run,
        width,
        height,
    )
}

/// The system's fonts, loaded once per process: scanning the font directories takes far
/// longer than drawing a chart.
fn system_fonts() -> Arc<Database> {
    static FONTS: OnceLock<Arc<Database>> = OnceLock::new();
    Arc::clone(FONTS.get_or_init(|| {
        let mut db = Database::new();
        db.load_system_fonts();
        use_any_font_as_fallback(&mut db);
        Arc::new(db)
    }))
}

/// Makes the generic families resolve to a font that is present. usvg falls back to
/// `serif` when none of the chart's families is found, and fontdb's defaults (Times New
/// Roman, Arial) are often missing on Linux: without this, text would silently vanish on a
/// machine that has fonts, just not those.
fn use_any_font_as_fallback(db: &mut Database) {
    let has = |db: &Database, family: Family<'_>| {
        db.query(&Query {
            families: &[family],
            ..Query::default()
        })
        .is_some()
    };
    let fallback = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"]
        .into_iter()
        .find(|name| has(db, Family::Name(name)))
        .map(str::to_owned)
        .or_else(|| {
            // Deterministic whatever the directory order: the alphabetically first family.
            db.faces()
                .filter_map(|face| face.families.first().map(|(name, _)| name.clone()))
                .min()
        });
    let Some(fallback) = fallback else {
        return;
    };
    if !has(db, Family::SansSerif) {
        db.set_sans_serif_family(fallback.clone());
    }
    if !has(db, Family::Serif) {
        db.set_serif_family(fallback);
    }
}

/// Draws `svg` on a white `width` × `height` pixmap and encodes it.
fn rasterise(
    svg: &str,
    fonts: Arc<Database>,
    run: usize,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, PngError> {
    let options = Options {
        font_family: "DejaVu Sans".to_owned(),
        font_size: 11.0,
        fontdb: fonts,
        ..Options::default()
    };
    let tree =
        usvg::Tree::from_str(svg, &options).map_err(|source| PngError::Svg { run, source })?;
    let mut pixmap = Pixmap::new(width, height).ok_or(PngError::Size { width, height })?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    // The SVG is drawn at the requested size already; the scale only guards a mismatch.
    let size = tree.size();
    let transform =
        Transform::from_scale(width as f32 / size.width(), height as f32 / size.height());
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| PngError::Encode {
        run,
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::html::tests::sample_report;

    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

    fn size_of(png: &[u8]) -> (u32, u32) {
        let pixmap = Pixmap::decode_png(png).expect("a decodable PNG");
        (pixmap.width(), pixmap.height())
    }

    #[test]
    fn png_has_the_signature_and_the_documented_size() {
        let report = sample_report();
        for (i, run) in report.runs.iter().enumerate() {
            let bytes = png(&report, i).expect("the run is drawn");
            assert!(bytes.starts_with(SIGNATURE));
            assert_eq!(size_of(&bytes), (PNG_WIDTH, timeline_height(run)));
        }
    }

    #[test]
    fn png_sized_draws_exactly_the_requested_size() {
        let report = sample_report();
        let bytes = png_sized(&report, 1, 640, 380).expect("the run is drawn");
        assert!(bytes.starts_with(SIGNATURE));
        assert_eq!(size_of(&bytes), (640, 380));
        // The header says so too: IHDR's width and height follow the signature.
        assert_eq!(&bytes[16..20], &640u32.to_be_bytes());
        assert_eq!(&bytes[20..24], &380u32.to_be_bytes());
    }

    #[test]
    fn an_unknown_run_or_size_is_refused_with_the_valid_range() {
        let report = sample_report();
        let err = png(&report, 2).expect_err("there are two runs");
        assert!(matches!(err, PngError::NoSuchRun { run: 2, runs: 2 }));
        assert!(err.to_string().contains("2 run(s)"));
        let err = png_sized(&report, 0, 10, 10).expect_err("too small");
        assert!(matches!(
            err,
            PngError::Size {
                width: 10,
                height: 10
            }
        ));
    }

    #[test]
    fn without_fonts_the_chart_is_still_drawn() {
        // A container without any font must still get its chart, just unlabelled.
        let report = sample_report();
        let run = &report.runs[1];
        let svg = timeline_svg(run, 800, 420);
        let bytes = rasterise(&svg, Arc::new(Database::new()), 1, 800, 420).expect("drawn");
        let pixmap = Pixmap::decode_png(&bytes).expect("decodable");
        let coloured = pixmap
            .pixels()
            .iter()
            .filter(|p| p.red() != p.green() || p.green() != p.blue())
            .count();
        assert!(
            coloured > 1000,
            "the bars are drawn ({coloured} coloured pixels)"
        );
    }

    #[test]
    fn text_is_rendered_when_the_system_has_fonts() {
        // The labels are what make the chart readable; losing them silently (a missing
        // font family) must not go unnoticed.
        let fonts = system_fonts();
        if fonts.is_empty() {
            return;
        }
        let report = sample_report();
        let svg = timeline_svg(&report.runs[1], 800, 420);
        let with = rasterise(&svg, fonts, 1, 800, 420).expect("drawn");
        let without = rasterise(&svg, Arc::new(Database::new()), 1, 800, 420).expect("drawn");
        let dark = |png: &[u8]| {
            Pixmap::decode_png(png)
                .expect("decodable")
                .pixels()
                .iter()
                .filter(|p| u32::from(p.red()) + u32::from(p.green()) + u32::from(p.blue()) < 300)
                .count()
        };
        let (with, without) = (dark(&with), dark(&without));
        assert!(
            with > without + 1500,
            "labels add dark pixels: {with} vs {without}"
        );
    }

    #[test]
    fn every_timeline_is_valid_svg() {
        let mut report = sample_report();
        report.runs[0].timeline.clear();
        report.runs[0].faults.clear();
        report.runs[1].timeline[3].p50_ms = f64::NAN;
        let options = Options::default();
        for run in &report.runs {
            for (w, h) in [(MIN_WIDTH, MIN_HEIGHT), (1200, timeline_height(run))] {
                let svg = timeline_svg(run, w, h);
                usvg::Tree::from_str(&svg, &options).expect("valid SVG");
            }
        }
    }
}
