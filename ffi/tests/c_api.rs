//! The C ABI from C and C++: programs in tests/c and tests/cpp, compiled with the system's
//! compilers (`CC`, `CXX`, default cc and c++) against include/helora.h and this crate's
//! libraries, run on a small random adapter and checked here against the plaintext LoRA
//! delta in f64. `HELORA_FFI_RUNNER` runs each program under a checker (CI: valgrind,
//! which fails the run on an invalid access or a leak).

#[path = "../../engine/tests/serve_common/mod.rs"]
mod serve_common;

use rand::{Rng, SeedableRng};
use serve_common::{
    add_client, assert_deltas, random_input, write_adapter, Factors, Server, TempDir,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where cargo put libhelora_ffi.{so,a} for this test: beside it in deps/ (`cargo build`
/// copies them up a directory, where an older build may have left them).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    assert!(
        deps.join("libhelora_ffi.so").is_file() && deps.join("libhelora_ffi.a").is_file(),
        "cargo built no libhelora_ffi.so and libhelora_ffi.a in {}",
        deps.display()
    );
    deps
}

fn source(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(path)
}

fn run_checked(command: &mut Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Compiles a C program against the shared library (found at run time by its rpath).
fn compile_c(name: &str) -> PathBuf {
    compile_c_file(&source(&format!("c/{name}.c")), name)
}

fn compile_c_file(file: &Path, name: &str) -> PathBuf {
    let lib = library_dir();
    compile(
        ("CC", "cc", "-std=c11"),
        file,
        &format!("ffi-{name}"),
        &[
            format!("-L{}", lib.display()),
            // RPATH, not RUNPATH: cargo's LD_LIBRARY_PATH names target/<profile>, where
            // `cargo build` leaves a copy that may be older than this test's.
            format!("-Wl,--disable-new-dtags,-rpath,{}", lib.display()),
            "-lhelora_ffi".to_string(),
            "-lm".to_string(),
        ],
    )
}

/// Compiles a C++ program against the static library.
fn compile_cpp(name: &str) -> PathBuf {
    let mut link = vec![library_dir().join("libhelora_ffi.a").display().to_string()];
    // What the Rust standard library needs of the system (rustc --print native-static-libs).
    link.extend(
        [
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ]
        .map(String::from),
    );
    compile(
        ("CXX", "c++", "-std=c++17"),
        &source(&format!("cpp/{name}.cpp")),
        &format!("ffi-{name}-cpp"),
        &link,
    )
}

/// Compiles `file` with the compiler `(env var, default, standard)`, warnings as errors,
/// against include/, then `link`; the executable's path.
fn compile(compiler: (&str, &str, &str), file: &Path, exe: &str, link: &[String]) -> PathBuf {
    let (var, default, standard) = compiler;
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(exe);
    let program = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    run_checked(
        Command::new(&program)
            .args([
                standard,
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-g",
                "-O1",
            ])
            .arg(format!("-I{}", include.display()))
            .arg(file)
            .args(link)
            .arg("-o")
            .arg(&exe),
        &format!("{program} {}", file.display()),
    );
    exe
}

/// Runs a test program, under `HELORA_FFI_RUNNER` when set; its stdout.
fn run(exe: &Path, args: &[&str]) -> String {
    let runner = std::env::var("HELORA_FFI_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    run_checked(command.args(args), &format!("{} {args:?}", exe.display()))
}

fn write_floats(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("writes the input");
}

fn read_floats(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("the program wrote its output")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A fresh random adapter and input (the seed is printed: a failure can be replayed).
struct Case {
    dir: TempDir,
    factors: Factors,
    layer: usize,
    x: Vec<f32>,
}

impl Case {
    fn new(tag: &str) -> Self {
        let seed: u64 = rand::rng().random();
        println!("{tag}: seed {seed}");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let dir = TempDir::new(&format!("ffi-{tag}"));
        let factors = write_adapter(&dir.path().join("adapter"), rng.random());
        let layer = rng.random_range(0..serve_common::LAYERS);
        let x = random_input(&mut rng);
        write_floats(&dir.path().join("x.f32"), &x);
        Self {
            dir,
            factors,
            layer,
            x,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The program's output: `runs` × (q_proj's delta, v_proj's), each checked against f64
    /// within serve_common's bound (1e-3 of the delta's largest value, far above this
    /// plan's CKKS error and far below a wrong answer).
    fn check(&self, runs: usize) {
        let out = read_floats(&self.dir.path().join("out.f32"));
        assert_eq!(out.len(), runs * 2 * serve_common::D, "the output's length");
        for run in out.chunks(2 * serve_common::D) {
            let deltas: Vec<Vec<f32>> = run.chunks(serve_common::D).map(<[f32]>::to_vec).collect();
            assert_deltas(&self.factors, self.layer, &self.x, &deltas);
        }
    }
}

#[test]
fn c_round_trip_in_one_process_gives_the_plaintext_delta() {
    let case = Case::new("roundtrip");
    let exe = compile_c("roundtrip");
    let layer = case.layer.to_string();
    let stdout = run(
        &exe,
        &[
            &case.path("adapter"),
            &layer,
            &case.path("x.f32"),
            &case.path("out.f32"),
            &case.path("client.key"),
        ],
    );
    assert!(stdout.contains("round trip done"), "{stdout}");
    // The fresh client and the one loaded from its key file.
    case.check(2);
}

#[test]
fn c_error_paths_return_their_codes_and_messages() {
    let case = Case::new("errors");
    let exe = compile_c("errors");
    let stdout = run(&exe, &[&case.path("adapter"), &case.path("")]);
    assert!(stdout.contains("every error path checked"), "{stdout}");
    for code in [
        "HELORA_NULL_POINTER",
        "HELORA_INVALID_HANDLE",
        "HELORA_INVALID_ARGUMENT",
        "HELORA_WRONG_SIZE",
        "HELORA_BAD_MESSAGE",
        "HELORA_REFUSED",
        "HELORA_IO",
    ] {
        assert!(stdout.contains(code), "no {code} path ran:\n{stdout}");
    }
}

#[test]
fn cpp_raii_round_trip_through_the_static_library() {
    let case = Case::new("cpp");
    let exe = compile_cpp("roundtrip");
    let layer = case.layer.to_string();
    let stdout = run(
        &exe,
        &[
            &case.path("adapter"),
            &layer,
            &case.path("x.f32"),
            &case.path("out.f32"),
        ],
    );
    assert!(stdout.contains("caught: HELORA_WRONG_SIZE"), "{stdout}");
    case.check(1);
}

/// The `helora` binary beside this test (`cargo test --workspace` builds it); built here
/// when this crate's tests run alone.
fn ensure_helora_binary() {
    let binary = serve_common::binary();
    if binary.is_file() {
        return;
    }
    let profile = binary
        .parent()
        .and_then(Path::file_name)
        .and_then(|p| p.to_str())
        .expect("a profile directory")
        .to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command.args(["build", "-p", "helora-engine", "--bin", "helora"]);
    if profile != "debug" {
        command.args(["--profile", &profile]);
    }
    run_checked(&mut command, "cargo build -p helora-engine --bin helora");
    assert!(
        binary.is_file(),
        "no {} after building it",
        binary.display()
    );
}

#[test]
fn c_client_of_helora_serve_blocking_and_polled() {
    ensure_helora_binary();
    let case = Case::new("remote");
    let exe = compile_c("remote");
    let token = add_client(&case.dir.state(), "c-client", &[]);
    let server = Server::start(
        &case.dir,
        &[
            format!("--adapter=tiny={}", case.path("adapter")),
            "--pll".to_string(),
            "off".to_string(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
        ],
    );
    let layer = case.layer.to_string();
    let stdout = run(
        &exe,
        &[
            &server.url,
            &token,
            &layer,
            &case.path("x.f32"),
            &case.path("out.f32"),
        ],
    );
    assert!(
        stdout.contains("remote round trips done"),
        "{stdout}\n{}",
        server.log()
    );
    // The blocking request and the polled one.
    case.check(2);
}

/// docs/ffi.md's example is a program that compiles cleanly against the header as it is.
#[test]
fn the_docs_example_compiles() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ffi.md");
    let text = std::fs::read_to_string(&docs).expect("docs/ffi.md");
    let example = text
        .split("```c\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```c block in docs/ffi.md");
    assert!(
        example.lines().count() <= 32,
        "the example grew past 30-odd lines"
    );
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi-docs-example.c");
    std::fs::write(&file, example).expect("writes the example");
    compile_c_file(&file, "docs-example");
}
