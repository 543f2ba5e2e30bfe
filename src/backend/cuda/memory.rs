//! Device memory: a pool of `u64` buffers reused by exact length. Polynomials of one ring
//! come in few sizes (limbs × N), so a freed buffer is almost always taken again soon, and
//! the pool saves a driver allocation per temporary.
//!
//! Reuse needs no synchronisation: every buffer is used on the pool's one stream, so work
//! queued with a reused buffer runs after the work queued with its previous owner.
//!
//! Graph capture (graph.rs) changes where buffers go, because a graph keeps using the
//! addresses its work had while it was captured:
//! - while a capture is under way, every buffer freed (whoever made it) goes to the
//!   capture's [`GraphMemory`], not back to the pool: later allocations of the same capture
//!   may take it again (the captured work is one stream-ordered chain), nothing else may;
//! - buffers allocated during the capture belong to its `GraphMemory` for good: freed later
//!   (e.g. the reply the graph writes), they go back to it, not to the pool;
//! - a buffer of an earlier graph freed during a capture stays in that graph's memory, which
//!   the capture's memory then keeps alive (the new graph may read it on every replay);
//! - the `GraphMemory` returns everything to the pool once the graph and every buffer of
//!   the capture are gone (later users queue after the graph's last replay on the stream);
//! - `trim` frees nothing while any `GraphMemory` lives: a graph may still read a buffer
//!   made before its capture whose owner has let it go.
//!
//! Memory is plain `cuMemAlloc` memory, not stream-ordered (`cuMemAllocAsync` would put an
//! allocation node in a captured graph, one that must be freed before each relaunch).
//! The free-list bookkeeping is apart from the driver calls ([`Allocator`]) so that the tests
//! below check it without a GPU.

use super::device::Sticky;
use cudarc::driver::sys::CUstreamCaptureMode;
use cudarc::driver::{result, sys, CudaStream, DriverError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One allocation: its device address and its length in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mem {
    ptr: u64,
    len: usize,
}

/// Where the pool's memory comes from: the driver, or a fake in the tests.
pub(super) trait Allocator: Send + Sync + 'static {
    /// The address of `len` new words; `capturing`: a graph capture is under way.
    fn alloc(&self, len: usize, capturing: bool) -> Result<u64, String>;
    /// Frees `mems`, once the work queued with them is done.
    fn free(&self, mems: Vec<Mem>) -> Result<(), String>;
}

/// `cuMemAlloc`/`cuMemFree` in the stream's context.
pub(super) struct DriverMemory {
    stream: Arc<CudaStream>,
}

impl Allocator for DriverMemory {
    fn alloc(&self, len: usize, capturing: bool) -> Result<u64, String> {
        let bytes = len.max(1) * 8;
        let failed = |what: &str, e: DriverError| format!("{what} ({bytes} bytes): {e}");
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| failed("binding the CUDA context", e))?;
        if !capturing {
            // SAFETY: plain device memory; every user writes before it reads.
            return unsafe { result::malloc_sync(bytes) }
                .map_err(|e| failed("allocating on the device", e));
        }
        // The capture runs in thread-local mode, which refuses `cuMemAlloc` on this thread
        // as potentially unsafe. It is safe here: the graph uses the address it gets now on
        // every replay, and the pool keeps the memory until the graph is gone. So relax the
        // mode for this one call, the way PyTorch's caching allocator does.
        let mut mode = CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED;
        // SAFETY: swaps this thread's mode; restored below.
        unsafe { sys::cuThreadExchangeStreamCaptureMode(&mut mode) }
            .result()
            .map_err(|e| failed("relaxing the capture mode", e))?;
        // SAFETY: as above.
        let ptr = unsafe { result::malloc_sync(bytes) };
        // SAFETY: puts back the mode swapped out above.
        let restored = unsafe { sys::cuThreadExchangeStreamCaptureMode(&mut mode) }.result();
        let ptr = ptr.map_err(|e| failed("allocating on the device during a capture", e))?;
        if let Err(e) = restored {
            // SAFETY: `ptr` came from cuMemAlloc just now and nothing uses it yet.
            let _ = unsafe { result::free_sync(ptr) };
            return Err(failed("restoring the capture mode", e));
        }
        Ok(ptr)
    }

    fn free(&self, mems: Vec<Mem>) -> Result<(), String> {
        if mems.is_empty() {
            return Ok(());
        }
        self.stream
            .synchronize()
            .map_err(|e| format!("waiting for the stream before freeing memory: {e}"))?;
        let mut first = Ok(());
        for m in mems {
            // SAFETY: `m` came from cuMemAlloc, is in no pool or buffer any more, and the
            // work queued with it finished (synchronised above).
            let r = unsafe { result::free_sync(m.ptr) };
            if let (Err(e), Ok(())) = (r, &first) {
                first = Err(format!("freeing device memory: {e}"));
            }
        }
        first
    }
}

