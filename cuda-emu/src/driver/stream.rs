//! Streams: queues of work that runs when something waits for it (a synchronisation, an
//! event wait, a blocking copy, the context's end), never when it is queued, in the order the
//! driver guarantees: each stream in order; an event wait after the work before the event's
//! record; the legacy default stream (handle 0) after all work queued before on blocking
//! streams, and blocking streams' work after the default stream's.
//!
//! Stream capture (graph.rs builds on it): while a stream captures, work queued on it goes
//! into the capture instead of running, and the capture-mode rules of cuStreamBeginCapture
//! refuse "potentially unsafe" calls (allocation, synchronisation, synchronous copies) with
//! CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and invalidate the capture, as the driver does.

use super::{api, put, Driver, CAPTURE_MODE};
use crate::device::heap::Snapshot;
use crate::error::*;
use crate::ptx::exec;
use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::{c_uint, c_void};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Instant;

pub const STREAM_NON_BLOCKING: u32 = 1;
pub const MODE_GLOBAL: u32 = 0;
pub const MODE_THREAD_LOCAL: u32 = 1;
pub const MODE_RELAXED: u32 = 2;
const STREAM_CAPTURE_IMPLICIT: CuResult = 906;
const STREAM_CAPTURE_ISOLATION: CuResult = 905;
const ILLEGAL_STATE: CuResult = 401;

/// A unit of queued (or captured) work.
#[derive(Clone)]
pub enum Work {
    Launch(Box<exec::Launch>),
    HtoD {
        dst: u64,
        data: Arc<Vec<u8>>,
    },
    DtoD {
        dst: u64,
        src: u64,
        len: usize,
    },
    Memset {
        dst: u64,
        value: u32,
        elem: usize,
        count: usize,
    },
    Free {
        ptr: u64,
    },
    /// Completes `event` if this is still the event's latest record.
    Record {
        event: u64,
    },
    /// Waits for `stream`'s work up to `seq`.
    Wait {
        stream: u64,
        seq: u64,
    },
    /// A graph launch: its nodes in capture order.
    Graph(Arc<Vec<Work>>),
}

/// A capture under way on a stream.
pub struct Capture {
    pub mode: u32,
    pub thread: ThreadId,
    pub nodes: Vec<Work>,
    /// Why the capture is invalid, if it is.
    pub invalid: Option<String>,
    pub id: u64,
}

#[derive(Default)]
pub struct Stream {
    pub flags: u32,
    queue: VecDeque<(u64, Work)>,
    /// Work items queued so far and completed so far (sequence numbers).
    pub queued: u64,
    pub done: u64,
    pub capture: Option<Capture>,
}

impl Stream {
    pub fn new(flags: u32) -> Self {
        Stream {
            flags,
            ..Default::default()
        }
    }

    fn blocking(&self) -> bool {
        self.flags & STREAM_NON_BLOCKING == 0
    }
}

fn me() -> ThreadId {
    std::thread::current().id()
}

impl Driver {
    /// The stream of a handle: 0 and CU_STREAM_LEGACY (1) are the legacy default stream.
    pub fn stream_id(&mut self, h: *mut c_void) -> Result<u64> {
        let h = h as u64;
        match h {
            0 | 1 => {
                self.streams.entry(0).or_default();
                Ok(0)
            }
            2 => Err(Error::new(
                NOT_SUPPORTED,
                "not emulated: the per-thread default stream (CU_STREAM_PER_THREAD)",
            )),
            _ if self.streams.contains_key(&h) => Ok(h),
            _ => Err(Error::new(
                INVALID_HANDLE,
                format!("{h:#x} is not a stream"),
            )),
        }
    }

    pub fn capturing(&self, s: u64) -> bool {
        self.streams.get(&s).is_some_and(|x| x.capture.is_some())
    }

    /// Invalidates the capture on stream `s` (if any) with a reason.
    pub fn invalidate(&mut self, s: u64, why: &str) {
        if let Some(c) = self.streams.get_mut(&s).and_then(|x| x.capture.as_mut()) {
            c.invalid.get_or_insert_with(|| why.to_string());
        }
    }

    /// The capture-mode rules for a potentially unsafe call on this thread: refused (and the
    /// captures that forbid it invalidated) if this thread has a capture that is not relaxed,
    /// or, in global mode, if any thread has a global-mode capture.
    pub fn refuse_unsafe_during_capture(&mut self, what: &str) -> Result<()> {
        let mode = CAPTURE_MODE.with(Cell::get);
        if mode == MODE_RELAXED {
            return Ok(());
        }
        let me = me();
        let culprits: Vec<u64> = self
            .streams
            .iter()
            .filter_map(|(&id, s)| {
                let c = s.capture.as_ref()?;
                let forbids = (c.thread == me && c.mode != MODE_RELAXED)
                    || (mode == MODE_GLOBAL && c.mode == MODE_GLOBAL);
                forbids.then_some(id)
            })
            .collect();
        if culprits.is_empty() {
            return Ok(());
        }
        let why = format!("{what} during a stream capture (capture mode rules)");
        for s in &culprits {
            self.invalidate(*s, &why);
        }
        Err(Error::new(
            STREAM_CAPTURE_UNSUPPORTED,
            format!("{what} is not permitted while a stream captures (this thread's capture mode {mode}; captures on streams {culprits:x?} invalidated)"),
        ))
    }

