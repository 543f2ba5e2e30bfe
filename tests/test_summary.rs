//! scripts/test-summary.sh, the last line of scripts/test.sh: tests that print
//! "skipped: <reason>" pass for cargo but are counted as skipped.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn tests_that_print_skipped_are_counted_as_skipped() {
    let log = "\
running 3 tests
test gpu::parity ... skipped: no CUDA driver
ok
test cpu::ntt ... ok
skipped: built without nvcc, so there is no PTX to check
test kernels::ptx ... ok
test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s
";
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-summary.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(log.as_bytes())
        .expect("log written");
    let out = child.wait_with_output().expect("the script ends");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "summary: 5 passed, 1 failed, 2 skipped, 1 ignored"
    );
}