/// Free buffers by length.
#[derive(Default)]
struct Shelf(HashMap<usize, Vec<Mem>>);

impl Shelf {
    fn take(&mut self, len: usize) -> Option<Mem> {
        self.0.get_mut(&len).and_then(Vec::pop)
    }

    fn put(&mut self, m: Mem) {
        self.0.entry(m.len).or_default().push(m);
    }

    fn drain(&mut self) -> Vec<Mem> {
        self.0.drain().flat_map(|(_, v)| v).collect()
    }

    fn bytes(&self) -> usize {
        self.0.iter().map(|(len, v)| len * v.len() * 8).sum()
    }
}

struct State<A: Allocator> {
    free: Shelf,
    /// The capture under way, if any.
    capture: Option<Arc<GraphMemory<A>>>,
    /// `GraphMemory`s alive (`trim` waits for none).
    graphs: usize,
}

pub(super) struct Pool<A: Allocator = DriverMemory> {
    allocator: A,
    state: Mutex<State<A>>,
    pub(super) errors: Arc<Sticky>,
}

/// The memory of one captured graph: every buffer allocated or freed during its capture.
pub(super) struct GraphMemory<A: Allocator = DriverMemory> {
    shelf: Mutex<Shelf>,
    pool: Arc<Pool<A>>,
    /// Earlier graphs' memory holding buffers this graph's capture let go of.
    parents: Mutex<Vec<Arc<GraphMemory<A>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves the state consistent, even one that panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool<DriverMemory> {
    pub(super) fn new(stream: Arc<CudaStream>, errors: Arc<Sticky>) -> Arc<Self> {
        Self::with_allocator(DriverMemory { stream }, errors)
    }

    pub(super) fn stream(&self) -> &Arc<CudaStream> {
        &self.allocator.stream
    }
}

impl<A: Allocator> Pool<A> {
    pub(super) fn with_allocator(allocator: A, errors: Arc<Sticky>) -> Arc<Self> {
        Arc::new(Self {
            allocator,
            state: Mutex::new(State {
                free: Shelf::default(),
                capture: None,
                graphs: 0,
            }),
            errors,
        })
    }

    /// `len` words of uninitialised device memory. On failure the error is recorded and the
    /// buffer is empty: operations on it record an error instead of launching.
    pub(super) fn alloc(self: &Arc<Self>, len: usize) -> Buffer<A> {
        let (reused, graph) = {
            let mut state = lock(&self.state);
            match state.capture.clone() {
                // The capture's own freed buffers first, then the pool's (free since the
                // work queued before the capture, which the graph runs after).
                Some(g) => {
                    let own = lock(&g.shelf).take(len);
                    (own.or_else(|| state.free.take(len)), Some(g))
                }
                None => (state.free.take(len), None),
            }
        };
        let mem = match reused {
            Some(m) => Some(m),
            None => match self.allocator.alloc(len, graph.is_some()) {
                Ok(ptr) => Some(Mem { ptr, len }),
                Err(e) => {
                    self.errors.record(|| e);
                    None
                }
            },
        };
        Buffer {
            mem,
            pool: self.clone(),
            graph,
        }
    }

    /// Frees every pooled buffer (those in use return when dropped), unless a captured graph
    /// may still use pooled memory.
    pub(super) fn trim(&self) {
        let mems = {
            let mut state = lock(&self.state);
            if state.capture.is_some() || state.graphs > 0 {
                return;
            }
            state.free.drain()
        };
        if let Err(e) = self.allocator.free(mems) {
            self.errors.record(|| e);
        }
    }

    /// Bytes held by the pool for reuse (not those of captured graphs).
    pub(super) fn pooled_bytes(&self) -> usize {
        lock(&self.state).free.bytes()
    }

    #[cfg(test)]
    fn capturing(&self) -> bool {
        lock(&self.state).capture.is_some()
    }