    /// Queues work on stream `s` (its sequence number), or adds it to the stream's capture
    /// (0).
    pub fn enqueue(&mut self, s: u64, w: Work) -> Result<u64> {
        if let Some(c) = self.streams.get_mut(&s).and_then(|x| x.capture.as_mut()) {
            c.nodes.push(w);
            return Ok(0);
        }
        let blocking = self.streams.get(&s).is_some_and(Stream::blocking);
        if s == 0 {
            // The legacy stream orders after all blocking streams: it may not join a capture.
            let captured: Vec<u64> = self
                .streams
                .iter()
                .filter(|(&id, x)| id != 0 && x.blocking() && x.capture.is_some())
                .map(|(&id, _)| id)
                .collect();
            if !captured.is_empty() {
                for c in &captured {
                    self.invalidate(*c, "work on the legacy default stream");
                }
                return Err(Error::new(
                    STREAM_CAPTURE_IMPLICIT,
                    "work on the legacy default stream while a blocking stream captures",
                ));
            }
            let ids: Vec<u64> = self
                .streams
                .iter()
                .filter(|(&id, x)| id != 0 && x.blocking())
                .map(|(&id, _)| id)
                .collect();
            for id in ids {
                let upto = self.streams.get(&id).map_or(0, |x| x.queued);
                self.push(
                    0,
                    Work::Wait {
                        stream: id,
                        seq: upto,
                    },
                );
            }
        } else if blocking {
            let upto = self.streams.get(&0).map_or(0, |x| x.queued);
            if upto > self.streams.get(&0).map_or(0, |x| x.done) {
                self.push(
                    s,
                    Work::Wait {
                        stream: 0,
                        seq: upto,
                    },
                );
            }
        }
        Ok(self.push(s, w))
    }

    fn push(&mut self, s: u64, w: Work) -> u64 {
        let st = self.streams.entry(s).or_default();
        st.queued += 1;
        let seq = st.queued;
        st.queue.push_back((seq, w));
        seq
    }

    /// Runs stream `s`'s work up to sequence number `upto`.
    pub fn run_stream(&mut self, s: u64, upto: u64) -> Result<()> {
        loop {
            self.initialized_and_sane()?;
            let Some(st) = self.streams.get_mut(&s) else {
                return Ok(());
            };
            if st.done >= upto {
                return Ok(());
            }
            let Some((seq, w)) = st.queue.pop_front() else {
                return Ok(());
            };
            st.done = seq;
            if let Err(e) = self.execute(w, s, seq) {
                if is_sticky(e.code) {
                    eprintln!("cuda-emu: kernel fault (sticky: every later call fails): {e}");
                    self.sticky = Some(e.clone());
                }
                return Err(e);
            }
        }
    }

