//! The interpreter's checks on small hand-written kernels: each fault is caught and named,
//! and the same kernels without the fault run clean.

use cuda::device::heap::Heap;
use cuda::error::{ILLEGAL_ADDRESS, LAUNCH_FAILED, MISALIGNED_ADDRESS};
use cuda::ptx::exec::{run, Fault, Launch};
use cuda::ptx::parse::parse;
use std::sync::Arc;

const HEAD: &str =
    ".version 9.0\n.target sm_90\n.address_size 64\n.extern .shared .align 16 .b8 s[];\n";

/// Runs `body` as kernel `k(u64 a, u64 b)` on `grid` × `block` with `shared` bytes, over
/// two buffers of `words` u64 (the first written with 0..words, the second not written).
fn launch(
    body: &str,
    grid: u32,
    block: u32,
    shared: usize,
    words: usize,
) -> (Result<u64, Fault>, Vec<u64>) {
    let text = format!(
        "{HEAD}.visible .entry k(.param .u64 k_param_0, .param .u64 k_param_1)\n{{\n.reg .b64 %rd<20>;\n.reg .b32 %r<20>;\n.reg .pred %p<4>;\n{body}\n}}\n"
    );
    let m = parse(&text).expect("the test kernel parses");
    let kernel = m.kernels["k"].clone();
    let mut heap = Heap::new();
    let a = heap.alloc(words * 8).expect("alloc");
    let b = heap.alloc(words * 8).expect("alloc");
    let snap = heap.snapshot();
    let (xa, _) = snap.find(a, words * 8).expect("a");
    for i in 0..words {
        xa.store(i * 8, 8, i as u64);
    }
    let mut params = a.to_le_bytes().to_vec();
    params.extend(b.to_le_bytes());
    let l = Launch {
        kernel: Arc::clone(&kernel),
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        dynamic_shared: shared,
        params,
        id: 1,
    };
    let r = run(&l, &snap);
    let (xb, _) = snap.find(b, words * 8).expect("b");
    let out = (0..words).map(|i| xb.load(i * 8, 8).0).collect();
    (r, out)
}

/// thread i of block j: b[j*ntid + i] = a[j*ntid + i] * 2, guarded by i < n.
const DOUBLE: &str = "
    ld.param.u64 %rd1, [k_param_0];
    ld.param.u64 %rd2, [k_param_1];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
    setp.ge.u32 %p1, %r4, LIMIT;
    @%p1 bra $L__end;
    mul.wide.u32 %rd3, %r4, 8;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u64 %rd5, [%rd4];
    shl.b64 %rd6, %rd5, 1;
    add.s64 %rd7, %rd2, %rd3;
    st.global.u64 [%rd7], %rd6;
$L__end:
    ret;";

#[test]
fn a_clean_kernel_runs_and_counts_instructions() {
    let (r, out) = launch(&DOUBLE.replace("LIMIT", "64"), 4, 16, 0, 64);
    assert!(r.expect("clean") > 64 * 10);
    assert_eq!(out, (0..64).map(|i| 2 * i).collect::<Vec<u64>>());
}

#[test]
fn a_read_past_the_buffer_is_an_illegal_address() {
    // 65 threads over 64 words: the last one reads one word past the end.
    let (r, _) = launch(&DOUBLE.replace("LIMIT", "65"), 5, 16, 0, 64);
    let f = r.expect_err("out of bounds");
    assert_eq!(f.code, ILLEGAL_ADDRESS);
    assert!(
        f.messages[0].contains("invalid global read of 8 bytes"),
        "{f}"
    );
    assert!(
        f.messages[0].contains("0 bytes past the end of the 512-byte allocation"),
        "{f}"
    );
    assert!(
        f.messages[0].contains("thread [0, 0, 0]") && f.messages[0].contains("block [4, 0, 0]"),
        "{f}"
    );
}

#[test]
fn reading_memory_nothing_wrote_is_reported() {
    // Reads the second buffer (never written).
    let body = DOUBLE
        .replace("LIMIT", "64")
        .replace("add.s64 %rd4, %rd1, %rd3;", "add.s64 %rd4, %rd2, %rd3;");
    let (r, _) = launch(&body, 4, 16, 0, 64);
    let f = r.expect_err("uninitialised");
    assert_eq!(f.code, LAUNCH_FAILED);
    assert!(f.messages[0].contains("uninitialised global memory"), "{f}");
}

#[test]
fn a_misaligned_access_is_reported() {
    let body = DOUBLE.replace("LIMIT", "64").replace(
        "ld.global.u64 %rd5, [%rd4];",
        "ld.global.u64 %rd5, [%rd4+4];",
    );
    let (r, _) = launch(&body, 4, 16, 0, 64);
    assert_eq!(r.expect_err("misaligned").code, MISALIGNED_ADDRESS);
}

#[test]
fn two_blocks_writing_one_word_race() {
    // Every thread writes b[tid] (not b[global index]): blocks collide.
    let body = DOUBLE.replace("LIMIT", "64").replace(
        "add.s64 %rd7, %rd2, %rd3;",
        "mul.wide.u32 %rd8, %r1, 8;\n add.s64 %rd7, %rd2, %rd8;",
    );
    let (r, _) = launch(&body, 4, 16, 0, 64);
    let f = r.expect_err("race");
    assert_eq!(f.code, LAUNCH_FAILED);
    assert!(f.messages[0].contains("global-memory race"), "{f}");
}

