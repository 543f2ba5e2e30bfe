//! PTX: the decoded form (ir), the parser (parse), each instruction's arithmetic (ops) and
//! the interpreter with its checks (exec).
pub mod exec;
pub mod ir;
pub mod ops;
pub mod parse;