    /// From now on buffers are allocated for, and freed into, a new graph's memory.
    pub(super) fn begin_capture(self: &Arc<Self>) -> Result<(), String> {
        let mut state = lock(&self.state);
        if state.capture.is_some() {
            return Err("a capture is already under way on this backend".into());
        }
        state.capture = Some(Arc::new(GraphMemory {
            shelf: Mutex::new(Shelf::default()),
            pool: self.clone(),
            parents: Mutex::new(Vec::new()),
        }));
        state.graphs += 1;
        Ok(())
    }

    /// Ends the capture's bookkeeping: its memory, for the graph to keep.
    pub(super) fn end_capture(&self) -> Option<Arc<GraphMemory<A>>> {
        lock(&self.state).capture.take()
    }

    /// A buffer freed outside any graph's memory.
    fn release(&self, m: Mem) {
        let mut state = lock(&self.state);
        match &state.capture {
            Some(g) => lock(&g.shelf).put(m),
            None => state.free.put(m),
        }
    }
}

impl<A: Allocator> Drop for Pool<A> {
    fn drop(&mut self) {
        let mems = lock(&self.state).free.drain();
        if let Err(e) = self.allocator.free(mems) {
            self.errors.record(|| e);
        }
    }
}

impl<A: Allocator> Drop for GraphMemory<A> {
    fn drop(&mut self) {
        let mems = self
            .shelf
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain();
        let mut state = lock(&self.pool.state);
        mems.into_iter().for_each(|m| state.free.put(m));
        state.graphs = state.graphs.saturating_sub(1);
    }
}

/// A device buffer that returns to its pool (or its graph's memory) when dropped.
pub(super) struct Buffer<A: Allocator = DriverMemory> {
    mem: Option<Mem>,
    pool: Arc<Pool<A>>,
    /// The graph whose capture allocated it.
    graph: Option<Arc<GraphMemory<A>>>,
}

impl<A: Allocator> Buffer<A> {
    pub(super) fn pool(&self) -> &Arc<Pool<A>> {
        &self.pool
    }

    /// The device address of word `offset`, or None for a buffer whose allocation failed.
    pub(super) fn ptr(&self, offset: usize) -> Option<u64> {
        let m = self.mem.as_ref()?;
        (offset <= m.len).then(|| m.ptr + 8 * offset as u64)
    }

