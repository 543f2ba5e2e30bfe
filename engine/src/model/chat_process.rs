//! Chat templates rendered in a child process. A template is a program: minijinja bounds its
//! instructions (fuel) and the text it writes, but not the memory its values take, so a
//! string doubled forty times (`{% set s = s ~ s %}`) asks for a terabyte, and a failed
//! allocation aborts the whole process. The child is the helora binary itself (the hidden
//! `helora render-chat-template`: a [`Request`] as JSON on stdin, a reply as JSON on
//! stdout); it caps its own address space, the parent kills it past a deadline, and either
//! end becomes an error that names the template.

use super::chat::{ChatMessage, ChatTemplate};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "render-chat-template";

/// Memory a render may add to the child's address space: a real template needs a few MiB.
pub const MEMORY_LIMIT_BYTES: u64 = 1 << 30;

/// Longest render, the child's start included: the fuel stops a runaway loop within a
/// second, and a doubling string reaches the memory limit in about as long.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Largest reply read back: the rendered text (at most 1 MiB) escaped as JSON.
const MAX_REPLY_BYTES: usize = 8 << 20;
/// Largest part of the child's stderr kept for an error.
const MAX_STDERR_BYTES: usize = 64 << 10;

/// What the child renders.
#[derive(Serialize, Deserialize)]
pub struct Request<'a> {
    pub source: Cow<'a, str>,
    /// Where the template came from, for errors.
    pub origin: Cow<'a, str>,
    pub bos_token: Cow<'a, str>,
    pub eos_token: Cow<'a, str>,
    pub messages: Cow<'a, [ChatMessage]>,
    pub add_generation_prompt: bool,
}

/// The child's answer: the text, or the template's own error (already naming it).
#[derive(Serialize, Deserialize)]
enum Reply {
    Text(String),
    Error(String),
}

/// The helora binary templates render in, once this process says it is one.
static RENDERER: OnceLock<PathBuf> = OnceLock::new();

/// Marks this process as the helora binary (its `main`): templates render in children of
/// this executable.
pub fn render_in_children_of_this_binary() {
    if let Ok(exe) = std::env::current_exe() {
        let _ = RENDERER.set(exe);
    }
}

/// The helora binary to render in: this process where it is one, else (a test of the
/// library, run from cargo's `target/<profile>/deps/`) the one cargo built beside it.
/// `None` for any other user of the library: it renders in its own process.
pub fn renderer() -> Option<PathBuf> {
    if let Some(exe) = RENDERER.get() {
        return Some(exe.clone());
    }
    let helora = sibling_binary(&std::env::current_exe().ok()?)?;
    helora.is_file().then_some(helora)
}

/// `target/<profile>/helora` for an executable in `target/<profile>/deps/`.
fn sibling_binary(exe: &Path) -> Option<PathBuf> {
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let name = format!("helora{}", std::env::consts::EXE_SUFFIX);
    Some(deps.parent()?.join(name))
}

/// Renders `request` in a child run of `binary`.
pub fn render_in_child(binary: &Path, request: &Request) -> Result<String> {
    let origin = &request.origin;
    let input = serde_json::to_vec(request).context("encoding the render request")?;
    let mut child = Command::new(binary)
        .arg(SUBCOMMAND)
        // mimalloc (the binary's allocator) reserves 1 GiB of address space up front, which
        // the cap would then not count: without the reserve the cap is what a render uses.
        .env("MIMALLOC_ARENA_RESERVE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{origin}: starting {} to render it", binary.display()))?;
    // Every pipe on a thread of its own, so that the deadline holds whatever the child does.
    let stdin = child.stdin.take().map(|mut pipe| {
        std::thread::spawn(move || {
            // A child that stops early closes the pipe: its exit status says why.
            let _ = pipe.write_all(&input);
        })
    });
    let stdout = child
        .stdout
        .take()
        .map(|pipe| read_capped(pipe, MAX_REPLY_BYTES));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| read_capped(pipe, MAX_STDERR_BYTES));
    let status = wait_until(&mut child, DEADLINE)
        .with_context(|| format!("{origin}: waiting for the template's renderer"))?;
    if let Some(writer) = stdin {
        let _ = writer.join();
    }
    let stdout = joined(stdout)?;
    let stderr = String::from_utf8_lossy(&joined(stderr)?.0).into_owned();
    let Some(status) = status else {
        bail!(
            "{origin}: the template did not finish rendering within {} s",
            DEADLINE.as_secs()
        );
    };
    if !status.success() {
        bail!("{origin}: {}", failure(status, &stderr));
    }
    let (bytes, complete) = stdout;
    if !complete {
        bail!("{origin}: the template's renderer replied with more than {MAX_REPLY_BYTES} bytes");
    }
    match serde_json::from_slice(&bytes) {
        Ok(Reply::Text(text)) => Ok(text),
        Ok(Reply::Error(message)) => Err(anyhow!(message)),
        Err(e) => bail!(
            "{origin}: the template's renderer ({}) gave no reply ({e}){}",
            binary.display(),
            last_line(&stderr).map_or(String::new(), |l| format!(": {l}"))
        ),
    }
}

