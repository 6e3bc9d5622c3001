//! MNIST in the IDX format (raw or gzip), the 512-image sample shipped in
//! `data/mnist-sample/`, and the plaintext-trained linear classifier shipped in
//! `data/mnist-linear.safetensors`.
//!
//! IDX: a big-endian magic `0x0000_08NN` (`0x08` = u8 data, `NN` = number of
//! dimensions), then `NN` big-endian u32 dimensions, then the bytes. Images are
//! `0x00000803` (n x rows x cols), labels `0x00000801` (n). Gzip is detected by
//! its magic bytes `1f 8b`, not by the file name. Every malformed input is an
//! [`Error::Format`] (or [`Error::Io`] for files that cannot be read), never a
//! panic, and nothing is allocated for a size a header declares before the
//! bytes are known to be there.
//!
//! The full data set is at `../shared/data/mnist` for developers;
//! `scripts/fetch-mnist.sh DIR` downloads and verifies it on a fresh machine.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest IDX payload accepted (after decompression), in bytes: 1 GiB. The
/// MNIST training images are 47 MB; the cap only stops a bad header or a gzip
/// bomb from exhausting memory.
pub const MAX_IDX_BYTES: usize = 1 << 30;

/// Mean of the MNIST training pixels scaled to [0, 1], used by
/// [`MnistImages::normalized`].
pub const MNIST_MEAN: f32 = 0.1307;

/// Standard deviation of the MNIST training pixels scaled to [0, 1], used by
/// [`MnistImages::normalized`].
pub const MNIST_STD: f32 = 0.3081;

/// Number of classes (digits 0..=9); every label is below this.
pub const NUM_CLASSES: usize = 10;

const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

const SAMPLE_IMAGES: &[u8] =
    include_bytes!("../../data/mnist-sample/t10k-images-512-idx3-ubyte.gz");
const SAMPLE_LABELS: &[u8] =
    include_bytes!("../../data/mnist-sample/t10k-labels-512-idx1-ubyte.gz");
const LINEAR_CLASSIFIER: &[u8] = include_bytes!("../../data/mnist-linear.safetensors");

/// MNIST images: `n` x `rows` x `cols` u8 pixels (0 = background, 255 = ink),
/// row-major, image after image: pixel `(i, r, c)` is
/// `pixels[(i * rows + r) * cols + c]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistImages {
    /// Number of images.
    pub n: usize,
    /// Rows per image (28 for MNIST).
    pub rows: usize,
    /// Columns per image (28 for MNIST).
    pub cols: usize,
    /// `n * rows * cols` pixels, row-major.
    pub pixels: Vec<u8>,
}

impl MnistImages {
    /// Pixels per image, `rows * cols` (784 for MNIST).
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// Pixels normalised the usual way, `(p / 255 - 0.1307) / 0.3081`
    /// ([`MNIST_MEAN`], [`MNIST_STD`]), as f32, row-major `n` x `rows * cols`
    /// (one image per row). Values lie in about [-0.424, 2.821].
    pub fn normalized(&self) -> Vec<f32> {
        self.pixels
            .iter()
            .map(|&p| (f32::from(p) / 255.0 - MNIST_MEAN) / MNIST_STD)
            .collect()
    }

    /// [`MnistImages::normalized`] widened to f64 (what parties encode as
    /// fixed point).
    pub fn normalized_f64(&self) -> Vec<f64> {
        self.normalized().iter().map(|&v| v as f64).collect()
    }

    /// The first `count` images, copied.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `count > n`.
    pub fn take(&self, count: usize) -> Result<MnistImages> {
        if count > self.n {
            return Err(Error::shape(
                "MnistImages::take",
                format!("asked for {count} images, only {} available", self.n),
            ));
        }
        Ok(MnistImages {
            n: count,
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels[..count * self.pixels_per_image()].to_vec(),
        })
    }
}

/// A labelled MNIST split: `images.n == labels.len()`, every label in 0..=9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistSplit {
    /// The images.
    pub images: MnistImages,
    /// One label (digit 0..=9) per image.
    pub labels: Vec<u8>,
}

