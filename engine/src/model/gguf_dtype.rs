//! Naming the tensor behind candle's "unknown dtype for tensor N" (N is the type id, not a
//! tensor): a walk over the GGUF header that skips the metadata and reads the tensor
//! directory, run only after candle refused the file.

use std::io::{BufReader, Read};
use std::path::Path;

/// GGML type ids candle reads (F32, F16, Q4_0 … Q8_1, Q2K … Q8K, BF16).
const KNOWN: &[u32] = &[0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30];

/// The first tensor whose type id candle does not know, and that id; `None` when the
/// header cannot be walked or every type is known.
pub(crate) fn unknown_dtype_tensor(path: &Path) -> Option<(String, u32)> {
    let mut r = Reader {
        inner: BufReader::new(std::fs::File::open(path).ok()?),
        wide: true,
    };
    if &r.bytes(4)?[..] != b"GGUF" {
        return None;
    }
    // Version 1 counts and sizes in u32, later versions in u64.
    r.wide = r.u32()? > 1;
    let tensors = r.len()?;
    let entries = r.len()?;
    for _ in 0..entries {
        r.string()?;
        let kind = r.u32()?;
        r.skip_value(kind, 0)?;
    }
    for _ in 0..tensors {
        let name = String::from_utf8_lossy(&r.string()?).into_owned();
        let dims = r.u32()?;
        for _ in 0..dims {
            r.len()?;
        }
        let dtype = r.u32()?;
        r.bytes(8)?;
        if !KNOWN.contains(&dtype) {
            return Some((name, dtype));
        }
    }
    None
}

struct Reader<R> {
    inner: R,
    wide: bool,
}

impl<R: Read> Reader<R> {
    fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        // `take` bounds the read: a length from the file never allocates beyond the file.
        (&mut self.inner)
            .take(n as u64)
            .read_to_end(&mut out)
            .ok()?;
        (out.len() == n).then_some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    fn len(&mut self) -> Option<u64> {
        if self.wide {
            Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
        } else {
            self.u32().map(u64::from)
        }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.len()?).ok()?;
        self.bytes(n)
    }

    /// Skips one metadata value of type `kind` (arrays nest at most a few levels).
    fn skip_value(&mut self, kind: u32, depth: usize) -> Option<()> {
        let size = match kind {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => {
                self.string()?;
                return Some(());
            }
            9 if depth < 4 => {
                let inner = self.u32()?;
                for _ in 0..self.len()? {
                    self.skip_value(inner, depth + 1)?;
                }
                return Some(());
            }
            _ => return None,
        };
        self.bytes(size).map(|_| ())
    }
}