/// Block-wide reversal through shared memory: s[t] = a[t]; bar; b[t] = s[ntid-1-t].
const REVERSE: &str = "
    ld.param.u64 %rd1, [k_param_0];
    ld.param.u64 %rd2, [k_param_1];
    mov.u32 %r1, %tid.x;
    mov.u32 %r3, %ntid.x;
    mul.wide.u32 %rd3, %r1, 8;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u64 %rd5, [%rd4];
    mov.u32 %r5, s;
    shl.b32 %r6, %r1, 3;
    add.s32 %r7, %r5, %r6;
    st.shared.u64 [%r7], %rd5;
    BARRIER
    sub.s32 %r8, %r3, 1;
    sub.s32 %r9, %r8, %r1;
    shl.b32 %r10, %r9, 3;
    add.s32 %r11, %r5, %r10;
    ld.shared.u64 %rd6, [%r11];
    add.s64 %rd7, %rd2, %rd3;
    st.global.u64 [%rd7], %rd6;
    ret;";

#[test]
fn a_barrier_orders_shared_memory() {
    let (r, out) = launch(&REVERSE.replace("BARRIER", "bar.sync 0;"), 1, 32, 256, 32);
    r.expect("clean");
    assert_eq!(out, (0..32).rev().collect::<Vec<u64>>());
}

#[test]
fn a_missing_barrier_is_a_shared_memory_race() {
    let (r, _) = launch(&REVERSE.replace("BARRIER", ""), 1, 32, 256, 32);
    let f = r.expect_err("race");
    assert_eq!(f.code, LAUNCH_FAILED);
    assert!(
        f.messages[0].contains("shared-memory race")
            || f.messages[0].contains("uninitialised shared"),
        "{f}"
    );
}

#[test]
fn too_little_shared_memory_is_an_illegal_address() {
    let (r, _) = launch(&REVERSE.replace("BARRIER", "bar.sync 0;"), 1, 32, 128, 32);
    let f = r.expect_err("shared out of bounds");
    assert_eq!(f.code, ILLEGAL_ADDRESS);
    assert!(
        f.messages[0].contains("past the block's 128 bytes of shared memory"),
        "{f}"
    );
}

#[test]
fn a_barrier_after_some_threads_exited_is_reported() {
    let body = "
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 8;
    @%p1 bra $L__end;
    bar.sync 0;
$L__end:
    ret;";
    let (r, _) = launch(body, 1, 16, 0, 1);
    let f = r.expect_err("divergent barrier");
    assert!(
        f.messages[0].contains("bar.sync reached by 8 of 16 threads"),
        "{f}"
    );
}

#[test]
fn threads_at_different_barriers_are_divergent() {
    let body = "
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 8;
    @%p1 bra $L__other;
    bar.sync 0;
    ret;
$L__other:
    bar.sync 0;
    ret;";
    let (r, _) = launch(body, 1, 16, 0, 1);
    let f = r.expect_err("divergent barrier");
    assert!(f.messages[0].contains("divergent barrier"), "{f}");
}

#[test]
fn a_parameter_read_past_the_buffer_is_reported() {
    let (r, _) = launch("ld.param.u64 %rd1, [k_param_1+8];\nret;", 1, 1, 0, 1);
    assert_eq!(r.expect_err("param").code, ILLEGAL_ADDRESS);
}

// ---- memory and control instructions against the PTX ISA ----------------------------------

/// `ld.global.u32` reads 4 bytes (the low half of a little-endian u64) and `st.global.u32`
/// writes 4 bytes, leaving the rest of the word as it was: b[t] = (3·a[t]) << 32 | a[t],
/// written as two 32-bit halves.
#[test]
fn loads_and_stores_move_exactly_their_width() {
    let body = "
    ld.param.u64 %rd1, [k_param_0];
    ld.param.u64 %rd2, [k_param_1];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 8;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u32 %r5, [%rd4];
    mul.lo.s32 %r6, %r5, 3;
    add.s64 %rd7, %rd2, %rd3;
    st.global.u32 [%rd7], %r5;
    st.global.u32 [%rd7+4], %r6;
    ret;";
    let (r, out) = launch(body, 1, 32, 0, 32);
    r.expect("clean");
    assert_eq!(
        out,
        (0..32u64).map(|i| (3 * i) << 32 | i).collect::<Vec<u64>>()
    );
}

/// A predicated backward `bra` is a loop: b[t] = Σ_{k<t} k = t(t−1)/2, each thread taking
/// its own number of trips (divergent control flow that reconverges at `ret`).
#[test]
fn a_predicated_branch_loops_per_thread() {
    let body = "
    ld.param.u64 %rd2, [k_param_1];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, 0;
    mov.u32 %r3, 0;
$L__loop:
    setp.ge.u32 %p1, %r2, %r1;
    @%p1 bra $L__done;
    add.s32 %r3, %r3, %r2;
    add.s32 %r2, %r2, 1;
    bra $L__loop;
$L__done:
    mul.wide.u32 %rd3, %r1, 8;
    add.s64 %rd7, %rd2, %rd3;
    cvt.u64.u32 %rd6, %r3;
    st.global.u64 [%rd7], %rd6;
    ret;";
    let (r, out) = launch(body, 1, 32, 0, 32);
    r.expect("clean");
    assert_eq!(
        out,
        (0..32u64)
            .map(|t| t * t.saturating_sub(1) / 2)
            .collect::<Vec<u64>>()
    );
}
