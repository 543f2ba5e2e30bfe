//! PTX text to [`Module`]: the directives, entries and instructions that nvcc 13.0 emits for
//! helora's kernels. Anything else (an unknown opcode or modifier, `.local` memory, `.func`,
//! module-scope variables, vector loads) is an error here, at module load, never at run
//! time.

use super::ir::*;
use std::collections::HashMap;
use std::sync::Arc;

/// A parse error: the line (1-based) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PTX line {}: {}", self.line, self.message)
    }
}

type PResult<T> = Result<T, ParseError>;

fn err<T>(line: u32, message: impl Into<String>) -> PResult<T> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// A statement: its text (without the `;`) and the line it starts on.
struct Stmt<'a> {
    text: &'a str,
    line: u32,
}

/// Removes `//` and `/* */` comments, keeping the line structure (and so the line numbers).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_block = false;
    while let Some(c) = chars.next() {
        if in_block {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                in_block = false;
            } else if c == '\n' {
                out.push('\n');
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            in_block = true;
            continue;
        }
        out.push(c);
    }
    out
}

/// Splits text into statements at `;`, `{` and `}` (braces become statements of their own).
fn statements(text: &str) -> Vec<Stmt<'_>> {
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut start = 0usize;
    let mut start_line = 1u32;
    for (i, c) in text.char_indices() {
        match c {
            '\n' => line += 1,
            ';' | '{' | '}' => {
                let s = &text[start..i];
                if !s.trim().is_empty() {
                    out.push(Stmt {
                        text: s.trim(),
                        line: start_line
                            + s[..s.len() - s.trim_start().len()].matches('\n').count() as u32,
                    });
                }
                if c != ';' {
                    out.push(Stmt {
                        text: &text[i..i + 1],
                        line,
                    });
                }
                start = i + 1;
                start_line = line;
            }
            _ => {}
        }
    }
    let s = &text[start..];
    if !s.trim().is_empty() {
        out.push(Stmt {
            text: s.trim(),
            line: start_line,
        });
    }
    out
}

