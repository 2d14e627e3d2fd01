//! The PNG overlay of an image's attributions: the image in gray, attributions on top (red
//! where a pixel raises the explained output, blue where it lowers it, opacity by magnitude),
//! scaled up so that each pixel is visible.

use std::path::Path;

use anyhow::{Context, Result};

/// Pixels of the output per input pixel (a 28 × 28 digit becomes 224 × 224).
const SCALE: u32 = 8;

/// An image row's layout: height, width, channels (channels last).
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    h: usize,
    w: usize,
    c: usize,
}

impl Grid {
    /// Values per image.
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }
}

/// The layout of `[h, w]` or `[h, w, c]` (c ≤ 4) rows; `None` for other shapes.
pub fn grid(shape: &[usize]) -> Option<Grid> {
    match *shape {
        [h, w] if h > 1 && w > 1 => Some(Grid { h, w, c: 1 }),
        [h, w, c] if h > 1 && w > 1 && c <= 4 => Some(Grid { h, w, c }),
        _ => None,
    }
}

/// Writes the overlay of `attributions` (same layout as `pixels`) on `pixels` to `path`.
pub fn write(path: &Path, g: Grid, pixels: &[f32], attributions: &[f32]) -> Result<()> {
    let brightest = pixels.iter().copied().fold(0f32, f32::max).max(1e-6);
    let strongest = attributions.iter().map(|a| a.abs()).fold(0f32, f32::max).max(1e-12);
    let mut img = image::RgbImage::new(g.w as u32 * SCALE, g.h as u32 * SCALE);
    for y in 0..g.h {
        for x in 0..g.w {
            let at = (y * g.w + x) * g.c;
            let gray = pixels[at..at + g.c].iter().sum::<f32>() / (g.c as f32 * brightest);
            let heat = attributions[at..at + g.c].iter().sum::<f32>() / (g.c as f32 * strongest);
            let base = 0.35 * gray.clamp(0.0, 1.0);
            let alpha = heat.abs().clamp(0.0, 1.0).sqrt();
            let tint = if heat >= 0.0 { [1.0, 0.1, 0.1] } else { [0.1, 0.3, 1.0] };
            let rgb = tint.map(|t| ((base * (1.0 - alpha) + t * alpha) * 255.0).round() as u8);
            for dy in 0..SCALE {
                for dx in 0..SCALE {
                    img.put_pixel(x as u32 * SCALE + dx, y as u32 * SCALE + dy, image::Rgb(rgb));
                }
            }
        }
    }
    img.save(path).with_context(|| format!("writing {}", path.display()))
}
