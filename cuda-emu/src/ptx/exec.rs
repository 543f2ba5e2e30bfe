//! The interpreter: runs a kernel's grid on emulated memory, blocks spread over the host's
//! cores (rayon), the threads of a block one after another up to each barrier.
//!
//! Checks, each a kernel fault reported with kernel, block, thread and PTX line:
//! - memory: accesses outside any allocation (out of bounds, use after free, unmapped),
//!   misaligned accesses, reads of global or shared memory nothing wrote, parameter reads
//!   past the parameter buffer;
//! - races: two threads of a block touching a shared or global word between the same two
//!   barriers, one of them writing; two blocks of a launch touching a global word, one
//!   writing (blocks are unordered);
//! - barriers: `bar.sync` reached while other threads of the block exited, or threads
//!   waiting at different `bar.sync` instructions (divergence);
//! - a thread running more than [`WATCHDOG`] instructions (a hang on hardware).

use super::ir::{Kernel, Op, Space, Src, Ty, SPECIAL_REGS};
use super::ops::{self, mask, sext};
use crate::device::heap::{Allocation, Snapshot};
use crate::error::{ILLEGAL_ADDRESS, LAUNCH_FAILED, MISALIGNED_ADDRESS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Instructions one thread may run in one launch.
pub const WATCHDOG: u64 = 1 << 32;
/// Messages kept per launch.
const MAX_MESSAGES: usize = 8;

/// A launch as the interpreter runs it.
#[derive(Clone)]
pub struct Launch {
    pub kernel: Arc<Kernel>,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared: usize,
    /// The parameter buffer, laid out as the kernel's `.param` list.
    pub params: Vec<u8>,
    /// A launch number (1 ..= 2^20 - 1) for the global race tags.
    pub id: u64,
}

/// What went wrong in a launch: the driver's error code and the reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub code: u32,
    pub messages: Vec<String>,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.messages.join("\n"))
    }
}

/// Collects the faults of a launch's blocks (the first few messages; the most severe code).
struct Faults {
    any: AtomicBool,
    list: Mutex<Vec<(u32, String)>>,
}

