//! What every chart of the binary shares: the embedded font (text renders on machines
//! without any system font), PNG output, axis bounds, and the check of a `--plot` path
//! made before anything runs. Used by `bench` and `attack`, neither of which may use the
//! other.

use anyhow::{anyhow, bail, Context, Result};
use plotters::style::{register_font, FontStyle};
use std::path::Path;

/// DejaVu Sans (Bitstream Vera licence: assets/fonts/LICENSE-DejaVu.txt).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Registers DejaVu Sans as the charts' "sans-serif".
pub fn use_embedded_font() -> Result<()> {
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded font is not a usable TrueType font"))
}

/// Writes RGB `pixels` of `size` as a PNG (an I/O error in words).
pub fn save_png(path: &Path, pixels: &[u8], size: (u32, u32)) -> Result<()> {
    image::save_buffer_with_format(
        path,
        pixels,
        size.0,
        size.1,
        image::ColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| anyhow!("writing the plot {}: {e}", path.display()))
}

/// Smallest and largest of `values` (positive), (1, 1) for none.
pub fn bounds(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    if min.is_finite() && max > 0.0 {
        (min, max)
    } else {
        (1.0, 1.0)
    }
}

/// Refuses a --plot target that cannot be written before anything runs: a missing
/// directory, a directory, a name that is not .png, or a place that cannot be created.
pub fn check_plot_path(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("{}: no such directory for --plot", dir.display());
        }
    }
    if path.is_dir() {
        bail!("--plot {} is a directory; name a .png file", path.display());
    }
    let png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        bail!(
            "--plot {}: the plot is written as PNG; name a .png file",
            path.display()
        );
    }
    // Opening a FIFO to write would block until someone reads it.
    if path.exists() && !path.is_file() {
        bail!(
            "--plot {} is not a regular file (a FIFO, socket or device)",
            path.display()
        );
    }
    // Probe that the file can be created; a probe that made it removes it again.
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("--plot {} cannot be written", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
