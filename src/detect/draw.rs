//! Annotated images: detection boxes and labels drawn on the original image, with a built-in
//! 5x7 bitmap font (digits, letters shown upper-case, a few signs), no font files.

use super::Detection;
use image::{Rgb, RgbImage};

/// Box colours, one per class (cycled).
const COLORS: [[u8; 3]; 6] = [
    [255, 255, 0],
    [0, 255, 255],
    [255, 0, 255],
    [0, 255, 0],
    [255, 128, 0],
    [0, 128, 255],
];

/// Rows of a 5x7 glyph, the leftmost pixel in bit 4.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, color: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(color));
    }
}

/// Writes `text` with its top-left corner at `(x, y)`: black glyphs on a `bg` band.
pub fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, bg: [u8; 3]) {
    let n = s.chars().count() as i64;
    for yy in y..y + 9 {
        for xx in x..x + n * 6 + 1 {
            put(img, xx, yy, bg);
        }
    }
    for (i, c) in s.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    put(
                        img,
                        x + 1 + i as i64 * 6 + col,
                        y + 1 + row as i64,
                        [0, 0, 0],
                    );
                }
            }
        }
    }
}

/// Draws each detection's `[x y w h]` box (1-based, 2 pixels wide) and its label
/// (`name score`) on `img`; `name(class)` gives the class names.
pub fn annotate(img: &mut RgbImage, dets: &[Detection], name: impl Fn(usize) -> String) {
    for d in dets {
        let color = COLORS[d.class % COLORS.len()];
        let x1 = d.bbox[0] as i64 - 1;
        let y1 = d.bbox[1] as i64 - 1;
        let x2 = x1 + d.bbox[2] as i64 - 1;
        let y2 = y1 + d.bbox[3] as i64 - 1;
        for t in 0..2 {
            for x in x1..=x2 {
                put(img, x, y1 + t, color);
                put(img, x, y2 - t, color);
            }
            for y in y1..=y2 {
                put(img, x1 + t, y, color);
                put(img, x2 - t, y, color);
            }
        }
        let label = format!("{} {:.2}", name(d.class), d.score);
        let ty = if y1 >= 9 { y1 - 9 } else { y1 + 2 };
        text(img, x1, ty, &label, color);
    }
}

/// The image file at `path` with `dets` drawn on it, as PNG bytes.
pub fn annotated_png(
    path: &std::path::Path,
    dets: &[Detection],
    name: impl Fn(usize) -> String,
) -> Result<Vec<u8>, crate::data::DataError> {
    let err = |msg: String| crate::data::DataError::Image {
        path: path.display().to_string(),
        msg,
    };
    let mut img = image::open(path)
        .map_err(|e| err(format!("not a readable image: {e}")))?
        .to_rgb8();
    annotate(&mut img, dets, name);
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| err(format!("encoding the annotated PNG: {e}")))?;
    Ok(bytes)
}
