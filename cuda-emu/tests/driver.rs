//! The driver API as a program sees it: contexts per thread, deferred stream work and its
//! ordering, events, capture-mode rules and graphs, sticky faults, refusals. The tests share
//! the process's one emulated driver, so they take a lock and each retains and releases the
//! primary context itself (the last release destroys it and all it holds).

use cuda::driver::context::*;
use cuda::driver::event::*;
use cuda::driver::graph::*;
use cuda::driver::launch::cuLaunchKernel;
use cuda::driver::memory::*;
use cuda::driver::module::*;
use cuda::driver::stream::*;
use cuda::error::*;
use std::ffi::{c_void, CStr};
use std::ptr::null_mut;
use std::sync::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` with the primary context current on this thread, then releases it.
fn with_context(f: impl FnOnce(*mut c_void)) {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(cuInit(0), SUCCESS);
    let mut ctx = null_mut();
    // SAFETY: valid output pointers throughout these tests.
    unsafe {
        assert_eq!(cuDevicePrimaryCtxRetain(&mut ctx, 0), SUCCESS);
    }
    assert_eq!(cuCtxSetCurrent(ctx), SUCCESS);
    f(ctx);
    assert_eq!(cuDevicePrimaryCtxRelease_v2(0), SUCCESS);
}

fn stream() -> *mut c_void {
    let mut s = null_mut();
    // SAFETY: a valid output pointer.
    assert_eq!(unsafe { cuStreamCreate(&mut s, 1) }, SUCCESS);
    s
}

fn alloc(bytes: usize) -> u64 {
    let mut p = 0;
    // SAFETY: a valid output pointer.
    assert_eq!(unsafe { cuMemAlloc_v2(&mut p, bytes) }, SUCCESS);
    p
}

fn upload(p: u64, data: &[u64], s: *mut c_void) -> CuResult {
    // SAFETY: `data` is valid for its length in bytes.
    unsafe { cuMemcpyHtoDAsync_v2(p, data.as_ptr().cast(), data.len() * 8, s) }
}

fn download(p: u64, n: usize, s: *mut c_void) -> (CuResult, Vec<u64>) {
    let mut out = vec![0u64; n];
    // SAFETY: `out` is valid for n × 8 bytes.
    let r = unsafe { cuMemcpyDtoHAsync_v2(out.as_mut_ptr().cast(), p, n * 8, s) };
    (r, out)
}

/// b[i] = a[i] + 1 for i < n (one thread per element).
const INC: &CStr = c".version 9.0
.target sm_90
.address_size 64
.visible .entry inc(.param .u64 inc_param_0, .param .u64 inc_param_1, .param .u32 inc_param_2)
{
	.reg .b64 %rd<8>;
	.reg .b32 %r<6>;
	.reg .pred %p<2>;
	ld.param.u64 %rd1, [inc_param_0];
	ld.param.u64 %rd2, [inc_param_1];
	ld.param.u32 %r1, [inc_param_2];
	mov.u32 %r2, %tid.x;
	mov.u32 %r3, %ctaid.x;
	mov.u32 %r4, %ntid.x;
	mad.lo.s32 %r5, %r3, %r4, %r2;
	setp.ge.u32 %p1, %r5, %r1;
	@%p1 bra $L__end;
	mul.wide.u32 %rd3, %r5, 8;
	add.s64 %rd4, %rd1, %rd3;
	ld.global.u64 %rd5, [%rd4];
	add.s64 %rd6, %rd5, 1;
	add.s64 %rd7, %rd2, %rd3;
	st.global.u64 [%rd7], %rd6;
$L__end:
	ret;
}
";

fn kernel() -> *mut c_void {
    let (mut m, mut f) = (null_mut(), null_mut());
    // SAFETY: valid output pointers, a NUL-terminated PTX text and name.
    unsafe {
        assert_eq!(cuModuleLoadData(&mut m, INC.as_ptr().cast()), SUCCESS);
        assert_eq!(cuModuleGetFunction(&mut f, m, c"inc".as_ptr()), SUCCESS);
    }
    f
}

fn launch_inc(f: *mut c_void, a: u64, b: u64, n: u32, blocks: u32, s: *mut c_void) -> CuResult {
    let (mut a, mut b, mut n) = (a, b, n);
    let mut params: [*mut c_void; 3] = [
        (&mut a as *mut u64).cast(),
        (&mut b as *mut u64).cast(),
        (&mut n as *mut u32).cast(),
    ];
    // SAFETY: one pointer per parameter, each to a value of its size.
    unsafe {
        cuLaunchKernel(
            f,
            blocks,
            1,
            1,
            32,
            1,
            1,
            0,
            s,
            params.as_mut_ptr(),
            null_mut(),
        )
    }
}

#[test]
fn the_device_says_it_is_not_a_gpu() {
    with_context(|_| {
        let mut name = [0i8; 64];
        // SAFETY: a buffer of 64 bytes.
        assert_eq!(
            unsafe { cuDeviceGetName(name.as_mut_ptr(), 64, 0) },
            SUCCESS
        );
        // SAFETY: NUL-terminated by cuDeviceGetName.
        let name = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        assert_eq!(name, "helora cuda-emu (not a GPU)");
    });
}

#[test]
fn work_runs_when_waited_for_not_when_queued() {
    with_context(|_| {
        let s = stream();
        let f = kernel();
        let (a, b) = (alloc(64 * 8), alloc(64 * 8));
        let data: Vec<u64> = (0..64).collect();
        assert_eq!(upload(a, &data, s), SUCCESS);
        // A read past the buffer (65 threads over 64 words), queued: the launch returns
        // success, the fault shows at the synchronisation, and it sticks.
        assert_eq!(launch_inc(f, a, b, 65, 3, s), SUCCESS);
        assert_eq!(cuStreamSynchronize(s), ILLEGAL_ADDRESS);
        assert_eq!(cuCtxSynchronize(), ILLEGAL_ADDRESS, "sticky");
        assert_eq!(alloc_result(8), ILLEGAL_ADDRESS, "sticky for every call");
    });
    // A new context is clean again.
    with_context(|_| {
        let s = stream();
        let f = kernel();
        let (a, b) = (alloc(64 * 8), alloc(64 * 8));
        let data: Vec<u64> = (0..64).collect();
        assert_eq!(upload(a, &data, s), SUCCESS);
        assert_eq!(launch_inc(f, a, b, 64, 2, s), SUCCESS);
        assert_eq!(launch_inc(f, b, a, 64, 2, s), SUCCESS);
        let mut launches = 0;
        let mut instructions = 0;
        // SAFETY: valid output pointers.
        unsafe { cuda::driver::cuda_emu_stats(&mut launches, &mut instructions) };
        let before = launches;
        assert_eq!(cuStreamQuery(s), NOT_READY, "queued, not run");
        // SAFETY: as above.
        unsafe { cuda::driver::cuda_emu_stats(&mut launches, &mut instructions) };
        assert_eq!(launches, before + 2, "the query let the work run");
        assert_eq!(cuStreamQuery(s), SUCCESS);
        let (r, out) = download(a, 64, s);
        assert_eq!(r, SUCCESS);
        assert_eq!(out, (2..66).collect::<Vec<u64>>());
    });
}

fn alloc_result(bytes: usize) -> CuResult {
    let mut p = 0;
    // SAFETY: a valid output pointer.
    unsafe { cuMemAlloc_v2(&mut p, bytes) }
}

#[test]
fn an_event_orders_two_streams() {
    with_context(|_| {
        let (s1, s2) = (stream(), stream());
        let f = kernel();
        let (a, b, c) = (alloc(32 * 8), alloc(32 * 8), alloc(32 * 8));
        let data: Vec<u64> = (0..32).collect();
        assert_eq!(upload(a, &data, s1), SUCCESS);
        assert_eq!(launch_inc(f, a, b, 32, 1, s1), SUCCESS);
        let mut e = null_mut();
        // SAFETY: a valid output pointer.
        assert_eq!(unsafe { cuEventCreate(&mut e, 0) }, SUCCESS);
        assert_eq!(cuEventRecord(e, s1), SUCCESS);
        assert_eq!(cuStreamWaitEvent(s2, e, 0), SUCCESS);
        assert_eq!(launch_inc(f, b, c, 32, 1, s2), SUCCESS);
        // Only s2 is waited for: s1's work before the event runs first.
        let (r, out) = download(c, 32, s2);
        assert_eq!(r, SUCCESS);
        assert_eq!(out, (2..34).collect::<Vec<u64>>());
        assert_eq!(cuEventQuery(e), SUCCESS);
        let mut ms = -1.0f32;
        let mut e2 = null_mut();
        // SAFETY: valid output pointers.
        unsafe {
            assert_eq!(cuEventCreate(&mut e2, 0), SUCCESS);
            assert_eq!(cuEventRecord(e2, s1), SUCCESS);
            assert_eq!(
                cuEventElapsedTime_v2(&mut ms, e, e2),
                NOT_READY,
                "e2 has not run"
            );
            assert_eq!(cuEventSynchronize(e2), SUCCESS);
            assert_eq!(cuEventElapsedTime_v2(&mut ms, e, e2), SUCCESS);
        }
        assert!(ms >= 0.0);
    });
}

#[test]
fn without_a_current_context_calls_fail() {
    with_context(|_| {
        let r = std::thread::spawn(|| alloc_result(8))
            .join()
            .expect("thread");
        assert_eq!(r, INVALID_CONTEXT, "a thread that did not bind the context");
        let ctx = {
            let mut c = null_mut();
            // SAFETY: a valid output pointer.
            assert_eq!(unsafe { cuCtxGetCurrent(&mut c) }, SUCCESS);
            c as usize
        };
        let r = std::thread::spawn(move || {
            assert_eq!(cuCtxSetCurrent(ctx as *mut c_void), SUCCESS);
            alloc_result(8)
        })
        .join()
        .expect("thread");
        assert_eq!(r, SUCCESS, "after binding");
    });
}

#[test]
fn capture_records_work_and_a_graph_replays_it() {
    with_context(|_| {
        let s = stream();
        let f = kernel();
        let (a, b) = (alloc(32 * 8), alloc(32 * 8));
        assert_eq!(upload(a, &(0..32).collect::<Vec<u64>>(), s), SUCCESS);
        assert_eq!(cuStreamSynchronize(s), SUCCESS);
        assert_eq!(cuStreamBeginCapture_v2(s, MODE_THREAD_LOCAL), SUCCESS);
        // a = a + 1 through b, twice per replay.
        for _ in 0..2 {
            assert_eq!(launch_inc(f, a, b, 32, 1, s), SUCCESS);
            assert_eq!(cuMemcpyDtoDAsync_v2(a, b, 32 * 8, s), SUCCESS);
        }
        let mut status = 9;
        // SAFETY: valid output pointers.
        unsafe {
            assert_eq!(cuStreamIsCapturing(s, &mut status), SUCCESS);
        }
        assert_eq!(status, 1);
        // Nothing ran: the capture holds the work.
        let (mut graph, mut exec) = (null_mut(), null_mut());
        // SAFETY: valid output pointers.
        unsafe {
            assert_eq!(cuStreamEndCapture(s, &mut graph), SUCCESS);
            assert_eq!(cuGraphInstantiateWithFlags(&mut exec, graph, 0), SUCCESS);
        }
        let (_, before) = download(a, 32, s);
        assert_eq!(
            before,
            (0..32).collect::<Vec<u64>>(),
            "the capture ran nothing"
        );
        assert_eq!(cuGraphLaunch(exec, s), SUCCESS);
        assert_eq!(cuGraphLaunch(exec, s), SUCCESS);
        let (r, out) = download(a, 32, s);
        assert_eq!(r, SUCCESS);
        assert_eq!(out, (4..36).collect::<Vec<u64>>());
        assert_eq!(cuGraphExecDestroy(exec), SUCCESS);
        assert_eq!(cuGraphDestroy(graph), SUCCESS);
    });
}

#[test]
fn unsafe_calls_during_a_capture_fail_and_invalidate_it() {
    with_context(|_| {
        let s = stream();
        let a = alloc(64);
        let end = |s| {
            let mut g = null_mut();
            // SAFETY: a valid output pointer.
            let r = unsafe { cuStreamEndCapture(s, &mut g) };
            (r, g)
        };
        // Thread-local mode: this thread may not allocate, synchronise or copy synchronously.
        type Call = Box<dyn Fn(*mut c_void) -> CuResult>;
        let calls: Vec<(&str, Call)> = vec![
            ("cuMemAlloc", Box::new(|_| alloc_result(8))),
            ("cuCtxSynchronize", Box::new(|_| cuCtxSynchronize())),
            ("cuStreamSynchronize", Box::new(|s| cuStreamSynchronize(s))),
            ("cuMemFree", Box::new(move |_| cuMemFree_v2(a))),
            ("download", Box::new(move |s| download(a, 8, s).0)),
            ("upload", Box::new(move |s| upload(a, &[1; 8], s))),
        ];
        for (what, call) in &calls {
            assert_eq!(cuStreamBeginCapture_v2(s, MODE_THREAD_LOCAL), SUCCESS);
            assert_eq!(call(s), STREAM_CAPTURE_UNSUPPORTED, "{what}");
            let (r, g) = end(s);
            assert_eq!(r, STREAM_CAPTURE_INVALIDATED, "{what}");
            assert!(g.is_null());
        }
        // Relaxed on this thread: the allocation is allowed and the capture stays valid.
        assert_eq!(cuStreamBeginCapture_v2(s, MODE_THREAD_LOCAL), SUCCESS);
        let mut mode = MODE_RELAXED;
        // SAFETY: a valid pointer.
        unsafe { assert_eq!(cuThreadExchangeStreamCaptureMode(&mut mode), SUCCESS) };
        let p = alloc(8);
        // SAFETY: as above.
        unsafe { assert_eq!(cuThreadExchangeStreamCaptureMode(&mut mode), SUCCESS) };
        assert_eq!(mode, MODE_RELAXED);
        let (r, g) = end(s);
        assert_eq!(r, SUCCESS);
        assert!(!g.is_null());
        assert_eq!(cuMemFree_v2(p), SUCCESS);
        // Another thread is not barred by a thread-local capture, but may not end it.
        assert_eq!(cuStreamBeginCapture_v2(s, MODE_THREAD_LOCAL), SUCCESS);
        let ctx = {
            let mut c = null_mut();
            // SAFETY: a valid output pointer.
            assert_eq!(unsafe { cuCtxGetCurrent(&mut c) }, SUCCESS);
            c as usize
        };
        let su = s as usize;
        let (alloc_r, end_r) = std::thread::spawn(move || {
            assert_eq!(cuCtxSetCurrent(ctx as *mut c_void), SUCCESS);
            let mut q = 0;
            // SAFETY: valid output pointers.
            let r = unsafe { cuMemAlloc_v2(&mut q, 8) };
            let mut g = null_mut();
            // SAFETY: as above.
            (r, unsafe { cuStreamEndCapture(su as *mut c_void, &mut g) })
        })
        .join()
        .expect("thread");
        assert_eq!(alloc_r, SUCCESS);
        assert_eq!(end_r, STREAM_CAPTURE_WRONG_THREAD);
        assert_eq!(end(s).0, SUCCESS);
        // A capture on a capturing stream, and an end without a capture.
        assert_eq!(cuStreamBeginCapture_v2(s, MODE_GLOBAL), SUCCESS);
        assert_ne!(cuStreamBeginCapture_v2(s, MODE_GLOBAL), SUCCESS);
        assert_eq!(end(s).0, SUCCESS);
        assert_eq!(end(s).0, STREAM_CAPTURE_UNMATCHED);
    });
}

#[test]
fn ptx_for_a_newer_driver_or_device_is_refused() {
    with_context(|_| {
        for (text, code) in [
            (c".version 9.1\n.target sm_90\n.address_size 64\n", UNSUPPORTED_PTX_VERSION),
            (c".version 10.0\n.target sm_90\n.address_size 64\n", UNSUPPORTED_PTX_VERSION),
            (c".version 9.0\n.target sm_100\n.address_size 64\n", INVALID_PTX),
            (c".version 9.0\n.target sm_89a\n.address_size 64\n", INVALID_PTX),
            (c".version 9.0\n.target sm_90\n.address_size 64\n.visible .entry k()\n{\n.reg .f64 %fd<5>;\nfma.rn.f64 %fd1, %fd2, %fd3, %fd4;\n}\n", INVALID_PTX),
        ] {
            let mut m = null_mut();
            // SAFETY: a valid output pointer and a NUL-terminated text.
            assert_eq!(unsafe { cuModuleLoadData(&mut m, text.as_ptr().cast()) }, code, "{text:?}");
        }
        let mut m = null_mut();
        // SAFETY: as above.
        assert_eq!(
            unsafe {
                cuModuleLoadData(
                    &mut m,
                    c".version 8.8\n.target sm_80\n.address_size 64\n"
                        .as_ptr()
                        .cast(),
                )
            },
            SUCCESS
        );
    });
}

#[test]
fn launch_limits_are_checked_when_queued() {
    with_context(|_| {
        let s = stream();
        let f = kernel();
        let (a, b) = (alloc(8), alloc(8));
        let (mut pa, mut pb, mut n) = (a, b, 1u32);
        let mut params: [*mut c_void; 3] = [
            (&mut pa as *mut u64).cast(),
            (&mut pb as *mut u64).cast(),
            (&mut n as *mut u32).cast(),
        ];
        let p = params.as_mut_ptr();
        // SAFETY: one pointer per parameter, each to a value of its size.
        unsafe {
            assert_eq!(
                cuLaunchKernel(f, 1, 1, 1, 2048, 1, 1, 0, s, p, null_mut()),
                INVALID_VALUE
            );
            assert_eq!(
                cuLaunchKernel(f, 1, 1, 1, 512, 4, 1, 0, s, p, null_mut()),
                LAUNCH_OUT_OF_RESOURCES
            );
            assert_eq!(
                cuLaunchKernel(f, 0, 1, 1, 32, 1, 1, 0, s, p, null_mut()),
                INVALID_VALUE
            );
            assert_eq!(
                cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 64 * 1024, s, p, null_mut()),
                INVALID_VALUE
            );
            assert_eq!(
                cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, s, null_mut(), null_mut()),
                INVALID_VALUE
            );
            assert_eq!(cuFuncSetAttribute(f, 8, 64 * 1024), SUCCESS);
            assert_eq!(
                cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 64 * 1024, s, p, null_mut()),
                SUCCESS
            );
        }
        // b = a + 1 of a never written: an uninitialised read, at the synchronisation.
        assert_eq!(cuStreamSynchronize(s), LAUNCH_FAILED);
    });
}

#[test]
fn use_after_free_and_not_emulated_calls_fail() {
    with_context(|_| {
        let s = stream();
        let f = kernel();
        let (a, b) = (alloc(32 * 8), alloc(32 * 8));
        assert_eq!(upload(a, &[7; 32], s), SUCCESS);
        assert_eq!(cuStreamSynchronize(s), SUCCESS);
        assert_eq!(cuMemFree_v2(a), SUCCESS);
        assert_eq!(cuMemFree_v2(a), INVALID_VALUE, "a double free");
        assert_eq!(launch_inc(f, a, b, 32, 1, s), SUCCESS);
        assert_eq!(cuStreamSynchronize(s), ILLEGAL_ADDRESS);
    });
    with_context(|_| {
        assert_eq!(cuda::driver::not_emulated::cuMemHostAlloc(), NOT_SUPPORTED);
    });
}