    /// Runs all queued work of every stream.
    pub fn run_all(&mut self) -> Result<()> {
        let mut ids: Vec<u64> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let upto = self.streams.get(&id).map_or(0, |x| x.queued);
            self.run_stream(id, upto)?;
        }
        self.initialized_and_sane()
    }

    /// Runs stream `s` to its end (a stream synchronisation or a blocking copy).
    pub fn drain(&mut self, s: u64) -> Result<()> {
        let upto = self.streams.get(&s).map_or(0, |x| x.queued);
        self.run_stream(s, upto)?;
        self.initialized_and_sane()
    }

    fn execute(&mut self, w: Work, stream: u64, seq: u64) -> Result<()> {
        match w {
            Work::Launch(l) => self.run_launch(*l),
            Work::HtoD { dst, data } => {
                let snap = self.heap.snapshot();
                let (a, off) = found(&snap, dst, data.len(), "a host-to-device copy")?;
                a.write_bytes(off, &data);
                Ok(())
            }
            Work::DtoD { dst, src, len } => {
                let snap = self.heap.snapshot();
                let (s, so) = found(&snap, src, len, "a device-to-device copy (source)")?;
                let (d, doff) = found(&snap, dst, len, "a device-to-device copy (destination)")?;
                d.copy_from(doff, s, so, len);
                Ok(())
            }
            Work::Memset {
                dst,
                value,
                elem,
                count,
            } => {
                let snap = self.heap.snapshot();
                let (a, off) = found(&snap, dst, elem * count, "a memset")?;
                let bytes = value.to_le_bytes();
                let data: Vec<u8> = (0..count)
                    .flat_map(|_| bytes[..elem].iter().copied())
                    .collect();
                a.write_bytes(off, &data);
                Ok(())
            }
            Work::Free { ptr } => self.heap.free(ptr).map(drop).map_err(|e| {
                Error::new(
                    ILLEGAL_ADDRESS,
                    format!("a stream-ordered free of {ptr:#x}: {e}"),
                )
            }),
            Work::Record { event } => {
                if let Some(e) = self.events.get_mut(&event) {
                    if e.recorded == Some((stream, seq)) {
                        e.done_at = Some(Instant::now());
                    }
                }
                Ok(())
            }
            Work::Wait { stream, seq } => self.run_stream(stream, seq),
            Work::Graph(nodes) => {
                for n in nodes.iter() {
                    self.execute(n.clone(), stream, seq)?;
                }
                Ok(())
            }
        }
    }

    fn run_launch(&mut self, mut l: exec::Launch) -> Result<()> {
        self.launch_id += 1;
        if self.launch_id >= 1 << 20 {
            self.launch_id = 1;
            self.heap.clear_tags();
        }
        l.id = self.launch_id;
        let snap = self.heap.snapshot();
        self.launches += 1;
        match exec::run(&l, &snap) {
            Ok(n) => {
                self.instructions += n;
                Ok(())
            }
            Err(f) => Err(Error::new(
                f.code,
                format!(
                    "{} <<<{:?}, {:?}, {} B>>>:\n  {}",
                    l.kernel.name,
                    l.grid,
                    l.block,
                    l.dynamic_shared,
                    f.messages.join("\n  ")
                ),
            )),
        }
    }
}

fn found<'a>(
    snap: &'a Snapshot,
    addr: u64,
    len: usize,
    what: &str,
) -> Result<(&'a crate::device::heap::Allocation, usize)> {
    snap.find(addr, len)
        .map(|(a, off)| (&**a, off))
        .map_err(|m| {
            Error::new(
                ILLEGAL_ADDRESS,
                format!(
                    "{what} of {len} bytes at {addr:#x}: {}",
                    m.describe(addr, len)
                ),
            )
        })
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(out: *mut *mut c_void, flags: c_uint) -> CuResult {
    api("cuStreamCreate", |d| {
        d.ready()?;
        if flags & !STREAM_NON_BLOCKING != 0 {
            return Err(Error::new(
                INVALID_VALUE,
                format!("stream flags {flags:#x}"),
            ));
        }
        let h = d.handle();
        d.streams.insert(h, Stream::new(flags));
        // SAFETY: the caller's contract.
        unsafe { put(out, h as *mut c_void) }
    })
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreateWithPriority(
    out: *mut *mut c_void,
    flags: c_uint,
    _priority: i32,
) -> CuResult {
    // SAFETY: the caller's contract, passed on.
    unsafe { cuStreamCreate(out, flags) }
}

/// Destroys a stream; its queued work still runs (as on the driver) before it goes.
#[no_mangle]
pub extern "C" fn cuStreamDestroy_v2(s: *mut c_void) -> CuResult {
    api("cuStreamDestroy_v2", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if id == 0 {
            return Err(Error::new(
                INVALID_HANDLE,
                "the default stream cannot be destroyed",
            ));
        }
        if d.capturing(id) {
            return Err(Error::new(
                STREAM_CAPTURE_UNSUPPORTED,
                "destroying a capturing stream",
            ));
        }
        d.drain(id)?;
        d.streams.remove(&id);
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn cuStreamSynchronize(s: *mut c_void) -> CuResult {
    api("cuStreamSynchronize", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if d.capturing(id) {
            d.invalidate(id, "cuStreamSynchronize on the capturing stream");
            return Err(Error::new(
                STREAM_CAPTURE_UNSUPPORTED,
                "cuStreamSynchronize on a capturing stream",
            ));
        }
        d.refuse_unsafe_during_capture("cuStreamSynchronize")?;
        d.drain(id)
    })
}

/// NOT_READY while work is queued (the work then runs, so a polling loop ends).
#[no_mangle]
pub extern "C" fn cuStreamQuery(s: *mut c_void) -> CuResult {
    api("cuStreamQuery", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if d.capturing(id) {
            d.invalidate(id, "cuStreamQuery on the capturing stream");
            return Err(Error::new(
                STREAM_CAPTURE_UNSUPPORTED,
                "cuStreamQuery on a capturing stream",
            ));
        }
        let pending = d.streams.get(&id).is_some_and(|x| x.done < x.queued);
        d.drain(id)?;
        if pending {
            Err(Error::new(NOT_READY, "work was queued"))
        } else {
            Ok(())
        }
    })
}

/// Makes later work on `s` wait for the event's last record.
#[no_mangle]
pub extern "C" fn cuStreamWaitEvent(s: *mut c_void, event: *mut c_void, flags: c_uint) -> CuResult {
    api("cuStreamWaitEvent", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if flags != 0 {
            return Err(Error::new(
                INVALID_VALUE,
                "cuStreamWaitEvent flags must be 0",
            ));
        }
        let ev = d.events.get(&(event as u64)).ok_or_else(|| {
            Error::new(
                INVALID_HANDLE,
                format!("{:#x} is not an event", event as u64),
            )
        })?;
        let captured_in = ev.captured_in;
        let Some((stream, seq)) = ev.recorded else {
            return Ok(());
        };
        if let Some(c) = d.streams.get(&id).and_then(|x| x.capture.as_ref()) {
            if captured_in == Some(c.id) {
                return Ok(());
            }
            let cid = c.id;
            d.invalidate(id, "a wait on an event from outside the capture");
            return Err(Error::new(
                STREAM_CAPTURE_ISOLATION,
                format!("the capture {cid} waits on an event recorded outside it (not emulated: cross-stream capture)"),
            ));
        }
        if captured_in.is_some() {
            return Err(Error::new(
                907,
                "waiting outside a capture on an event recorded in one",
            ));
        }
        d.enqueue(id, Work::Wait { stream, seq }).map(drop)
    })
}

/// Begins capturing stream `s` in `mode`.
#[no_mangle]
pub extern "C" fn cuStreamBeginCapture_v2(s: *mut c_void, mode: c_uint) -> CuResult {
    api("cuStreamBeginCapture_v2", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if id == 0 {
            return Err(Error::new(
                STREAM_CAPTURE_UNSUPPORTED,
                "the legacy default stream cannot capture",
            ));
        }
        if mode > MODE_RELAXED {
            return Err(Error::new(INVALID_VALUE, format!("capture mode {mode}")));
        }
        if d.capturing(id) {
            return Err(Error::new(ILLEGAL_STATE, "the stream is capturing already"));
        }
        let cid = d.handle();
        if let Some(st) = d.streams.get_mut(&id) {
            st.capture = Some(Capture {
                mode,
                thread: me(),
                nodes: Vec::new(),
                invalid: None,
                id: cid,
            });
        }
        Ok(())
    })
}

