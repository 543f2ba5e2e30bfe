//! Emulated device memory: allocations of 64-bit words (atomics, so that the blocks of a
//! launch run on several host threads), an initialisation bit per 4-byte granule (reads of
//! memory nothing wrote are reported) and a race tag per 8-byte word (exec.rs).
//!
//! Addresses are never reused: each allocation starts past the previous one and a guard gap
//! of 16 times its size (at least 1 MiB; address space costs nothing), so an access through
//! a stale pointer finds no allocation and is reported as a use after free (the freed ranges
//! are remembered), and one past an allocation's end, even by several times its size (a
//! row offset added to a buffer holding one row), is reported as out of bounds rather than
//! landing in a neighbour.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Device addresses start here (far from host pointers and from 0).
const BASE: u64 = 0x7e00_0000_0000;
/// Unmapped bytes after an allocation of `len` bytes.
fn guard(len: usize) -> u64 {
    (16 * len as u64).max(1 << 20)
}
/// cuMemAlloc's alignment.
pub const ALIGN: u64 = 256;
/// The emulated device's memory.
pub const TOTAL_BYTES: u64 = 80 << 30;

pub struct Allocation {
    pub base: u64,
    pub len: usize,
    words: Box<[AtomicU64]>,
    /// Bit g set: bytes [4g, 4g + 4) were written.
    init: Box<[AtomicU64]>,
    /// Race tags of the last access per word (exec.rs).
    pub(crate) tags: Box<[AtomicU64]>,
}

fn zeroed(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// Poison of memory never written (visible only through the uninitialised-read report).
const POISON: u64 = 0xa5a5_a5a5_a5a5_a5a5;

fn byte_mask(bytes: usize) -> u64 {
    if bytes >= 8 {
        u64::MAX
    } else {
        (1u64 << (bytes * 8)) - 1
    }
}

impl Allocation {
    fn new(base: u64, len: usize) -> Self {
        let words = len.div_ceil(8);
        Allocation {
            base,
            len,
            words: (0..words).map(|_| AtomicU64::new(POISON)).collect(),
            init: zeroed(len.div_ceil(4).div_ceil(64)),
            tags: zeroed(words),
        }
    }

    pub fn end(&self) -> u64 {
        self.base + self.len as u64
    }

    /// Loads `bytes` (1, 2, 4 or 8; `off` aligned to it) little-endian; whether they were all
    /// written before.
    #[inline]
    pub fn load(&self, off: usize, bytes: usize) -> (u64, bool) {
        let w = self.words[off / 8].load(Relaxed);
        let v = (w >> ((off % 8) * 8)) & byte_mask(bytes);
        (v, self.is_init(off, bytes))
    }

    /// Stores the low `bytes` of `v` at `off` (aligned to `bytes`).
    #[inline]
    pub fn store(&self, off: usize, bytes: usize, v: u64) {
        let slot = &self.words[off / 8];
        if bytes == 8 {
            slot.store(v, Relaxed);
        } else {
            let shift = (off % 8) * 8;
            let m = byte_mask(bytes) << shift;
            let bits = (v << shift) & m;
            let mut cur = slot.load(Relaxed);
            while let Err(now) =
                slot.compare_exchange_weak(cur, (cur & !m) | bits, Relaxed, Relaxed)
            {
                cur = now;
            }
        }
        self.mark_init(off, bytes);
    }

    #[inline]
    fn is_init(&self, off: usize, bytes: usize) -> bool {
        let (g0, g1) = (off / 4, (off + bytes).div_ceil(4));
        (g0..g1).all(|g| self.init[g / 64].load(Relaxed) >> (g % 64) & 1 == 1)
    }

    #[inline]
    fn mark_init(&self, off: usize, bytes: usize) {
        let (g0, g1) = (off / 4, (off + bytes).div_ceil(4));
        for g in g0..g1 {
            self.init[g / 64].fetch_or(1 << (g % 64), Relaxed);
        }
    }

    /// Host → device bytes at `off`.
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            let at = off + i;
            // Whole aligned words where possible, bytes at the edges.
            let n = if at.is_multiple_of(8) && data.len() - i >= 8 {
                8
            } else {
                1
            };
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&data[i..i + n]);
            self.store(at, n, u64::from_le_bytes(b));
            i += n;
        }
    }

    /// Device → host bytes from `off`; whether all of them were written before.
    pub fn read_bytes(&self, off: usize, out: &mut [u8]) -> bool {
        let mut init = true;
        let mut i = 0;
        while i < out.len() {
            let at = off + i;
            let n = if at.is_multiple_of(8) && out.len() - i >= 8 {
                8
            } else {
                1
            };
            let (v, ok) = self.load(at, n);
            out[i..i + n].copy_from_slice(&v.to_le_bytes()[..n]);
            init &= ok;
            i += n;
        }
        init
    }

    /// Device → device: copies data and initialisation state (granules nothing wrote stay
    /// uninitialised at the destination).
    pub fn copy_from(&self, dst_off: usize, src: &Allocation, src_off: usize, len: usize) {
        let mut i = 0;
        while i < len {
            let (d, s) = (dst_off + i, src_off + i);
            // Whole words where aligned and written, 4-byte granules where aligned, else
            // bytes; only what was written is copied (and so marked written).
            let n = if d % 8 == 0 && s % 8 == 0 && len - i >= 8 && src.is_init(s, 8) {
                8
            } else if d % 4 == 0 && s % 4 == 0 && len - i >= 4 {
                4
            } else {
                1
            };
            let (v, ok) = src.load(s, n);
            if ok {
                self.store(d, n, v);
            }
            i += n;
        }
    }
}