impl MnistSplit {
    /// The first `count` images and their labels, copied.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `count > images.n`.
    pub fn take(&self, count: usize) -> Result<MnistSplit> {
        let images = self.images.take(count)?;
        Ok(MnistSplit {
            images,
            labels: self.labels[..count].to_vec(),
        })
    }
}

/// Which standard MNIST split [`load_split`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// 60000 training images: `train-images-idx3-ubyte[.gz]`,
    /// `train-labels-idx1-ubyte[.gz]`.
    Train,
    /// 10000 test images: `t10k-images-idx3-ubyte[.gz]`,
    /// `t10k-labels-idx1-ubyte[.gz]`.
    Test,
}

impl Split {
    /// The standard (uncompressed) file names: (images, labels).
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    }
}

fn format_err(what: &str, detail: impl Into<String>) -> Error {
    Error::Format {
        what: what.to_string(),
        detail: detail.into(),
    }
}

/// The payload of `bytes`: gunzipped if it starts with the gzip magic
/// `1f 8b`, as is otherwise. At most [`MAX_IDX_BYTES`] are decompressed.
fn decompress<'a>(bytes: &'a [u8], what: &str) -> Result<Cow<'a, [u8]>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_IDX_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format_err(what, format!("bad gzip data: {e}")))?;
    if out.len() > MAX_IDX_BYTES {
        return Err(format_err(
            what,
            format!("decompresses to more than {MAX_IDX_BYTES} bytes"),
        ));
    }
    Ok(Cow::Owned(out))
}

/// Checks the IDX header of `data` (already decompressed) against `magic`
/// and returns the dimensions and the payload, whose length is checked to be
/// exactly the product of the dimensions.
fn parse_idx<'a>(data: &'a [u8], magic: u32, what: &str) -> Result<(Vec<usize>, &'a [u8])> {
    let be32 = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    if data.len() < 4 {
        return Err(format_err(
            what,
            format!("{} bytes, shorter than the 4-byte IDX magic", data.len()),
        ));
    }
    let got = be32(0);
    if got != magic {
        return Err(format_err(
            what,
            format!("IDX magic is {got:#010x}, expected {magic:#010x}"),
        ));
    }
    let ndims = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims;
    if data.len() < header_len {
        return Err(format_err(
            what,
            format!(
                "{} bytes, shorter than the {header_len}-byte IDX header",
                data.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndims).map(|d| be32(4 + 4 * d) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&total| total <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            format_err(
                what,
                format!("IDX dimensions {dims:?} exceed the {MAX_IDX_BYTES}-byte limit"),
            )
        })?;
    let payload = &data[header_len..];
    if payload.len() != expected {
        return Err(format_err(
            what,
            format!(
                "IDX dimensions {dims:?} need {expected} data bytes, found {}{}",
                payload.len(),
                if payload.len() < expected {
                    " (truncated)"
                } else {
                    " (trailing bytes)"
                }
            ),
        ));
    }
    Ok((dims, payload))
}

/// Parses an IDX3 image file held in memory, raw or gzip (detected by the
/// `1f 8b` magic). `what` names the source in errors.
///
/// # Errors
/// [`Error::Format`] for bad gzip data, a magic other than `0x00000803`, a
/// header or payload shorter or longer than the dimensions say, zero rows or
/// columns, or a size above [`MAX_IDX_BYTES`].
pub fn parse_images(bytes: &[u8], what: &str) -> Result<MnistImages> {
    let data = decompress(bytes, what)?;
    let (dims, payload) = parse_idx(&data, IDX_IMAGES_MAGIC, what)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(format_err(
            what,
            format!("images of {rows} x {cols} pixels"),
        ));
    }
    Ok(MnistImages {
        n,
        rows,
        cols,
        pixels: payload.to_vec(),
    })
}

/// Parses an IDX1 label file held in memory, raw or gzip (detected by the
/// `1f 8b` magic): one u8 digit per image. `what` names the source in errors.
///
/// # Errors
/// [`Error::Format`] for bad gzip data, a magic other than `0x00000801`, a
/// payload length other than the declared count, or a label above 9.
pub fn parse_labels(bytes: &[u8], what: &str) -> Result<Vec<u8>> {
    let data = decompress(bytes, what)?;
    let (_, payload) = parse_idx(&data, IDX_LABELS_MAGIC, what)?;
    if let Some(i) = payload.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
        return Err(format_err(
            what,
            format!("label #{i} is {}, not a digit 0..=9", payload[i]),
        ));
    }
    Ok(payload.to_vec())
}

