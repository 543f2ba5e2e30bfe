//! Graphs from stream capture: the captured work in capture order (one stream, so a chain),
//! instantiated and launched as one unit of stream work. A launch replays the nodes with the
//! addresses and parameters they were captured with.

use super::stream::{Work, MODE_THREAD_LOCAL};
use super::{api, put};
use crate::error::*;
use std::ffi::{c_ulonglong, c_void};
use std::sync::Arc;

pub struct Graph {
    pub nodes: Arc<Vec<Work>>,
}

pub struct Exec {
    pub nodes: Arc<Vec<Work>>,
}

/// Ends the capture of `s`: the graph, or STREAM_CAPTURE_INVALIDATED (and no graph) if
/// something during the capture invalidated it.
///
/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuStreamEndCapture(s: *mut c_void, out: *mut *mut c_void) -> CuResult {
    api("cuStreamEndCapture", |d| {
        d.ready()?;
        if out.is_null() {
            return Err(Error::new(INVALID_VALUE, "a null graph pointer"));
        }
        let id = d.stream_id(s)?;
        let me = std::thread::current().id();
        let Some(st) = d.streams.get_mut(&id) else {
            return Err(Error::new(INVALID_HANDLE, "no such stream"));
        };
        let Some(c) = st.capture.as_ref() else {
            return Err(Error::new(
                STREAM_CAPTURE_UNMATCHED,
                "the stream is not capturing",
            ));
        };
        if c.mode == MODE_THREAD_LOCAL && c.thread != me {
            return Err(Error::new(
                STREAM_CAPTURE_WRONG_THREAD,
                "a thread-local capture ended on another thread",
            ));
        }
        let Some(c) = st.capture.take() else {
            return Err(Error::new(
                STREAM_CAPTURE_UNMATCHED,
                "the stream is not capturing",
            ));
        };
        // SAFETY: non-null, valid for a write (the caller's contract).
        unsafe { put(out, std::ptr::null_mut()) }?;
        if let Some(why) = c.invalid {
            return Err(Error::new(
                STREAM_CAPTURE_INVALIDATED,
                format!("the capture was invalidated: {why}"),
            ));
        }
        let h = d.handle();
        d.graphs.insert(
            h,
            Graph {
                nodes: Arc::new(c.nodes),
            },
        );
        // SAFETY: as above.
        unsafe { put(out, h as *mut c_void) }
    })
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuGraphInstantiateWithFlags(
    out: *mut *mut c_void,
    graph: *mut c_void,
    flags: c_ulonglong,
) -> CuResult {
    api("cuGraphInstantiateWithFlags", |d| {
        d.ready()?;
        if flags != 0 {
            return Err(Error::new(
                NOT_SUPPORTED,
                format!("not emulated: graph instantiation flags {flags:#x}"),
            ));
        }
        let nodes = d
            .graphs
            .get(&(graph as u64))
            .map(|g| g.nodes.clone())
            .ok_or_else(|| {
                Error::new(
                    INVALID_HANDLE,
                    format!("{:#x} is not a graph", graph as u64),
                )
            })?;
        let h = d.handle();
        d.execs.insert(h, Exec { nodes });
        // SAFETY: the caller's contract.
        unsafe { put(out, h as *mut c_void) }
    })
}

/// Checks the handles (the emulator has nothing to move to a device).
#[no_mangle]
pub extern "C" fn cuGraphUpload(exec: *mut c_void, s: *mut c_void) -> CuResult {
    api("cuGraphUpload", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if d.capturing(id) {
            return Err(Error::new(
                NOT_SUPPORTED,
                "not emulated: cuGraphUpload into a capture",
            ));
        }
        if !d.execs.contains_key(&(exec as u64)) {
            return Err(Error::new(INVALID_HANDLE, "not an executable graph"));
        }
        Ok(())
    })
}

/// Queues one replay of the graph on `s`.
#[no_mangle]
pub extern "C" fn cuGraphLaunch(exec: *mut c_void, s: *mut c_void) -> CuResult {
    api("cuGraphLaunch", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        let nodes = d
            .execs
            .get(&(exec as u64))
            .map(|e| e.nodes.clone())
            .ok_or_else(|| {
                Error::new(
                    INVALID_HANDLE,
                    format!("{:#x} is not an executable graph", exec as u64),
                )
            })?;
        if d.capturing(id) {
            d.invalidate(id, "a graph launch into the capture");
            return Err(Error::new(
                NOT_SUPPORTED,
                "not emulated: cuGraphLaunch into a capturing stream",
            ));
        }
        d.enqueue(id, Work::Graph(nodes)).map(drop)
    })
}

#[no_mangle]
pub extern "C" fn cuGraphExecDestroy(exec: *mut c_void) -> CuResult {
    api("cuGraphExecDestroy", |d| {
        d.initialized_and_sane()?;
        d.execs
            .remove(&(exec as u64))
            .map(drop)
            .ok_or_else(|| Error::new(INVALID_HANDLE, "not an executable graph"))
    })
}

#[no_mangle]
pub extern "C" fn cuGraphDestroy(graph: *mut c_void) -> CuResult {
    api("cuGraphDestroy", |d| {
        d.initialized_and_sane()?;
        d.graphs
            .remove(&(graph as u64))
            .map(drop)
            .ok_or_else(|| Error::new(INVALID_HANDLE, "not a graph"))
    })
}