    pub(super) fn len(&self) -> usize {
        self.mem.map_or(0, |m| m.len)
    }
}

impl<A: Allocator> Drop for Buffer<A> {
    fn drop(&mut self) {
        if let Some(m) = self.mem.take() {
            match &self.graph {
                Some(g) => {
                    // Freed during another graph's capture: that graph may read it on
                    // every replay, so it keeps this buffer's graph memory alive.
                    let capture = lock(&self.pool.state).capture.clone();
                    if let Some(c) = capture.filter(|c| !Arc::ptr_eq(c, g)) {
                        lock(&c.parents).push(g.clone());
                    }
                    lock(&g.shelf).put(m)
                }
                None => self.pool.release(m),
            }
        }
    }
}

impl<A: Allocator> std::fmt::Debug for Buffer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ptr(0) {
            Some(p) => write!(f, "device buffer {:#x} ({} words)", p, self.len()),
            None => write!(f, "device buffer (allocation failed)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Hands out fresh addresses and remembers what it was asked.
    #[derive(Default)]
    struct Fake {
        next: AtomicU64,
        captured_allocs: AtomicU64,
        freed: Mutex<Vec<Mem>>,
    }

    impl Allocator for Arc<Fake> {
        fn alloc(&self, len: usize, capturing: bool) -> Result<u64, String> {
            if capturing {
                self.captured_allocs.fetch_add(1, Ordering::Relaxed);
            }
            Ok(0x1000 * (1 + self.next.fetch_add(1, Ordering::Relaxed)) + len as u64)
        }

        fn free(&self, mems: Vec<Mem>) -> Result<(), String> {
            lock(&self.freed).extend(mems);
            Ok(())
        }
    }

    fn pool() -> (Arc<Fake>, Arc<Pool<Arc<Fake>>>) {
        let fake = Arc::new(Fake::default());
        (fake.clone(), Pool::with_allocator(fake, Arc::default()))
    }

    fn addr<A: Allocator>(b: &Buffer<A>) -> u64 {
        b.ptr(0).expect("allocated")
    }

    #[test]
    fn freed_buffers_are_reused_by_length() {
        let (_, pool) = pool();
        let a = pool.alloc(8);
        let a_addr = addr(&a);
        drop(a);
        assert_eq!(pool.pooled_bytes(), 64);
        assert_ne!(addr(&pool.alloc(16)), a_addr, "another length");
        assert_eq!(addr(&pool.alloc(8)), a_addr, "same length: reused");
    }

    #[test]
    fn a_capture_reuses_its_own_frees_and_keeps_them_from_the_pool() {
        let (fake, pool) = pool();
        let before = pool.alloc(8);
        let (before_addr, pooled) = (addr(&before), pool.alloc(4));
        let pooled_addr = addr(&pooled);
        drop(pooled);

        pool.begin_capture().unwrap();
        assert!(pool.capturing());
        assert!(pool.begin_capture().is_err(), "no nested capture");
        // A miss takes the pool's free buffer rather than new memory.
        let t = pool.alloc(4);
        assert_eq!(addr(&t), pooled_addr);
        drop(t);
        // The capture's own free comes back to the capture.
        let t = pool.alloc(4);
        assert_eq!(addr(&t), pooled_addr);
        drop(t);
        // A buffer made before the capture and freed during it belongs to the graph now.
        drop(before);
        let reply = pool.alloc(2);
        let reply_addr = addr(&reply);
        assert_eq!(fake.captured_allocs.load(Ordering::Relaxed), 1);
        let memory = pool.end_capture().expect("capture memory");
        assert!(!pool.capturing());

        // None of the graph's buffers is handed out again while it lives.
        let others: Vec<_> = [4, 8, 2].map(|len| pool.alloc(len)).into();
        for b in &others {
            assert!(![pooled_addr, before_addr, reply_addr].contains(&addr(b)));
        }
        drop(others);
        assert_eq!(fake.captured_allocs.load(Ordering::Relaxed), 1);
        // The reply freed after the capture goes back to the graph too.
        drop(reply);
        assert!(![pool.alloc(2)].iter().any(|b| addr(b) == reply_addr));
        // While the graph lives, trim frees nothing.
        pool.trim();
        assert!(lock(&fake.freed).is_empty());

        // The graph gone: everything is the pool's again, and trim frees it.
        drop(memory);
        pool.trim();
        let freed: Vec<u64> = lock(&fake.freed).iter().map(|m| m.ptr).collect();
        for a in [pooled_addr, before_addr, reply_addr] {
            assert!(freed.contains(&a), "{a:#x} freed by trim");
        }
    }

    #[test]
    fn a_reply_outliving_its_graph_keeps_the_graph_memory() {
        let (fake, pool) = pool();
        pool.begin_capture().unwrap();
        let temp = pool.alloc(4);
        let temp_addr = addr(&temp);
        drop(temp);
        let reply = pool.alloc(4);
        assert_eq!(addr(&reply), temp_addr, "reused within the capture");
        drop(pool.end_capture());
        pool.trim();
        assert!(
            lock(&fake.freed).is_empty(),
            "the reply still holds the graph"
        );
        let other = pool.alloc(4);
        assert_ne!(addr(&other), temp_addr);
        drop(reply);
        assert_eq!(
            pool.pooled_bytes(),
            32,
            "the graph's one buffer is the pool's again"
        );
        pool.trim();
        assert_eq!(lock(&fake.freed).len(), 1, "the reply's buffer");
        drop(other);
    }

    #[test]
    fn an_earlier_graphs_buffer_freed_in_a_capture_lives_as_long_as_the_new_graph() {
        let (_, pool) = pool();
        pool.begin_capture().unwrap();
        let reply = pool.alloc(4);
        let reply_addr = addr(&reply);
        let first = pool.end_capture().expect("first graph");
        // The first graph's reply is the second capture's input, let go of inside it.
        pool.begin_capture().unwrap();
        drop(reply);
        let second = pool.end_capture().expect("second graph");
        drop(first);
        let others: Vec<_> = (0..3).map(|_| pool.alloc(4)).collect();
        assert!(
            others.iter().all(|b| addr(b) != reply_addr),
            "the second graph still reads it"
        );
        drop(others);
        drop(second);
        let again: Vec<_> = (0..4).map(|_| pool.alloc(4)).collect();
        assert!(again.iter().any(|b| addr(b) == reply_addr));
    }

    #[test]
    fn an_abandoned_capture_returns_its_memory() {
        let (_, pool) = pool();
        pool.begin_capture().unwrap();
        let out = pool.alloc(4);
        let out_addr = addr(&out);
        drop(pool.end_capture());
        drop(out);
        assert_eq!(addr(&pool.alloc(4)), out_addr);
        pool.begin_capture()
            .expect("a new capture after the first ended");
        drop(pool.end_capture());
    }
}