/// Reads a whole file, refusing files larger than [`MAX_IDX_BYTES`].
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX_IDX_BYTES as u64 {
        return Err(format_err(
            &path.display().to_string(),
            format!("file of {len} bytes exceeds the {MAX_IDX_BYTES}-byte limit"),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Reads an IDX3 image file (raw or gzip), see [`parse_images`].
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Format`] as for
/// [`parse_images`] (naming the path).
pub fn read_images(path: &Path) -> Result<MnistImages> {
    parse_images(&read_file(path)?, &path.display().to_string())
}

/// Reads an IDX1 label file (raw or gzip), see [`parse_labels`].
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Format`] as for
/// [`parse_labels`] (naming the path).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    parse_labels(&read_file(path)?, &path.display().to_string())
}

/// `dir/name.gz` if it exists, else `dir/name` if it exists.
fn find_idx(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    let raw = dir.join(name);
    if gz.is_file() {
        Ok(gz)
    } else if raw.is_file() {
        Ok(raw)
    } else {
        Err(Error::io(
            &gz,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "MNIST file not found: neither {} nor {} exists \
                     (scripts/fetch-mnist.sh DIR downloads MNIST)",
                    gz.display(),
                    raw.display()
                ),
            ),
        ))
    }
}

/// The (images, labels) files of `split` in `dir` (`.gz` names first).
///
/// # Errors
/// [`Error::Io`] naming the missing file if neither name exists.
pub fn split_paths(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf)> {
    let (images_name, labels_name) = split.file_names();
    Ok((find_idx(dir, images_name)?, find_idx(dir, labels_name)?))
}

/// Loads a labelled split from a directory holding the standard MNIST file
/// names (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
/// `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`); the `.gz`
/// name is tried first, then the raw one.
///
/// # Errors
/// [`Error::Io`] naming the missing file if neither name exists or a file
/// cannot be read; [`Error::Format`] for a malformed file or if the label count
/// differs from the image count.
pub fn load_split(dir: &Path, split: Split) -> Result<MnistSplit> {
    let (images_path, labels_path) = split_paths(dir, split)?;
    let images = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    check_counts(images, labels, &dir.display().to_string())
}

fn check_counts(images: MnistImages, labels: Vec<u8>, what: &str) -> Result<MnistSplit> {
    if images.n != labels.len() {
        return Err(format_err(
            what,
            format!("{} images but {} labels", images.n, labels.len()),
        ));
    }
    Ok(MnistSplit { images, labels })
}

/// The small sample shipped in the repository (`data/mnist-sample/`, embedded
/// in the binary): the first 512 images (28 x 28) and labels of the MNIST test
/// split. MNIST is by LeCun, Cortes and Burges, CC BY-SA 3.0.
///
/// # Errors
/// [`Error::Format`] only if the embedded files are corrupt (a build problem).
pub fn embedded_sample() -> Result<MnistSplit> {
    let images = parse_images(SAMPLE_IMAGES, "embedded t10k-images-512-idx3-ubyte.gz")?;
    let labels = parse_labels(SAMPLE_LABELS, "embedded t10k-labels-512-idx1-ubyte.gz")?;
    check_counts(images, labels, "embedded MNIST sample")
}

/// Input width of the shipped linear classifier (28 x 28 pixels).
pub const LINEAR_IN: usize = 784;

/// Reads one f32 tensor of the given shape from a safetensors file.
fn f32_tensor(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    shape: &[usize],
    what: &str,
) -> Result<Vec<f32>> {
    let view = st
        .tensor(name)
        .map_err(|e| format_err(what, format!("tensor `{name}`: {e}")))?;
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(format_err(
            what,
            format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype()),
        ));
    }
    if view.shape() != shape {
        return Err(format_err(
            what,
            format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                view.shape()
            ),
        ));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format_err(
            what,
            format!("tensor `{name}` holds NaN or infinite values"),
        ));
    }
    Ok(values)
}