/// An integer or float immediate: decimal, `0x` hex, negative, `U` suffix, `0d` (f64 bits)
/// or `0f` (f32 bits, widened to f64).
pub fn parse_imm(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0d").or_else(|| s.strip_prefix("0D")) {
        return (h.len() == 16).then(|| u64::from_str_radix(h, 16).ok())?;
    }
    if let Some(h) = s.strip_prefix("0f").or_else(|| s.strip_prefix("0F")) {
        let bits = (h.len() == 8).then(|| u32::from_str_radix(h, 16).ok())??;
        return Some(f64::from(f32::from_bits(bits)).to_bits());
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let body = body.strip_suffix('U').unwrap_or(body);
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else {
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        body.parse::<u64>().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// `.version 9.0` → (9, 0).
fn parse_version(s: &str, line: u32) -> PResult<(u32, u32)> {
    let (a, b) = s.split_once('.').ok_or_else(|| ParseError {
        line,
        message: format!("bad .version {s}"),
    })?;
    match (a.parse(), b.parse()) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        _ => err(line, format!("bad .version {s}")),
    }
}

/// `sm_90`, `sm_90a` → 90.
fn parse_target(s: &str, line: u32) -> PResult<u32> {
    let digits: String = s
        .strip_prefix("sm_")
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .or_else(|_| err(line, format!("bad .target {s} (an sm_NN target is needed)")))
}

/// Parses a whole module.
pub fn parse(text: &str) -> PResult<Module> {
    // `.version`, `.target` and `.address_size` end at the end of their line (no `;`).
    let clean: String = strip_comments(text)
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if [".version", ".target", ".address_size"]
                .iter()
                .any(|d| t.starts_with(d))
            {
                format!("{l};\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let stmts = statements(&clean);
    let mut version = None;
    let mut target = None;
    let mut shared: HashMap<String, usize> = HashMap::new();
    let mut static_shared = 0usize;
    let mut kernels = HashMap::new();
    let mut i = 0;
    while i < stmts.len() {
        let st = &stmts[i];
        let words: Vec<&str> = st.text.split_whitespace().collect();
        let first = words.first().copied().unwrap_or("");
        match first {
            ".version" => {
                version = Some(parse_version(words.get(1).copied().unwrap_or(""), st.line)?);
                i += 1;
            }
            ".target" => {
                let t = words.get(1).copied().unwrap_or("").trim_end_matches(',');
                target = Some((t.to_string(), parse_target(t, st.line)?));
                // Further targets (e.g. `, texmode_independent`) are not emulated.
                if words.len() > 2 {
                    return err(st.line, format!("unsupported .target {}", st.text));
                }
                i += 1;
            }
            ".address_size" => {
                if words.get(1) != Some(&"64") {
                    return err(st.line, "only .address_size 64 is emulated");
                }
                i += 1;
            }
            _ if st.text.contains(".entry") => {
                let (k, next) = parse_entry(&stmts, i, &shared, static_shared)?;
                kernels.insert(k.name.clone(), Arc::new(k));
                i = next;
            }
            _ if words.contains(&".shared") && (first == ".extern" || first == ".shared") => {
                let (name, size, align) = shared_decl(st)?;
                if first == ".extern" {
                    // The dynamic array: after the static variables.
                    shared.insert(name, usize::MAX);
                } else {
                    static_shared = static_shared.div_ceil(align) * align;
                    shared.insert(name, static_shared);
                    static_shared += size;
                }
                i += 1;
            }
            _ => {
                return err(
                    st.line,
                    format!("unsupported module statement `{}`", st.text),
                )
            }
        }
    }
    let Some(version) = version else {
        return err(1, "no .version directive");
    };
    let Some((target, sm)) = target else {
        return err(1, "no .target directive");
    };
    Ok(Module {
        version,
        sm,
        target,
        kernels,
    })
}

/// `.shared .align 8 .b8 name[N]` → (name, N × element size, alignment).
fn shared_decl(st: &Stmt) -> PResult<(String, usize, usize)> {
    let words: Vec<&str> = st.text.split_whitespace().collect();
    let mut align = 1usize;
    let mut elem = 0usize;
    let mut name = None;
    let mut k = 0;
    while k < words.len() {
        match words[k] {
            ".extern" | ".shared" => {}
            ".align" => {
                k += 1;
                align = words
                    .get(k)
                    .and_then(|a| a.parse().ok())
                    .filter(|a: &usize| a.is_power_of_two())
                    .ok_or_else(|| ParseError {
                        line: st.line,
                        message: "bad .align".into(),
                    })?;
            }
            w if w.starts_with('.') => {
                elem = Ty::parse(&w[1..])
                    .map(Ty::bytes)
                    .ok_or_else(|| ParseError {
                        line: st.line,
                        message: format!("bad type {w}"),
                    })?;
            }
            w => name = Some(w),
        }
        k += 1;
    }
    let Some(decl) = name else {
        return err(st.line, "a .shared declaration without a name");
    };
    let (name, count) = array_decl(decl, st.line)?;
    Ok((name, elem * count.unwrap_or(1), align.max(elem)))
}

/// `name[16]` → (name, Some(16)); `name[]` → (name, Some(0)); `name` → (name, None).
fn array_decl(s: &str, line: u32) -> PResult<(String, Option<usize>)> {
    match s.split_once('[') {
        None => Ok((s.to_string(), None)),
        Some((n, rest)) => {
            let count = rest.strip_suffix(']').ok_or_else(|| ParseError {
                line,
                message: format!("bad array {s}"),
            })?;
            let count = if count.is_empty() {
                0
            } else {
                count
                    .parse()
                    .or_else(|_| err(line, format!("bad array size {s}")))?
            };
            Ok((n.to_string(), Some(count)))
        }
    }
}

/// The parameters of an entry: `.param .u64 name`, `.param .align 8 .b8 name[768]`.
fn parse_params(list: &str, line: u32) -> PResult<Vec<Param>> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    for p in list.split(',') {
        let words: Vec<&str> = p.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if words[0] != ".param" {
            return err(line, format!("bad parameter `{}`", p.trim()));
        }
        let mut align = 0usize;
        let mut elem = 0usize;
        let mut name = None;
        let mut k = 1;
        while k < words.len() {
            match words[k] {
                ".align" => {
                    k += 1;
                    align = words
                        .get(k)
                        .and_then(|a| a.parse().ok())
                        .filter(|a: &usize| a.is_power_of_two())
                        .ok_or_else(|| ParseError {
                            line,
                            message: format!("bad .align in `{}`", p.trim()),
                        })?;
                }
                ".ptr" | ".global" | ".const" | ".local" | ".shared" => {
                    return err(
                        line,
                        format!("unsupported parameter attribute in `{}`", p.trim()),
                    )
                }
                w if w.starts_with('.') => {
                    let ty = Ty::parse(&w[1..]).filter(|t| t.kind != Kind::Pred);
                    elem = ty.map(Ty::bytes).ok_or_else(|| ParseError {
                        line,
                        message: format!("bad parameter type {w}"),
                    })?;
                }
                w => name = Some(w),
            }
            k += 1;
        }
        let (Some(decl), true) = (name, elem > 0) else {
            return err(line, format!("bad parameter `{}`", p.trim()));
        };
        let (name, count) = array_decl(decl, line)?;
        let size = elem * count.unwrap_or(1);
        if size == 0 {
            return err(line, format!("a parameter of no size: `{}`", p.trim()));
        }
        let align = if align == 0 { elem } else { align };
        offset = offset.div_ceil(align) * align;
        out.push(Param {
            name,
            offset,
            size,
            align,
        });
        offset += size;
    }
    Ok(out)
}

/// Parses `.visible .entry name(params) [performance directives] { body }` starting at
/// statement `i`; returns the kernel and the index after its closing brace.
fn parse_entry(
    stmts: &[Stmt],
    i: usize,
    shared: &HashMap<String, usize>,
    static_shared: usize,
) -> PResult<(Kernel, usize)> {
    let head = &stmts[i];
    let line = head.line;
    let words: Vec<&str> = head.text.split_whitespace().collect();
    if !matches!(words.first(), Some(&".visible") | Some(&".entry")) {
        return err(line, format!("unsupported declaration `{}`", head.text));
    }
    let after = head.text.split_once(".entry").map(|x| x.1).unwrap_or("");
    let (name, rest) = after.split_once('(').ok_or_else(|| ParseError {
        line,
        message: "an .entry without a parameter list".into(),
    })?;
    let name = name.trim().to_string();
    let (list, directives) = rest.split_once(')').ok_or_else(|| ParseError {
        line,
        message: "unclosed parameter list".into(),
    })?;
    let params = parse_params(list, line)?;
    let mut max_threads = None;
    let mut required_block = None;
    let dirs: Vec<&str> = directives.split_whitespace().collect();
    let mut k = 0;
    while k < dirs.len() {
        let dims = |k: usize| -> PResult<[u32; 3]> {
            let mut d = [1u32; 3];
            let vals: Vec<&str> = dirs[k + 1..]
                .iter()
                .take_while(|w| !w.starts_with('.'))
                .flat_map(|w| w.split(','))
                .filter(|w| !w.is_empty())
                .collect();
            if vals.is_empty() || vals.len() > 3 {
                return err(line, format!("bad {}", dirs[k]));
            }
            for (j, v) in vals.iter().enumerate() {
                d[j] = v
                    .parse()
                    .or_else(|_| err(line, format!("bad {}", dirs[k])))?;
            }
            Ok(d)
        };
        match dirs[k] {
            ".maxntid" => {
                let d = dims(k)?;
                max_threads = Some(d[0] * d[1] * d[2]);
            }
            ".reqntid" => required_block = Some(dims(k)?),
            ".minnctapersm" | ".maxnreg" | ".maxclusterrank" => {}
            w if w.starts_with('.') => {
                return err(line, format!("unsupported entry directive {w}"))
            }
            _ => {}
        }
        k += 1;
    }
    if stmts.get(i + 1).map(|s| s.text) != Some("{") {
        return err(line, format!("entry {name} without a body"));
    }
    // The body: statements up to the matching brace.
    let mut depth = 0usize;
    let mut j = i + 1;
    let mut body = Vec::new();
    loop {
        let Some(st) = stmts.get(j) else {
            return err(line, format!("entry {name}: unclosed body"));
        };
        match st.text {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => body.push(st),
        }
        j += 1;
    }
    let kernel = Body::new(&name, &params, shared, static_shared).build(&body)?;
    Ok((
        Kernel {
            name,
            param_bytes: params.last().map_or(0, |p| p.offset + p.size),
            params,
            code: kernel.0,
            nregs: kernel.1,
            static_shared,
            max_threads,
            required_block,
        },
        j + 1,
    ))
}

/// Decoding state of one entry's body.
struct Body<'a> {
    name: &'a str,
    params: &'a [Param],
    shared: &'a HashMap<String, usize>,
    static_shared: usize,
    regs: HashMap<String, u16>,
    /// Declared registers: `.reg .b32 %r<10>` as ("%r", 10), `.reg .b32 %x` as ("%x", 0).
    declared: Vec<(String, u32)>,
}

const SPECIAL: [&str; 12] = [
    "%tid.x",
    "%tid.y",
    "%tid.z",
    "%ntid.x",
    "%ntid.y",
    "%ntid.z",
    "%ctaid.x",
    "%ctaid.y",
    "%ctaid.z",
    "%nctaid.x",
    "%nctaid.y",
    "%nctaid.z",
];

impl<'a> Body<'a> {
    fn new(
        name: &'a str,
        params: &'a [Param],
        shared: &'a HashMap<String, usize>,
        static_shared: usize,
    ) -> Self {
        let regs = SPECIAL
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i as u16))
            .collect();
        Body {
            name,
            params,
            shared,
            static_shared,
            regs,
            declared: Vec::new(),
        }
    }

    fn reg(&mut self, s: &str, line: u32) -> PResult<u16> {
        if !s.starts_with('%') || s.len() < 2 {
            return err(line, format!("`{s}` is not a register"));
        }
        if s.starts_with("%tid")
            || s.starts_with("%ntid")
            || s.starts_with("%ctaid")
            || s.starts_with("%nctaid")
        {
            return self.regs.get(s).copied().ok_or_else(|| ParseError {
                line,
                message: format!("unknown special register {s}"),
            });
        }
        if !self.is_declared(s) {
            return err(line, format!("register {s} is not declared (special registers other than %tid, %ntid, %ctaid, %nctaid are not emulated)"));
        }
        let n = self.regs.len();
        if n >= u16::MAX as usize {
            return err(line, "too many registers");
        }
        Ok(*self.regs.entry(s.to_string()).or_insert(n as u16))
    }

    fn is_declared(&self, s: &str) -> bool {
        self.declared.iter().any(|(name, count)| {
            if *count == 0 {
                return name == s;
            }
            s.strip_prefix(name.as_str())
                .and_then(|n| {
                    n.parse::<u32>()
                        .ok()
                        .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
                })
                .is_some_and(|n| n < *count)
        })
    }

    /// `.reg .b64 %rd<531>` or `.reg .pred %p, %q`.
    fn declare(&mut self, s: &str, line: u32) -> PResult<()> {
        let rest = s.trim_start_matches(".reg").trim_start();
        let Some((ty, names)) = rest.split_once(char::is_whitespace) else {
            return err(line, format!("bad declaration `{s}`"));
        };
        if ty.strip_prefix('.').and_then(Ty::parse).is_none() {
            return err(line, format!("bad register type in `{s}`"));
        }
        for n in names.split(',').map(str::trim) {
            let (name, count) = match n.split_once('<') {
                Some((p, c)) => {
                    let c = c
                        .strip_suffix('>')
                        .and_then(|c| c.trim().parse().ok())
                        .ok_or_else(|| ParseError {
                            line,
                            message: format!("bad register count in `{s}`"),
                        })?;
                    (p.trim(), c)
                }
                None => (n, 0),
            };
            if !name.starts_with('%')
                || name.len() < 2
                || !name[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return err(line, format!("bad register name in `{s}`"));
            }
            self.declared.push((name.to_string(), count));
        }
        Ok(())
    }

    /// A destination register (not a special register).
    fn dst(&mut self, s: &str, line: u32) -> PResult<u16> {
        let r = self.reg(s, line)?;
        if r < SPECIAL_REGS {
            return err(line, format!("{s} is read-only"));
        }
        Ok(r)
    }

    /// A source: register, immediate, or the address of a parameter or shared variable.
    fn src(&mut self, s: &str, line: u32) -> PResult<Src> {
        let s = s.trim();
        if s.starts_with('%') {
            return self.reg(s, line).map(Src::Reg);
        }
        if let Some(p) = self.params.iter().find(|p| p.name == s) {
            return Ok(Src::Imm(p.offset as u64));
        }
        if let Some(&off) = self.shared.get(s) {
            return Ok(Src::Imm(self.shared_offset(off)));
        }
        parse_imm(s).map(Src::Imm).ok_or_else(|| ParseError {
            line,
            message: format!("bad operand `{s}`"),
        })
    }

    fn shared_offset(&self, off: usize) -> u64 {
        if off == usize::MAX {
            self.static_shared as u64
        } else {
            off as u64
        }
    }

    /// `[%rd1+8]`, `[name]`, `[name+16]`: base and offset.
    fn addr(&mut self, s: &str, line: u32) -> PResult<(Src, i64)> {
        let inner = s
            .trim()
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .ok_or_else(|| ParseError {
                line,
                message: format!("bad address `{s}`"),
            })?;
        let (base, off) = match inner.find(['+', '-']).filter(|&i| i > 0) {
            Some(i) => {
                let off =
                    parse_imm(inner[i..].trim_start_matches('+')).ok_or_else(|| ParseError {
                        line,
                        message: format!("bad address offset `{s}`"),
                    })? as i64;
                (&inner[..i], off)
            }
            None => (inner, 0),
        };
        let base = base.trim();
        if base.starts_with('%') {
            return Ok((Src::Reg(self.reg(base, line)?), off));
        }
        match self.src(base, line)? {
            Src::Imm(a) => Ok((Src::Imm(0), (a as i64).wrapping_add(off))),
            Src::Reg(r) => Ok((Src::Reg(r), off)),
        }
    }

    /// Decodes the body's statements: labels first, then instructions.
    fn build(mut self, body: &[&Stmt]) -> PResult<(Vec<Ins>, usize)> {
        let mut labels: HashMap<&str, u32> = HashMap::new();
        let mut insts: Vec<(&Stmt, &str)> = Vec::new();
        for st in body {
            let mut s = st.text;
            // Labels before the instruction (`$L__BB0_2:`).
            while let Some(i) = s.find(':') {
                let label = s[..i].trim();
                if label.is_empty()
                    || !label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
                {
                    break;
                }
                if labels.insert(label, insts.len() as u32).is_some() {
                    return err(st.line, format!("label {label} defined twice"));
                }
                s = s[i + 1..].trim();
            }
            if s.is_empty() {
                continue;
            }
            if s.starts_with(".reg") {
                self.declare(s, st.line)?;
                continue;
            }
            if s.starts_with('.') {
                return err(
                    st.line,
                    format!(
                        "{}: unsupported declaration `{s}` (only .reg is emulated in a body)",
                        self.name
                    ),
                );
            }
            insts.push((st, s));
        }
        let mut code = Vec::with_capacity(insts.len());
        for (st, s) in insts {
            let ins = self
                .instruction(s, st.line, &labels)
                .map_err(|e| ParseError {
                    line: e.line,
                    message: format!("{}: `{s}`: {}", self.name, e.message),
                })?;
            code.push(ins);
        }
        // A thread that runs off the end exits, as at `ret`.
        code.push(Ins {
            op: Op::Ret,
            guard: None,
            d: 0,
            a: Src::Imm(0),
            b: Src::Imm(0),
            c: Src::Imm(0),
            off: 0,
            line: 0,
        });
        Ok((code, self.regs.len()))
    }

    fn instruction(&mut self, s: &str, line: u32, labels: &HashMap<&str, u32>) -> PResult<Ins> {
        let (guard, s) = match s.strip_prefix('@') {
            Some(g) => {
                let (p, rest) = g
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| ParseError {
                        line,
                        message: "a guard without an instruction".into(),
                    })?;
                let (neg, p) = match p.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, p),
                };
                (Some((self.reg(p, line)?, neg)), rest.trim())
            }
            None => (None, s),
        };
        let (opcode, rest) = match s.split_once(char::is_whitespace) {
            Some((o, r)) => (o, r.trim()),
            None => (s, ""),
        };
        let operands: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split(',').map(str::trim).collect()
        };
        let mut ins = Ins {
            op: Op::Ret,
            guard,
            d: 0,
            a: Src::Imm(0),
            b: Src::Imm(0),
            c: Src::Imm(0),
            off: 0,
            line,
        };
        let parts: Vec<&str> = opcode.split('.').collect();
        let base = parts[0];
        let mods = &parts[1..];
        let arity = |n: usize| -> PResult<()> {
            if operands.len() == n {
                Ok(())
            } else {
                err(
                    line,
                    format!("{n} operands expected, {} given", operands.len()),
                )
            }
        };
        // The type is the last modifier for most instructions.
        let ty_at = |i: usize| -> PResult<Ty> {
            mods.get(i)
                .and_then(|t| Ty::parse(t))
                .ok_or_else(|| ParseError {
                    line,
                    message: format!("bad or missing type in {opcode}"),
                })
        };
        let only = |allowed: &[&str], n: usize| -> PResult<()> {
            // `n` leading modifiers must be among `allowed`, and nothing else but the type.
            if mods.len() != n + 1 || !mods[..n].iter().all(|m| allowed.contains(m)) {
                return err(line, format!("unsupported modifiers in {opcode}"));
            }
            Ok(())
        };
        let int = |t: Ty| -> PResult<Ty> {
            if matches!(t.kind, Kind::Float | Kind::Pred) {
                err(line, format!("{opcode}: an integer type is needed"))
            } else {
                Ok(t)
            }
        };
        macro_rules! dab {
            ($n:expr) => {{
                arity($n)?;
                ins.d = self.dst(operands[0], line)?;
                ins.a = self.src(operands[1], line)?;
                if $n > 2 {
                    ins.b = self.src(operands[2], line)?;
                }
                if $n > 3 {
                    ins.c = self.src(operands[3], line)?;
                }
            }};
        }
        ins.op = match base {
            "add" | "sub" | "mul" => {
                let t = ty_at(mods.len().saturating_sub(1))?;
                dab!(3);
                if t.kind == Kind::Float {
                    if t.bits != 64 {
                        return err(line, "only f64 arithmetic is emulated");
                    }
                    let round = match mods {
                        [_] => Round::Nearest,
                        [r, _] => rounding(r).ok_or_else(|| ParseError {
                            line,
                            message: format!("unsupported modifier .{r}"),
                        })?,
                        _ => return err(line, format!("unsupported modifiers in {opcode}")),
                    };
                    match base {
                        "add" => Op::FAdd(round),
                        "sub" => Op::FSub(round),
                        _ => Op::FMul(round),
                    }
                } else {
                    match (base, mods) {
                        ("add", [_]) => Op::Add(int(t)?),
                        ("sub", [_]) => Op::Sub(int(t)?),
                        ("mul", ["lo", _]) => Op::MulLo(int(t)?),
                        ("mul", ["hi", _]) => Op::MulHi(int(t)?),
                        ("mul", ["wide", _]) if t.bits <= 32 && t.kind != Kind::Bits => {
                            Op::MulWide(t)
                        }
                        _ => return err(line, format!("unsupported {opcode}")),
                    }
                }
            }
            "mad" => {
                only(&["lo"], 1)?;
                dab!(4);
                Op::MadLo(int(ty_at(1)?)?)
            }
            "div" | "rem" => {
                only(&[], 0)?;
                dab!(3);
                let t = int(ty_at(0)?)?;
                if t.kind == Kind::Bits {
                    return err(line, format!("{opcode}: .u or .s type needed"));
                }
                if base == "div" {
                    Op::Div(t)
                } else {
                    Op::Rem(t)
                }
            }
            "shl" | "shr" | "and" | "or" | "xor" | "min" | "max" => {
                only(&[], 0)?;
                dab!(3);
                let t = ty_at(0)?;
                let t = if t.kind == Kind::Pred && matches!(base, "and" | "or" | "xor") {
                    t
                } else {
                    int(t)?
                };
                match base {
                    "shl" => Op::Shl(t),
                    "shr" => Op::Shr(t),
                    "and" => Op::And(t),
                    "or" => Op::Or(t),
                    "xor" => Op::Xor(t),
                    "min" => Op::Min(t),
                    _ => Op::Max(t),
                }
            }
            "not" => {
                only(&[], 0)?;
                dab!(2);
                let t = ty_at(0)?;
                if t.kind == Kind::Float {
                    return err(line, "not of a float");
                }
                Op::Not(t)
            }
            "selp" => {
                only(&[], 0)?;
                dab!(4);
                Op::Selp(ty_at(0)?)
            }
            "setp" => {
                // setp.cmp.type p, a, b (no combining .and/.or, no second destination).
                if mods.len() != 2 || operands.first().is_some_and(|d| d.contains('|')) {
                    return err(line, format!("unsupported {opcode}"));
                }
                let t = ty_at(1)?;
                let unsigned_only = matches!(mods[0], "lo" | "ls" | "hi" | "hs");
                let cmp = match mods[0] {
                    "eq" => Cmp::Eq,
                    "ne" => Cmp::Ne,
                    "lt" | "lo" => Cmp::Lt,
                    "le" | "ls" => Cmp::Le,
                    "gt" | "hi" => Cmp::Gt,
                    "ge" | "hs" => Cmp::Ge,
                    m => return err(line, format!("unsupported comparison .{m}")),
                };
                if unsigned_only && t.kind != Kind::Unsigned && t.kind != Kind::Bits {
                    return err(line, format!(".{} needs an unsigned type", mods[0]));
                }
                if t.kind == Kind::Float && t.bits != 64 {
                    return err(line, "only f64 comparisons are emulated");
                }
                dab!(3);
                Op::Setp(cmp, t)
            }
            "brev" => {
                only(&[], 0)?;
                dab!(2);
                let t = ty_at(0)?;
                if t.kind != Kind::Bits || t.bits < 32 {
                    return err(line, "brev.b32 or brev.b64 expected");
                }
                Op::Brev(t)
            }
            "bfind" => {
                let shift_amount = match mods.len() {
                    1 => false,
                    2 if mods[0] == "shiftamt" => true,
                    _ => return err(line, format!("unsupported {opcode}")),
                };
                let t = int(ty_at(mods.len() - 1)?)?;
                if t.bits < 32 || t.kind == Kind::Bits {
                    return err(line, "bfind.u32/.s32/.u64/.s64 expected");
                }
                dab!(2);
                Op::Bfind {
                    ty: t,
                    shift_amount,
                }
            }
            "mov" => {
                only(&[], 0)?;
                dab!(2);
                Op::Mov(ty_at(0)?)
            }
            "cvta" => {
                // cvta.to.global.u64: generic to global; the emulator's generic and global
                // addresses are the same.
                if mods != ["to", "global", "u64"] {
                    return err(line, format!("unsupported {opcode}"));
                }
                dab!(2);
                Op::Mov(Ty::U64)
            }
            "cvt" => {
                dab!(2);
                self.cvt(mods, line)?
            }
            "copysign" => {
                only(&[], 0)?;
                dab!(3);
                let t = ty_at(0)?;
                if t != Ty::F64 {
                    return err(line, "only copysign.f64 is emulated");
                }
                Op::Copysign(t)
            }
            "ld" | "st" => {
                let space = match mods.first() {
                    Some(&"param") => Space::Param,
                    Some(&"global") => Space::Global,
                    Some(&"shared") => Space::Shared,
                    _ => {
                        return err(
                            line,
                            format!("{opcode}: a state space (.param, .global, .shared) is needed"),
                        )
                    }
                };
                // Cache operators change nothing here.
                let n = mods.len();
                if n < 2
                    || !mods[1..n - 1].iter().all(|m| {
                        matches!(*m, "nc" | "ca" | "cg" | "cs" | "lu" | "cv" | "wb" | "wt")
                    })
                {
                    return err(line, format!("unsupported modifiers in {opcode}"));
                }
                let t = ty_at(n - 1)?;
                if t.kind == Kind::Pred {
                    return err(line, "a .pred load or store");
                }
                arity(2)?;
                if base == "ld" {
                    ins.d = self.dst(operands[0], line)?;
                    let (a, off) = self.addr(operands[1], line)?;
                    ins.a = a;
                    ins.off = off;
                    Op::Ld(space, t)
                } else {
                    if space == Space::Param {
                        return err(line, "st.param (kernel parameters are read-only)");
                    }
                    let (a, off) = self.addr(operands[0], line)?;
                    ins.a = a;
                    ins.off = off;
                    ins.b = self.src(operands[1], line)?;
                    Op::St(space, t)
                }
            }
            "bra" => {
                if !(mods.is_empty() || mods == ["uni"]) {
                    return err(line, format!("unsupported {opcode}"));
                }
                arity(1)?;
                let t = labels.get(operands[0]).ok_or_else(|| ParseError {
                    line,
                    message: format!("unknown label {}", operands[0]),
                })?;
                Op::Bra(*t)
            }
            "bar" | "barrier" => {
                if !(mods == ["sync"] || (base == "barrier" && mods == ["sync", "aligned"])) {
                    return err(line, format!("unsupported {opcode}"));
                }
                if operands != ["0"] {
                    return err(line, "only a full barrier `bar.sync 0` is emulated");
                }
                Op::BarSync
            }
            "ret" | "exit" => {
                if !mods.is_empty() && mods != ["uni"] {
                    return err(line, format!("unsupported {opcode}"));
                }
                arity(0)?;
                Op::Ret
            }
            _ => return err(line, format!("opcode {opcode} is not emulated")),
        };
        Ok(ins)
    }

    fn cvt(&self, mods: &[&str], line: u32) -> PResult<Op> {
        let bad = || ParseError {
            line,
            message: format!("unsupported cvt.{}", mods.join(".")),
        };
        let (round, dst, src) = match mods {
            [d, s] => (None, *d, *s),
            [r, d, s] => (Some(*r), *d, *s),
            _ => return Err(bad()),
        };
        let dst = Ty::parse(dst).ok_or_else(bad)?;
        let src = Ty::parse(src).ok_or_else(bad)?;
        let float = |t: Ty| t.kind == Kind::Float;
        if dst.kind == Kind::Pred
            || src.kind == Kind::Pred
            || dst.kind == Kind::Bits
            || src.kind == Kind::Bits
        {
            return Err(bad());
        }
        match (float(dst), float(src)) {
            (false, false) if round.is_none() => Ok(Op::CvtInt { dst, src }),
            (true, false) if dst.bits == 64 => {
                let round = rounding(round.ok_or_else(bad)?).ok_or_else(bad)?;
                Ok(Op::CvtIntToFloat { dst, src, round })
            }
            (false, true) if src.bits == 64 => {
                let round = int_rounding(round.ok_or_else(bad)?).ok_or_else(bad)?;
                Ok(Op::CvtFloatToInt { dst, src, round })
            }
            (true, true) if dst == Ty::F64 && src == Ty::F64 => {
                let round = int_rounding(round.ok_or_else(bad)?).ok_or_else(bad)?;
                Ok(Op::CvtRoundInt { ty: dst, round })
            }
            _ => Err(bad()),
        }
    }
}

