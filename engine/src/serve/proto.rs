//! The remote protocol's messages and service, generated from proto/helora/v1/helora.proto
//! (the public contract; docs/protocol.md) by the build script.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("helora.v1");