impl Faults {
    fn report(&self, code: u32, message: String) {
        self.any.store(true, Relaxed);
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() < MAX_MESSAGES {
            l.push((code, message));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Run,
    /// Waiting at the `bar.sync` at this pc.
    Barrier(u32),
    Done,
}

/// Per shared word: the accesses since the last barrier (thread index + 1; READERS for
/// several readers).
#[derive(Clone, Copy, Default)]
struct WordLog {
    epoch: u32,
    writer: u32,
    reader: u32,
}
const READERS: u32 = u32::MAX;

// Global race tags: | launch 20 | write 1 | several 1 | block 24 | thread 10 | epoch 8 |.
const T_EPOCH: u32 = 0;
const T_THREAD: u32 = 8;
const T_BLOCK: u32 = 18;
const T_SEVERAL: u32 = 42;
const T_WRITE: u32 = 43;
const T_LAUNCH: u32 = 44;
/// The block field's value for "readers in several blocks".
const MANY_BLOCKS: u64 = (1 << 24) - 1;

fn field(tag: u64, at: u32, bits: u32) -> u64 {
    (tag >> at) & ((1 << bits) - 1)
}

/// One block's scratch state, reused across the blocks a worker runs.
#[derive(Default)]
struct Scratch {
    regs: Vec<u64>,
    pcs: Vec<u32>,
    state: Vec<State>,
    shared: Vec<u64>,
    shared_init: Vec<bool>,
    log: Vec<WordLog>,
}

/// Host threads for a launch: HELORA_EMU_THREADS, else the available parallelism.
fn workers() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("HELORA_EMU_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Runs a launch to completion; the number of instructions run, or the fault.
pub fn run(l: &Launch, mem: &Snapshot) -> Result<u64, Fault> {
    let k = &*l.kernel;
    let blocks = l.grid.iter().map(|&g| g as u64).product::<u64>();
    let threads = l.block.iter().map(|&b| b as usize).product::<usize>();
    let shared_bytes = k.static_shared + l.dynamic_shared;
    let faults = Faults {
        any: AtomicBool::new(false),
        list: Mutex::new(Vec::new()),
    };
    let count = AtomicU64::new(0);
    let next = AtomicU64::new(0);
    let worker = || {
        let mut s = Scratch::default();
        let mut n = 0u64;
        loop {
            let b = next.fetch_add(1, Relaxed);
            if b >= blocks || faults.any.load(Relaxed) {
                break;
            }
            let bx = (b % l.grid[0] as u64) as u32;
            let by = ((b / l.grid[0] as u64) % l.grid[1] as u64) as u32;
            let bz = (b / (l.grid[0] as u64 * l.grid[1] as u64)) as u32;
            let mut block = Block {
                l,
                k,
                mem,
                ctaid: [bx, by, bz],
                linear: b,
                threads,
                shared_bytes,
                faults: &faults,
                count: 0,
                cache: None,
            };
            block.run(&mut s);
            n += block.count;
        }
        count.fetch_add(n, Relaxed);
    };
    // Blocks spread over the cores (plain threads, not a shared pool: the calling thread
    // only waits, so it cannot pick up unrelated work while it holds the driver's lock).
    let workers = workers()
        .min(usize::try_from(blocks).unwrap_or(usize::MAX))
        .max(1);
    if workers == 1 {
        worker();
    } else {
        std::thread::scope(|sc| {
            for _ in 1..workers {
                sc.spawn(worker);
            }
            worker();
        });
    }
    let list = faults.list.into_inner().unwrap_or_else(|e| e.into_inner());
    if list.is_empty() {
        return Ok(count.into_inner());
    }
    // Memory faults first: they are what the driver would report.
    let code = [ILLEGAL_ADDRESS, MISALIGNED_ADDRESS, LAUNCH_FAILED]
        .into_iter()
        .find(|c| list.iter().any(|(x, _)| x == c))
        .unwrap_or(LAUNCH_FAILED);
    Err(Fault {
        code,
        messages: list.into_iter().map(|(_, m)| m).collect(),
    })
}

struct Block<'a> {
    l: &'a Launch,
    k: &'a Kernel,
    mem: &'a Snapshot,
    ctaid: [u32; 3],
    linear: u64,
    threads: usize,
    shared_bytes: usize,
    faults: &'a Faults,
    count: u64,
    /// The allocation of the last global access.
    cache: Option<&'a Arc<Allocation>>,
}

/// How a thread's run ended.
enum Stop {
    Barrier(u32),
    Done,
    Fault,
}

impl<'a> Block<'a> {
    fn tid(&self, t: usize) -> [u32; 3] {
        let b = self.l.block;
        let t = t as u32;
        [t % b[0], (t / b[0]) % b[1], t / (b[0] * b[1])]
    }

    fn where_(&self, t: usize, line: u32) -> String {
        format!(
            "{}: block {:?} thread {:?}, PTX line {line}",
            self.k.name,
            self.ctaid,
            self.tid(t)
        )
    }

    fn fault(&self, code: u32, t: usize, line: u32, what: String) {
        self.faults
            .report(code, format!("{what} ({})", self.where_(t, line)));
    }

    fn run(&mut self, s: &mut Scratch) {
        let nregs = self.k.nregs;
        let n = self.threads;
        s.regs.clear();
        s.regs.resize(nregs * n, 0);
        s.pcs.clear();
        s.pcs.resize(n, 0);
        s.state.clear();
        s.state.resize(n, State::Run);
        let words = self.shared_bytes.div_ceil(8);
        s.shared.clear();
        s.shared.resize(words, 0xa5a5_a5a5_a5a5_a5a5);
        s.shared_init.clear();
        s.shared_init.resize(self.shared_bytes.div_ceil(4), false);
        s.log.clear();
        s.log.resize(words, WordLog::default());
        for t in 0..n {
            let r = &mut s.regs[t * nregs..(t + 1) * nregs];
            let tid = self.tid(t);
            for d in 0..3 {
                r[d] = tid[d] as u64;
                r[3 + d] = self.l.block[d] as u64;
                r[6 + d] = self.ctaid[d] as u64;
                r[9 + d] = self.l.grid[d] as u64;
            }
        }
        debug_assert!(nregs >= SPECIAL_REGS as usize);
        let mut epoch = 1u32;
        loop {
            for t in 0..n {
                if s.state[t] != State::Run {
                    continue;
                }
                let stop = self.thread(t, epoch, s);
                s.state[t] = match stop {
                    Stop::Barrier(pc) => State::Barrier(pc),
                    Stop::Done => State::Done,
                    Stop::Fault => return,
                };
                if self.faults.any.load(Relaxed) {
                    return;
                }
            }
            let mut at = None;
            let mut waiting = 0usize;
            for (t, st) in s.state.iter().enumerate() {
                if let State::Barrier(pc) = *st {
                    waiting += 1;
                    match at {
                        None => at = Some((t, pc)),
                        Some((t0, pc0)) if pc0 != pc => {
                            let line = |pc: u32| self.k.code[pc as usize].line;
                            self.fault(
                                LAUNCH_FAILED,
                                t,
                                line(pc),
                                format!(
                                    "divergent barrier: threads of one block wait at different bar.sync (thread {:?} at PTX line {})",
                                    self.tid(t0),
                                    line(pc0)
                                ),
                            );
                            return;
                        }
                        _ => {}
                    }
                }
            }
            let Some((t0, pc)) = at else {
                return;
            };
            if waiting < n {
                self.fault(
                    LAUNCH_FAILED,
                    t0,
                    self.k.code[pc as usize].line,
                    format!(
                        "bar.sync reached by {waiting} of {n} threads while the others exited (a barrier in divergent code)"
                    ),
                );
                return;
            }
            for st in s.state.iter_mut() {
                *st = State::Run;
            }
            epoch = epoch.wrapping_add(1);
        }
    }

    /// Runs thread `t` to its next barrier or exit.
    fn thread(&mut self, t: usize, epoch: u32, s: &mut Scratch) -> Stop {
        let k: &'a Kernel = self.k;
        let nregs = k.nregs;
        let code = &k.code;
        let mut pc = s.pcs[t] as usize;
        let mut steps = 0u64;
        let r = &mut s.regs[t * nregs..(t + 1) * nregs];
        let stop = loop {
            let Some(ins) = code.get(pc) else {
                break Stop::Done;
            };
            pc += 1;
            steps += 1;
            if let Some((p, neg)) = ins.guard {
                if (r[p as usize] & 1 != 0) == neg {
                    continue;
                }
            }
            let val = |x: Src, r: &[u64]| match x {
                Src::Reg(i) => r[i as usize],
                Src::Imm(v) => v,
            };
            match ins.op {
                Op::Ld(space, ty) | Op::St(space, ty) => {
                    let store = matches!(ins.op, Op::St(..));
                    let addr = val(ins.a, r).wrapping_add(ins.off as u64);
                    let bytes = ty.bytes();
                    if addr % bytes as u64 != 0 {
                        self.fault(
                            MISALIGNED_ADDRESS,
                            t,
                            ins.line,
                            format!("misaligned {bytes}-byte {space:?} access at {addr:#x}"),
                        );
                        break Stop::Fault;
                    }
                    let v = if store { val(ins.b, r) } else { 0 };
                    let got = match space {
                        Space::Param => self.param(addr, bytes, t, ins.line),
                        Space::Shared => self.shared(
                            addr,
                            bytes,
                            store,
                            v,
                            t,
                            epoch,
                            ins.line,
                            (&mut s.shared, &mut s.shared_init, &mut s.log),
                        ),
                        Space::Global => self.global(addr, bytes, store, v, t, epoch, ins.line),
                    };
                    let Some(loaded) = got else {
                        break Stop::Fault;
                    };
                    if !store {
                        r[ins.d as usize] = extend(ty, loaded);
                    }
                }
                Op::Bra(target) => pc = target as usize,
                Op::BarSync => break Stop::Barrier(pc as u32 - 1),
                Op::Ret => break Stop::Done,
                op => match ops::eval(op, val(ins.a, r), val(ins.b, r), val(ins.c, r)) {
                    Ok(v) => r[ins.d as usize] = v,
                    Err(e) => {
                        self.fault(LAUNCH_FAILED, t, ins.line, e.0.to_string());
                        break Stop::Fault;
                    }
                },
            }
            if steps > WATCHDOG {
                self.fault(
                    LAUNCH_FAILED,
                    t,
                    ins.line,
                    format!("watchdog: over {WATCHDOG} instructions in one thread (a hang?)"),
                );
                break Stop::Fault;
            }
        };
        s.pcs[t] = pc as u32;
        self.count += steps;
        stop
    }

    fn param(&self, addr: u64, bytes: usize, t: usize, line: u32) -> Option<u64> {
        let p = &self.l.params;
        let Some(at) = usize::try_from(addr)
            .ok()
            .filter(|a| a.checked_add(bytes).is_some_and(|e| e <= p.len()))
        else {
            self.fault(
                ILLEGAL_ADDRESS,
                t,
                line,
                format!("parameter read of {bytes} bytes at offset {addr} past the {}-byte parameter buffer", p.len()),
            );
            return None;
        };
        let mut b = [0u8; 8];
        b[..bytes].copy_from_slice(&p[at..at + bytes]);
        Some(u64::from_le_bytes(b))
    }

    #[allow(clippy::too_many_arguments)]
    fn shared(
        &self,
        addr: u64,
        bytes: usize,
        store: bool,
        v: u64,
        t: usize,
        epoch: u32,
        line: u32,
        (shared, init, log): (&mut [u64], &mut [bool], &mut [WordLog]),
    ) -> Option<u64> {
        let Some(off) = usize::try_from(addr)
            .ok()
            .filter(|a| a.checked_add(bytes).is_some_and(|e| e <= self.shared_bytes))
        else {
            self.fault(
                ILLEGAL_ADDRESS,
                t,
                line,
                format!(
                    "shared {} of {bytes} bytes at offset {addr:#x} past the block's {} bytes of shared memory",
                    if store { "write" } else { "read" },
                    self.shared_bytes
                ),
            );
            return None;
        };
        let w = off / 8;
        let me = t as u32 + 1;
        let e = &mut log[w];
        if e.epoch != epoch {
            *e = WordLog {
                epoch,
                writer: 0,
                reader: 0,
            };
        }
        let race = if store {
            let r = (e.writer != 0 && e.writer != me) || (e.reader != 0 && e.reader != me);
            e.writer = me;
            r
        } else {
            let r = e.writer != 0 && e.writer != me;
            e.reader = if e.reader == 0 || e.reader == me {
                me
            } else {
                READERS
            };
            r
        };
        if race {
            self.fault(
                LAUNCH_FAILED,
                t,
                line,
                format!("shared-memory race on bytes [{off}, +8) between two barriers (a missing bar.sync?)"),
            );
            return None;
        }
        let shift = (off % 8) * 8;
        let m = if bytes == 8 {
            u64::MAX
        } else {
            ((1u64 << (bytes * 8)) - 1) << shift
        };
        let (g0, g1) = (off / 4, (off + bytes).div_ceil(4));
        if store {
            shared[w] = (shared[w] & !m) | ((v << shift) & m);
            init[g0..g1].iter_mut().for_each(|x| *x = true);
            Some(0)
        } else {
            if !init[g0..g1].iter().all(|x| *x) {
                self.fault(
                    LAUNCH_FAILED,
                    t,
                    line,
                    format!(
                        "read of uninitialised shared memory at offset {off} (no thread wrote it since the block started: a missing bar.sync before this read?)"
                    ),
                );
                return None;
            }
            Some((shared[w] & m) >> shift)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn global(
        &mut self,
        addr: u64,
        bytes: usize,
        store: bool,
        v: u64,
        t: usize,
        epoch: u32,
        line: u32,
    ) -> Option<u64> {
        let hit = match self.cache {
            Some(a) if addr >= a.base && addr + bytes as u64 <= a.end() => {
                Ok((a, (addr - a.base) as usize))
            }
            _ => self.mem.find(addr, bytes),
        };
        let (a, off) = match hit {
            Ok(x) => x,
            Err(miss) => {
                self.fault(
                    ILLEGAL_ADDRESS,
                    t,
                    line,
                    format!(
                        "invalid global {} of {bytes} bytes at {addr:#x}: {}",
                        if store { "write" } else { "read" },
                        miss.describe(addr, bytes)
                    ),
                );
                return None;
            }
        };
        self.cache = Some(a);
        if let Some(other) = self.race(a, off, store, t, epoch) {
            self.fault(
                LAUNCH_FAILED,
                t,
                line,
                format!(
                    "global-memory race at {addr:#x}: {other} touched it in this launch, one of the two writing, with no barrier between"
                ),
            );
            return None;
        }
        if store {
            a.store(off, bytes, v);
            Some(0)
        } else {
            let (x, init) = a.load(off, bytes);
            if !init {
                self.fault(
                    LAUNCH_FAILED,
                    t,
                    line,
                    format!("read of uninitialised global memory at {addr:#x} ({off} bytes into the {}-byte allocation at {:#x})", a.len, a.base),
                );
                return None;
            }
            Some(x)
        }
    }

    /// Updates the race tag of the word at `off`; who this access conflicts with, if anyone.
    fn race(
        &self,
        a: &Allocation,
        off: usize,
        store: bool,
        t: usize,
        epoch: u32,
    ) -> Option<String> {
        let slot = &a.tags[off / 8];
        let old = slot.load(Relaxed);
        let block = self.linear & MANY_BLOCKS;
        let tag = |write: bool, several: bool, block: u64| -> u64 {
            (self.l.id << T_LAUNCH)
                | (u64::from(write) << T_WRITE)
                | (u64::from(several) << T_SEVERAL)
                | (block << T_BLOCK)
                | ((t as u64) << T_THREAD)
                | (u64::from(epoch & 0xff) << T_EPOCH)
        };
        if field(old, T_LAUNCH, 20) != self.l.id {
            slot.store(tag(store, false, block), Relaxed);
            return None;
        }
        let o_write = field(old, T_WRITE, 1) == 1;
        let o_several = field(old, T_SEVERAL, 1) == 1;
        let o_block = field(old, T_BLOCK, 24);
        let o_thread = field(old, T_THREAD, 10) as usize;
        let o_epoch = field(old, T_EPOCH, 8) as u32;
        let same_block = o_block == block;
        let ordered = same_block && (o_epoch != epoch & 0xff || (o_thread == t && !o_several));
        let who = || {
            if o_block == MANY_BLOCKS {
                "threads of several blocks".to_string()
            } else if same_block {
                format!("thread {:?} of this block", self.tid(o_thread))
            } else {
                format!("block #{o_block}")
            }
        };
        if store {
            if !ordered {
                return Some(who());
            }
            slot.store(tag(true, false, block), Relaxed);
        } else if o_write {
            if !ordered {
                return Some(who());
            }
            slot.store(tag(false, false, block), Relaxed);
        } else if !same_block {
            slot.store(tag(false, true, MANY_BLOCKS), Relaxed);
        } else if o_epoch != epoch & 0xff {
            slot.store(tag(false, false, block), Relaxed);
        } else if o_thread != t {
            slot.store(tag(false, true, block), Relaxed);
        }
        None
    }
}

/// A loaded value in a register: sign-extended for `.s` loads.
fn extend(ty: Ty, v: u64) -> u64 {
    if ty.signed() {
        sext(ty.bits, v) as u64
    } else {
        mask(ty.bits, v)
    }
}