fn rounding(m: &str) -> Option<Round> {
    Some(match m {
        "rn" => Round::Nearest,
        "rz" => Round::Zero,
        "rm" => Round::Down,
        "rp" => Round::Up,
        _ => return None,
    })
}

fn int_rounding(m: &str) -> Option<Round> {
    Some(match m {
        "rni" => Round::Nearest,
        "rzi" => Round::Zero,
        "rmi" => Round::Down,
        "rpi" => Round::Up,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
.version 9.0
.target sm_90
.address_size 64
.extern .shared .align 16 .b8 s[];

.visible .entry k(
	.param .u64 k_param_0,
	.param .u32 k_param_1,
	.param .align 8 .b8 k_param_2[24]
)
.maxntid 256, 1, 1
{
	.reg .b64 %rd<4>;
	.reg .b32 %r<2>;
	.reg .pred %p<2>;
	ld.param.u64 %rd1, [k_param_0];   // a comment
	mov.b64 %rd2, k_param_2;
	ld.param.u64 %rd3, [%rd2+16];
	/* block
	   comment */
$L__BB0_1:
	@!%p1 bra.uni $L__BB0_1;
	mov.u32 %r1, s;
	ret;
}
"#;

    #[test]
    fn parses_entries_params_labels_and_directives() {
        let m = parse(SMALL).expect("parses");
        assert_eq!(m.version, (9, 0));
        assert_eq!(m.sm, 90);
        let k = &m.kernels["k"];
        let sizes: Vec<_> = k.params.iter().map(|p| (p.offset, p.size)).collect();
        assert_eq!(sizes, vec![(0, 8), (8, 4), (16, 24)]);
        assert_eq!(k.param_bytes, 40);
        assert_eq!(k.max_threads, Some(256));
        // The param address is its offset; the label points at the bra.
        assert_eq!(k.code[1].a, Src::Imm(16));
        assert_eq!(k.code[2].off, 16);
        assert_eq!(k.code[3].op, Op::Bra(3));
        assert!(k.code[3].guard.is_some_and(|(_, neg)| neg));
        assert_eq!(k.code[2].line, 19);
        assert_eq!(k.code.last().map(|i| i.op), Some(Op::Ret));
    }

    #[test]
    fn unknown_opcodes_and_modifiers_fail_at_load() {
        for bad in [
            "fma.rn.f64 %fd1, %fd2, %fd3, %fd4;",
            "atom.global.add.u64 %rd1, [%rd2], 1;",
            "ld.global.v2.u64 {%rd1, %rd2}, [%rd3];",
            "ld.local.u64 %rd1, [%rd2];",
            "mov.u32 %r1, %laneid;",
            "setp.lt.and.u32 %p1, %r1, %r2, %p2;",
            "shfl.sync.bfly.b32 %r1, %r2, 1, 31, -1;",
            "add.sat.s32 %r1, %r2, %r3;",
            "bar.sync 1;",
            "mov.u32 %r9, 1;",
            "mov.u32 %q1, 1;",
        ] {
            let text = format!(".version 9.0\n.target sm_90\n.visible .entry k()\n{{\n.reg .b64 %rd<4>;\n.reg .b32 %r<4>;\n.reg .pred %p<4>;\n.reg .f64 %fd<5>;\n{bad}\n}}\n");
            let e = parse(&text).expect_err(bad);
            assert_eq!(e.line, 9, "{bad}: {e}");
        }
    }

    #[test]
    fn malformed_text_is_an_error_not_a_panic() {
        for bad in [
            "",
            ".version\n.target sm_90",
            ".version 9.0\n.target gfx90a",
            ".version 9.0\n.target sm_90\n.visible .entry k(\n",
            ".version 9.0\n.target sm_90\n.visible .entry k(.param .u64 a)\n{\nbra $nowhere;\n}",
            ".version 9.0\n.target sm_90\n.visible .entry k(.param .u64 a[x])\n{\n}",
            ".version 9.0\n.target sm_90\n.visible .entry k()\n{\nld.global.u64 %rd1, [%rd2+zz];\n}",
            ".version 9.0\n.target sm_90\n.global .u64 g;",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn immediates() {
        assert_eq!(parse_imm("-1"), Some(u64::MAX));
        assert_eq!(parse_imm("0x10U"), Some(16));
        assert_eq!(parse_imm("0d3FF0000000000000"), Some(1f64.to_bits()));
        assert_eq!(parse_imm("0f3F800000"), Some(1f64.to_bits()));
        assert_eq!(parse_imm("1x"), None);
        assert_eq!(parse_imm(""), None);
    }
}