/// Why an address range is not device memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Miss {
    /// Inside or past an allocation, beyond its end.
    OutOfBounds { base: u64, len: usize },
    /// In memory freed earlier.
    Freed { base: u64, len: usize },
    /// Nowhere near an allocation.
    Unmapped,
}

impl Miss {
    /// A description of `[addr, addr + len)`'s problem.
    pub fn describe(&self, addr: u64, len: usize) -> String {
        match self {
            Miss::OutOfBounds { base, len: size } => {
                let end = base + *size as u64;
                if addr >= end {
                    format!(
                        "{} bytes past the end of the {size}-byte allocation at {base:#x}",
                        addr - end
                    )
                } else {
                    format!(
                        "[{addr:#x}, +{len}) runs {} bytes past the end of the {size}-byte allocation at {base:#x}",
                        addr + len as u64 - end
                    )
                }
            }
            Miss::Freed { base, len } => {
                format!("use after free: in the {len}-byte allocation at {base:#x}, freed earlier")
            }
            Miss::Unmapped => "not device memory".to_string(),
        }
    }
}

/// The allocations at one moment, sorted by address, for lookups without a lock (a launch
/// takes one).
#[derive(Clone, Default)]
pub struct Snapshot {
    allocs: Vec<Arc<Allocation>>,
    freed: Arc<Vec<(u64, usize)>>,
}

impl Snapshot {
    /// The allocation holding `[addr, addr + len)` and the offset of `addr` in it.
    #[inline]
    pub fn find(&self, addr: u64, len: usize) -> Result<(&Arc<Allocation>, usize), Miss> {
        let i = self.allocs.partition_point(|a| a.base <= addr);
        if let Some(a) = i.checked_sub(1).and_then(|i| self.allocs.get(i)) {
            let off = addr - a.base;
            if off
                .checked_add(len as u64)
                .is_some_and(|e| e <= a.len as u64)
            {
                return Ok((a, off as usize));
            }
            if addr < a.end() + guard(a.len) {
                return Err(Miss::OutOfBounds {
                    base: a.base,
                    len: a.len,
                });
            }
        }
        Err(self.classify(addr))
    }

    fn classify(&self, addr: u64) -> Miss {
        let i = self.freed.partition_point(|f| f.0 <= addr);
        match i.checked_sub(1).and_then(|i| self.freed.get(i)) {
            Some(&(base, len)) if addr < base + len as u64 + guard(len) => {
                Miss::Freed { base, len }
            }
            _ => Miss::Unmapped,
        }
    }
}

#[derive(Default)]
pub struct Heap {
    allocs: BTreeMap<u64, Arc<Allocation>>,
    freed: Arc<Vec<(u64, usize)>>,
    next: u64,
    in_use: u64,
    snapshot: Option<Snapshot>,
}