/// Parses a linear MNIST classifier from safetensors bytes: tensors `weight`
/// (f32, shape [784, 10]) and `bias` (f32, shape [10]), so that the logits of
/// a normalized image `x` (see [`MnistImages::normalized`]) are
/// `x @ weight + bias`. Returns (weight, 784 x 10 row-major; bias, 10).
/// `what` names the source in errors.
///
/// # Errors
/// [`Error::Format`] if the bytes are not safetensors, a tensor is missing,
/// has another dtype or shape, or holds NaN or infinite values.
pub fn parse_linear_classifier(bytes: &[u8], what: &str) -> Result<(Vec<f32>, Vec<f32>)> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format_err(what, format!("not a safetensors file: {e}")))?;
    let weight = f32_tensor(&st, "weight", &[LINEAR_IN, NUM_CLASSES], what)?;
    let bias = f32_tensor(&st, "bias", &[NUM_CLASSES], what)?;
    Ok((weight, bias))
}

/// The shipped linear MNIST classifier (`data/mnist-linear.safetensors`,
/// embedded in the binary; softmax regression trained in plaintext by
/// `examples/train_linear_plain.rs`): (weight, 784 x 10 row-major; bias, 10),
/// f32. Logits of a normalized image `x` are `x @ weight + bias`; the
/// predicted digit is the arg max.
///
/// # Errors
/// [`Error::Format`] only if the embedded file is corrupt (a build problem).
pub fn embedded_linear_classifier() -> Result<(Vec<f32>, Vec<f32>)> {
    parse_linear_classifier(LINEAR_CLASSIFIER, "embedded mnist-linear.safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut b = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [n, rows, cols] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(pixels);
        b
    }

    fn idx_labels(n: u32, labels: &[u8]) -> Vec<u8> {
        let mut b = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn assert_format_err<T: std::fmt::Debug>(r: Result<T>, needle: &str) {
        match r {
            Err(e @ Error::Format { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "`{msg}` does not mention `{needle}`");
            }
            other => panic!("expected a Format error mentioning `{needle}`, got {other:?}"),
        }
    }

    /// A fresh scratch directory under the system temp dir.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spindle-mnist-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn mnist_round_trip_raw_and_gzip() {
        let pixels: Vec<u8> = (0..3 * 2 * 4).map(|i| (i * 11) as u8).collect();
        let raw = idx_images(3, 2, 4, &pixels);
        let labels = [7u8, 0, 9];
        let raw_labels = idx_labels(3, &labels);
        for (img, lab) in [
            (raw.clone(), raw_labels.clone()),
            (gzip(&raw), gzip(&raw_labels)),
        ] {
            let im = parse_images(&img, "test").unwrap();
            assert_eq!((im.n, im.rows, im.cols), (3, 2, 4));
            assert_eq!(im.pixels, pixels);
            assert_eq!(parse_labels(&lab, "test").unwrap(), labels);
        }
        // Concatenated gzip members decode as one stream, like `gzip -dc`.
        let half = raw.len() / 2;
        let mut multi = gzip(&raw[..half]);
        multi.extend(gzip(&raw[half..]));
        assert_eq!(parse_images(&multi, "test").unwrap().pixels, pixels);
        // Zero images is a valid (empty) file.
        assert_eq!(parse_images(&idx_images(0, 28, 28, &[]), "t").unwrap().n, 0);
    }

    #[test]
    fn mnist_malformed_inputs_are_errors() {
        let good = idx_images(2, 2, 2, &[1; 8]);
        assert_format_err(parse_images(&[], "empty"), "shorter");
        assert_format_err(parse_images(&good[..10], "short"), "shorter");
        assert_format_err(parse_images(&good[..good.len() - 1], "t"), "truncated");
        let mut long = good.clone();
        long.push(0);
        assert_format_err(parse_images(&long, "t"), "trailing");
        // Wrong magic: a label file read as images and the other way round.
        assert_format_err(parse_images(&idx_labels(1, &[1]), "t"), "magic");
        assert_format_err(parse_labels(&good, "t"), "magic");
        let mut bad = good.clone();
        bad[2] = 0x09; // i8 data
        assert_format_err(parse_images(&bad, "t"), "magic");
        // Dimensions whose product overflows, or is absurdly large: rejected
        // before anything is allocated.
        assert_format_err(
            parse_images(&idx_images(u32::MAX, u32::MAX, u32::MAX, &[]), "t"),
            "limit",
        );
        assert_format_err(
            parse_images(&idx_images(1 << 31, 28, 28, &[0; 64]), "t"),
            "limit",
        );
        assert_format_err(parse_labels(&idx_labels(u32::MAX, &[]), "t"), "limit");
        assert_format_err(parse_labels(&idx_labels(1000, &[1, 2]), "t"), "truncated");
        assert_format_err(parse_images(&idx_images(2, 0, 5, &[]), "t"), "0 x 5");
        assert_format_err(parse_labels(&idx_labels(2, &[3, 10]), "t"), "label #1");
        // Corrupt and truncated gzip.
        assert_format_err(parse_images(&[0x1f, 0x8b, 1, 2, 3, 4], "t"), "gzip");
        let gz = gzip(&good);
        assert_format_err(parse_images(&gz[..gz.len() - 6], "t"), "gzip");
        let mut flipped = gz.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        assert!(parse_images(&flipped, "t").is_err());
        // Names the source.
        assert_format_err(parse_images(&[], "my-file.idx"), "my-file.idx");
    }

    #[test]
    fn mnist_take_and_normalized() {
        let im = parse_images(&idx_images(3, 1, 2, &[0, 255, 1, 2, 3, 4]), "t").unwrap();
        let t = im.take(2).unwrap();
        assert_eq!((t.n, t.rows, t.cols, t.pixels.len()), (2, 1, 2, 4));
        assert_eq!(im.take(0).unwrap().pixels.len(), 0);
        assert!(matches!(im.take(4), Err(Error::ShapeMismatch { .. })));
        let x = im.normalized();
        assert_eq!(x.len(), 6);
        assert!((x[0] - (-0.1307 / 0.3081)).abs() < 1e-6);
        assert!((x[1] - (1.0 - 0.1307) / 0.3081).abs() < 1e-6);
    }

    #[test]
    fn mnist_load_split_from_dir() {
        let dir = scratch_dir("split");
        let pixels = vec![5u8; 2 * 3 * 3];
        // Test split raw, train split gzipped.
        std::fs::write(
            dir.join("t10k-images-idx3-ubyte"),
            idx_images(2, 3, 3, &pixels),
        )
        .unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_labels(2, &[1, 2])).unwrap();
        std::fs::write(
            dir.join("train-images-idx3-ubyte.gz"),
            gzip(&idx_images(2, 3, 3, &pixels)),
        )
        .unwrap();
        let s = load_split(&dir, Split::Test).unwrap();
        assert_eq!((s.images.n, s.labels.clone()), (2, vec![1, 2]));
        assert_eq!(s.take(1).unwrap().labels, vec![1]);
        // Missing labels: an I/O error naming the file.
        match load_split(&dir, Split::Train) {
            Err(e @ Error::Io { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("train-labels-idx1-ubyte.gz"), "{msg}");
            }
            other => panic!("expected Io error, got {other:?}"),
        }
        // Label count differs from image count.
        std::fs::write(
            dir.join("train-labels-idx1-ubyte.gz"),
            gzip(&idx_labels(3, &[1, 2, 3])),
        )
        .unwrap();
        assert_format_err(load_split(&dir, Split::Train), "2 images but 3 labels");
        // A file that cannot be read as IDX names its path.
        std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), b"nonsense").unwrap();
        assert_format_err(load_split(&dir, Split::Test), "t10k-labels-idx1-ubyte.gz");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            read_images(&dir.join("nope")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn mnist_embedded_sample() {
        let s = embedded_sample().unwrap();
        assert_eq!((s.images.n, s.images.rows, s.images.cols), (512, 28, 28));
        assert_eq!(s.labels.len(), 512);
        assert_eq!(s.labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    }

    /// Accuracy of `x @ weight + bias` on a split.
    fn accuracy(s: &MnistSplit, weight: &[f32], bias: &[f32]) -> f64 {
        let x = s.images.normalized();
        let correct = x
            .chunks_exact(LINEAR_IN)
            .zip(&s.labels)
            .filter(|(row, &label)| {
                let mut logits = bias.to_vec();
                for (xi, wrow) in row.iter().zip(weight.chunks_exact(NUM_CLASSES)) {
                    for (l, w) in logits.iter_mut().zip(wrow) {
                        *l += xi * w;
                    }
                }
                let best = (0..NUM_CLASSES)
                    .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                    .unwrap();
                best == usize::from(label)
            })
            .count();
        correct as f64 / s.labels.len() as f64
    }

    #[test]
    fn mnist_embedded_linear_classifier() {
        let (w, b) = embedded_linear_classifier().unwrap();
        assert_eq!((w.len(), b.len()), (784 * 10, 10));
        let acc = accuracy(&embedded_sample().unwrap(), &w, &b);
        assert!(acc > 0.85, "accuracy on the embedded sample: {acc}");
    }

    #[test]
    fn mnist_linear_classifier_malformed() {
        use safetensors::tensor::TensorView;
        use safetensors::{serialize, Dtype};
        fn st(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
            let views: Vec<_> = tensors
                .iter()
                .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
                .collect();
            serialize(views, &None).unwrap()
        }
        let w = vec![0u8; 784 * 10 * 4];
        let b = vec![0u8; 40];
        let ok = st(&[
            ("weight", Dtype::F32, vec![784, 10], w.clone()),
            ("bias", Dtype::F32, vec![10], b.clone()),
        ]);
        assert!(parse_linear_classifier(&ok, "t").is_ok());
        assert_format_err(parse_linear_classifier(b"garbage!", "t"), "safetensors");
        assert_format_err(
            parse_linear_classifier(&ok[..ok.len() - 4], "t"),
            "safetensors",
        );
        assert_format_err(
            parse_linear_classifier(
                &st(&[("weight", Dtype::F32, vec![784, 10], w.clone())]),
                "t",
            ),
            "bias",
        );
        assert_format_err(
            parse_linear_classifier(
                &st(&[
                    ("weight", Dtype::F32, vec![10, 784], w.clone()),
                    ("bias", Dtype::F32, vec![10], b.clone()),
                ]),
                "t",
            ),
            "shape",
        );
        assert_format_err(
            parse_linear_classifier(
                &st(&[
                    ("weight", Dtype::I32, vec![784, 10], w.clone()),
                    ("bias", Dtype::F32, vec![10], b.clone()),
                ]),
                "t",
            ),
            "dtype",
        );
        let nan = f32::NAN.to_le_bytes().repeat(10);
        assert_format_err(
            parse_linear_classifier(
                &st(&[
                    ("weight", Dtype::F32, vec![784, 10], w),
                    ("bias", Dtype::F32, vec![10], nan),
                ]),
                "t",
            ),
            "NaN",
        );
    }

    /// The real MNIST test split, where available: `$SPINDLE_MNIST_DIR` or
    /// `../shared/data/mnist` next to the crate.
    #[test]
    fn mnist_real_t10k_if_present() {
        let dir = std::env::var_os("SPINDLE_MNIST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"));
        if !dir.is_dir() {
            println!(
                "skipping: no MNIST at {} (set SPINDLE_MNIST_DIR or run scripts/fetch-mnist.sh)",
                dir.display()
            );
            return;
        }
        let s = load_split(&dir, Split::Test).unwrap();
        assert_eq!((s.images.n, s.images.rows, s.images.cols), (10000, 28, 28));
        assert_eq!(s.images.pixels.len(), 10000 * 784);
        assert_eq!(s.labels.len(), 10000);
        assert!(s.labels.iter().all(|&l| l <= 9));
        // The shipped sample is the head of this split.
        assert_eq!(s.take(512).unwrap(), embedded_sample().unwrap());
        let (w, b) = embedded_linear_classifier().unwrap();
        let acc = accuracy(&s, &w, &b);
        println!("shipped linear classifier, MNIST test accuracy: {acc:.4}");
        assert!(acc > 0.9, "test accuracy {acc}");
    }
}
