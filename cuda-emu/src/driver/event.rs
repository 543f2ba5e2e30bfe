//! Events: recorded on a stream (as queued work), complete when the work before them ran;
//! waiting on one runs that work. Elapsed times are host times of the emulation, not of any
//! GPU: nothing may report them as GPU timings (the benches refuse this device).

use super::stream::Work;
use super::{api, put};
use crate::error::*;
use std::ffi::{c_float, c_uint, c_void};
use std::time::Instant;

const EVENT_DISABLE_TIMING: u32 = 2;
const EVENT_FLAGS: u32 = 0x1 | 0x2 | 0x4; // blocking sync, disable timing, interprocess

pub struct Event {
    pub flags: u32,
    /// The stream and sequence number of its last record.
    pub recorded: Option<(u64, u64)>,
    /// When its last record completed.
    pub done_at: Option<Instant>,
    /// The capture it was last recorded in, if it was recorded during one.
    pub captured_in: Option<u64>,
}

fn event(d: &mut super::Driver, e: *mut c_void) -> Result<&mut Event> {
    d.events
        .get_mut(&(e as u64))
        .ok_or_else(|| Error::new(INVALID_HANDLE, format!("{:#x} is not an event", e as u64)))
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(out: *mut *mut c_void, flags: c_uint) -> CuResult {
    api("cuEventCreate", |d| {
        d.ready()?;
        if flags & !EVENT_FLAGS != 0 || flags & 0x4 != 0 {
            return Err(Error::new(
                INVALID_VALUE,
                format!("not emulated: event flags {flags:#x}"),
            ));
        }
        let h = d.handle();
        d.events.insert(
            h,
            Event {
                flags,
                recorded: None,
                done_at: None,
                captured_in: None,
            },
        );
        // SAFETY: the caller's contract.
        unsafe { put(out, h as *mut c_void) }
    })
}

#[no_mangle]
pub extern "C" fn cuEventDestroy_v2(e: *mut c_void) -> CuResult {
    api("cuEventDestroy_v2", |d| {
        d.initialized_and_sane()?;
        d.events
            .remove(&(e as u64))
            .map(drop)
            .ok_or_else(|| Error::new(INVALID_HANDLE, format!("{:#x} is not an event", e as u64)))
    })
}

#[no_mangle]
pub extern "C" fn cuEventRecord(e: *mut c_void, s: *mut c_void) -> CuResult {
    api("cuEventRecord", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        event(d, e)?;
        let capture = d
            .streams
            .get(&id)
            .and_then(|x| x.capture.as_ref())
            .map(|c| c.id);
        if let Some(cid) = capture {
            // An event recorded in a capture marks a point in the graph (for waits within it).
            let ev = event(d, e)?;
            ev.captured_in = Some(cid);
            ev.recorded = Some((id, 0));
            ev.done_at = None;
            return Ok(());
        }
        let seq = d.enqueue(id, Work::Record { event: e as u64 })?;
        let ev = event(d, e)?;
        ev.recorded = Some((id, seq));
        ev.done_at = None;
        ev.captured_in = None;
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn cuEventRecordWithFlags(
    e: *mut c_void,
    s: *mut c_void,
    flags: c_uint,
) -> CuResult {
    if flags != 0 {
        eprintln!("cuda-emu: cuEventRecordWithFlags: not emulated: flags {flags:#x}");
        return NOT_SUPPORTED;
    }
    cuEventRecord(e, s)
}

/// Runs the work before the event's last record.
#[no_mangle]
pub extern "C" fn cuEventSynchronize(e: *mut c_void) -> CuResult {
    api("cuEventSynchronize", |d| {
        d.ready()?;
        d.refuse_unsafe_during_capture("cuEventSynchronize")?;
        let ev = event(d, e)?;
        if ev.captured_in.is_some() {
            return Err(Error::new(907, "the event was recorded in a capture"));
        }
        match ev.recorded {
            Some((s, seq)) => d.run_stream(s, seq),
            None => Ok(()),
        }
    })
}

/// NOT_READY while the work before the record is queued (it then runs, so polling ends).
#[no_mangle]
pub extern "C" fn cuEventQuery(e: *mut c_void) -> CuResult {
    api("cuEventQuery", |d| {
        d.ready()?;
        let ev = event(d, e)?;
        if ev.captured_in.is_some() {
            return Err(Error::new(907, "the event was recorded in a capture"));
        }
        let (Some((s, seq)), None) = (ev.recorded, ev.done_at) else {
            return Ok(());
        };
        d.run_stream(s, seq)?;
        Err(Error::new(NOT_READY, "the event's work was queued"))
    })
}

/// # Safety
/// `ms` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime_v2(
    ms: *mut c_float,
    start: *mut c_void,
    end: *mut c_void,
) -> CuResult {
    api("cuEventElapsedTime_v2", |d| {
        d.ready()?;
        let times = |d: &mut super::Driver, e| -> Result<Instant> {
            let ev = event(d, e)?;
            if ev.flags & EVENT_DISABLE_TIMING != 0 {
                return Err(Error::new(
                    INVALID_HANDLE,
                    "an event created with CU_EVENT_DISABLE_TIMING",
                ));
            }
            if ev.recorded.is_none() {
                return Err(Error::new(INVALID_HANDLE, "an event never recorded"));
            }
            ev.done_at
                .ok_or_else(|| Error::new(NOT_READY, "an event not completed"))
        };
        let (a, b) = (times(d, start)?, times(d, end)?);
        let v = if b >= a {
            (b - a).as_secs_f64() * 1e3
        } else {
            -((a - b).as_secs_f64() * 1e3)
        };
        // SAFETY: the caller's contract.
        unsafe { put(ms, v as c_float) }
    })
}

/// # Safety
/// As cuEventElapsedTime_v2.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime(
    ms: *mut c_float,
    start: *mut c_void,
    end: *mut c_void,
) -> CuResult {
    // SAFETY: passed on.
    unsafe { cuEventElapsedTime_v2(ms, start, end) }
}