/// # Safety
/// `mode` is null or valid for a read and a write.
#[no_mangle]
pub unsafe extern "C" fn cuThreadExchangeStreamCaptureMode(mode: *mut c_uint) -> CuResult {
    api("cuThreadExchangeStreamCaptureMode", |_| {
        if mode.is_null() {
            return Err(Error::new(INVALID_VALUE, "a null mode pointer"));
        }
        // SAFETY: non-null and valid (the caller's contract).
        let new = unsafe { *mode };
        if new > MODE_RELAXED {
            return Err(Error::new(INVALID_VALUE, format!("capture mode {new}")));
        }
        let old = CAPTURE_MODE.with(|m| m.replace(new));
        // SAFETY: as above.
        unsafe { put(mode, old) }
    })
}

/// `CUstreamCaptureStatus`: 0 none, 1 active, 2 invalidated.
fn status(d: &Driver, id: u64) -> u32 {
    match d.streams.get(&id).and_then(|x| x.capture.as_ref()) {
        None => 0,
        Some(c) if c.invalid.is_some() => 2,
        Some(_) => 1,
    }
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuStreamIsCapturing(s: *mut c_void, out: *mut c_uint) -> CuResult {
    api("cuStreamIsCapturing", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        let st = status(d, id);
        // SAFETY: the caller's contract.
        unsafe { put(out, st) }
    })
}

/// # Safety
/// Each output pointer is null (not wanted) or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuStreamGetCaptureInfo_v3(
    s: *mut c_void,
    status_out: *mut c_uint,
    id_out: *mut u64,
    graph_out: *mut *mut c_void,
    deps_out: *mut *const c_void,
    edges_out: *mut *const c_void,
    count_out: *mut usize,
) -> CuResult {
    api("cuStreamGetCaptureInfo_v3", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        let st = status(d, id);
        let cid = d
            .streams
            .get(&id)
            .and_then(|x| x.capture.as_ref())
            .map_or(0, |c| c.id);
        // SAFETY: the caller's contract; null pointers are outputs not wanted.
        unsafe {
            put(status_out, st)?;
            if !id_out.is_null() {
                put(id_out, cid)?;
            }
            if !graph_out.is_null()
                || !deps_out.is_null()
                || !edges_out.is_null()
                || !count_out.is_null()
            {
                return Err(Error::new(
                    NOT_SUPPORTED,
                    "not emulated: cuStreamGetCaptureInfo_v3's graph and dependency outputs",
                ));
            }
        }
        Ok(())
    })
}