impl Heap {
    pub fn new() -> Self {
        Heap {
            next: BASE,
            ..Default::default()
        }
    }

    pub fn alloc(&mut self, len: usize) -> Option<u64> {
        if len == 0 || self.in_use.checked_add(len as u64)? > TOTAL_BYTES {
            return None;
        }
        let base = self.next;
        self.next = (base + len as u64 + guard(len)).div_ceil(ALIGN) * ALIGN;
        self.allocs
            .insert(base, Arc::new(Allocation::new(base, len)));
        self.in_use += len as u64;
        self.snapshot = None;
        Some(base)
    }

    /// Frees the allocation starting at `ptr`; its size, or why not.
    pub fn free(&mut self, ptr: u64) -> Result<usize, String> {
        match self.allocs.remove(&ptr) {
            Some(a) => {
                self.in_use -= a.len as u64;
                let freed = Arc::make_mut(&mut self.freed);
                let at = freed.partition_point(|f| f.0 < a.base);
                freed.insert(at, (a.base, a.len));
                self.snapshot = None;
                Ok(a.len)
            }
            None => Err(match self.snapshot().find(ptr, 1) {
                Ok((a, off)) => format!(
                    "{ptr:#x} is {off} bytes into the allocation at {:#x}, not its start",
                    a.base
                ),
                Err(m) => m.describe(ptr, 1),
            }),
        }
    }

    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// The allocations now (cached until the next alloc or free).
    pub fn snapshot(&mut self) -> Snapshot {
        if self.snapshot.is_none() {
            self.snapshot = Some(Snapshot {
                allocs: self.allocs.values().cloned().collect(),
                freed: self.freed.clone(),
            });
        }
        self.snapshot.clone().unwrap_or_default()
    }

    /// Clears every race tag (when the launch counter wraps).
    pub fn clear_tags(&self) {
        for a in self.allocs.values() {
            a.tags.iter().for_each(|t| t.store(0, Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_freed_and_unmapped_are_told_apart() {
        let mut h = Heap::new();
        let a = h.alloc(100).expect("alloc");
        let b = h.alloc(8).expect("alloc");
        assert_eq!(a % ALIGN, 0);
        let s = h.snapshot();
        assert!(s.find(a, 100).is_ok());
        assert!(matches!(s.find(a + 96, 8), Err(Miss::OutOfBounds { .. })));
        assert!(matches!(s.find(a + 100, 1), Err(Miss::OutOfBounds { .. })));
        assert!(
            matches!(s.find(a + 1500, 8), Err(Miss::OutOfBounds { .. })),
            "15 sizes past"
        );
        assert!(b > a + 16 * 100, "the guard gap");
        assert!(matches!(s.find(1 << 20, 1), Err(Miss::Unmapped)));
        h.free(b).expect("free");
        assert!(matches!(h.snapshot().find(b, 8), Err(Miss::Freed { .. })));
        assert!(h.free(b).is_err(), "double free");
        assert!(h.free(a + 8).is_err(), "not the start");
        let c = h.alloc(8).expect("alloc");
        assert!(c > b, "addresses are not reused");
    }

    #[test]
    fn init_is_tracked_per_granule_and_copied() {
        let mut h = Heap::new();
        let a = h.alloc(16).expect("alloc");
        let b = h.alloc(16).expect("alloc");
        let s = h.snapshot();
        let (x, _) = s.find(a, 16).expect("x");
        let (y, _) = s.find(b, 16).expect("y");
        assert!(!x.load(0, 8).1);
        x.store(4, 4, 0xdead_beef);
        assert_eq!(x.load(4, 4), (0xdead_beef, true));
        assert!(!x.load(0, 8).1, "half of the word is unwritten");
        x.write_bytes(8, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(x.load(8, 8).0, 0x0807_0605_0403_0201);
        y.copy_from(0, x, 0, 16);
        assert!(!y.load(0, 4).1, "uninitialised stays so");
        assert!(y.load(4, 4).1 && y.load(8, 8).1);
        let mut out = [0u8; 16];
        assert!(!y.read_bytes(0, &mut out));
        assert!(y.read_bytes(8, &mut out[..8]));
    }
}