/// Why a child failed, for people: a failed allocation is the template's memory.
fn failure(status: ExitStatus, stderr: &str) -> String {
    if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
        return format!(
            "the template needs more than {} MiB of memory to render",
            MEMORY_LIMIT_BYTES >> 20
        );
    }
    let detail = last_line(stderr).map_or(String::new(), |l| format!(": {l}"));
    format!("the template's renderer failed ({status}){detail}")
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// A pipe read on a thread: its first bytes, and whether they were all of it.
type PipeReader = std::thread::JoinHandle<std::io::Result<(Vec<u8>, bool)>>;

/// Reads `pipe` to its end on a thread, keeping the first `cap` bytes.
fn read_capped(pipe: impl Read + Send + 'static, cap: usize) -> PipeReader {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut pipe = pipe;
        (&mut pipe).take(cap as u64).read_to_end(&mut kept)?;
        // Drain the rest, so that the child never blocks on a full pipe.
        let rest = std::io::copy(&mut pipe, &mut std::io::sink())?;
        Ok((kept, rest == 0))
    })
}

fn joined(reader: Option<PipeReader>) -> Result<(Vec<u8>, bool)> {
    let Some(reader) = reader else {
        return Ok((Vec::new(), true));
    };
    reader
        .join()
        .map_err(|_| anyhow!("reading the template's renderer panicked"))?
        .context("reading the template's renderer")
}

/// The child's exit status, or `None` where it ran past `deadline` (then it is killed).
fn wait_until(child: &mut Child, deadline: Duration) -> std::io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `helora render-chat-template`: caps this process's memory, renders the request on stdin
/// and writes the reply on stdout.
pub fn serve() -> Result<()> {
    limit_memory(MEMORY_LIMIT_BYTES)?;
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("reading the render request")?;
    let request: Request = serde_json::from_slice(&input).context("decoding the render request")?;
    let rendered = ChatTemplate::new(
        &request.source,
        Some(&request.bos_token),
        Some(&request.eos_token),
    )
    .map(|template| template.named(&request.origin))
    .and_then(|template| template.render_here(&request.messages, request.add_generation_prompt));
    let reply = match rendered {
        Ok(text) => Reply::Text(text),
        Err(e) => Reply::Error(format!("{e:#}")),
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &reply).context("writing the rendered template")?;
    out.flush().context("writing the rendered template")
}

/// Lets this process's address space grow by at most `bytes` more: past it an allocation
/// fails (and aborts the process) instead of taking the machine's memory.
#[cfg(unix)]
fn limit_memory(bytes: u64) -> Result<()> {
    let now = address_space().unwrap_or(0);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write the one struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_AS, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("reading the memory limit");
        }
        limit.rlim_cur = limit
            .rlim_cur
            .min(now.saturating_add(bytes) as libc::rlim_t);
        if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("limiting the memory");
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn limit_memory(_bytes: u64) -> Result<()> {
    Ok(())
}

/// Bytes of address space this process has mapped (Linux: `VmSize` in /proc/self/status).
fn address_space() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmSize:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib << 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_binary_finds_the_helora_binary_beside_its_deps() {
        let name = format!("helora{}", std::env::consts::EXE_SUFFIX);
        assert_eq!(
            sibling_binary(Path::new("/t/debug/deps/model_files-0123")),
            Some(Path::new("/t/debug").join(name))
        );
        assert_eq!(sibling_binary(Path::new("/usr/local/bin/helora")), None);
    }

    #[test]
    fn a_failed_allocation_reads_as_the_templates_memory() {
        let status = std::process::Command::new("false")
            .status()
            .expect("false runs");
        let oom = failure(status, "memory allocation of 2147483648 bytes failed\n");
        assert!(oom.contains("more than 1024 MiB of memory"), "{oom}");
        let other = failure(status, "warning\nerror: something else\n\n");
        assert!(other.ends_with(": error: something else"), "{other}");
    }

    #[test]
    fn a_child_past_its_deadline_is_killed() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep runs");
        let start = Instant::now();
        let status = wait_until(&mut child, Duration::from_millis(100)).expect("waits");
        assert!(status.is_none());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(child.try_wait().expect("reaped").is_some());
    }

    #[test]
    fn replies_and_requests_survive_json() {
        let messages = [ChatMessage::new("user", "hi \u{0} \"there\"")];
        let request = Request {
            source: "{{ messages[0].content }}".into(),
            origin: "here".into(),
            bos_token: "".into(),
            eos_token: "</s>".into(),
            messages: Cow::Borrowed(&messages),
            add_generation_prompt: true,
        };
        let back: Request = serde_json::from_slice(&serde_json::to_vec(&request).unwrap()).unwrap();
        assert_eq!(back.messages.as_ref(), &messages);
        assert_eq!(
            (back.eos_token.as_ref(), back.add_generation_prompt),
            ("</s>", true)
        );
        let reply = serde_json::to_vec(&Reply::Error("x: failed".into())).unwrap();
        assert!(
            matches!(serde_json::from_slice(&reply).unwrap(), Reply::Error(e) if e == "x: failed")
        );
    }
}
