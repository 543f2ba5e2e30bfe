//! The bytes that travel between a client and a server, whatever carries them: the
//! protocol's messages (proto/helora/v1/helora.proto, docs/protocol.md), so a C client can
//! talk to `helora serve` or to a server built on this library alike. A manifest is a
//! `ManifestReply`, a request a `SiteRequest` (its session, seq and fingerprint unset), a
//! reply a `SiteReply`.

use crate::error::{Error, Result, WithStatus, HELORA_BAD_MESSAGE, HELORA_FAILED};
use helora::pll::PllSettings;
use helora_engine::secure::{InputScaling, Manifest, Reply, Request};
use helora_engine::serve::{proto, wire};
use prost::Message;

fn malformed(what: &str, e: prost::DecodeError) -> Error {
    Error::new(HELORA_BAD_MESSAGE, format!("{what} does not parse: {e}"))
}

/// A manifest's bytes.
pub(crate) fn encode_manifest(
    adapter: &str,
    manifest: &Manifest,
    settings: &PllSettings,
) -> Result<Vec<u8>> {
    // Outside a server's state no client has used any of its budget yet.
    let reply = wire::manifest_reply(
        adapter,
        manifest,
        settings,
        settings.budget,
        settings.budget,
    )
    .status(HELORA_FAILED)?;
    Ok(reply.encode_to_vec())
}

pub(crate) fn decode_manifest(bytes: &[u8]) -> Result<Manifest> {
    let reply = proto::ManifestReply::decode(bytes).map_err(|e| malformed("the manifest", e))?;
    wire::manifest_of(&reply).status(HELORA_BAD_MESSAGE)
}

/// One token's request.
pub(crate) fn encode_request(request: &Request) -> Result<Vec<u8>> {
    let layer = u32::try_from(request.layer)
        .map_err(|_| Error::new(HELORA_FAILED, "the layer is out of range"))?;
    let message = proto::SiteRequest {
        layer,
        modules: request.modules.clone(),
        tokens: vec![proto::TokenInput {
            inputs: request.inputs.clone(),
        }],
        ..Default::default()
    };
    Ok(message.encode_to_vec())
}

/// The tokens of a request, as the server role takes them (the client's scaling never
/// travels).
pub(crate) fn decode_requests(bytes: &[u8]) -> Result<Vec<Request>> {
    let message = proto::SiteRequest::decode(bytes).map_err(|e| malformed("the request", e))?;
    if message.tokens.is_empty() {
        return Err(Error::new(
            HELORA_BAD_MESSAGE,
            "the request carries no token",
        ));
    }
    Ok(message
        .tokens
        .into_iter()
        .map(|token| Request {
            layer: message.layer as usize,
            modules: message.modules.clone(),
            inputs: token.inputs,
            scaling: InputScaling::default(),
        })
        .collect())
}

/// The replies to a request's tokens.
pub(crate) fn encode_replies(replies: Vec<Reply>) -> Vec<u8> {
    proto::SiteReply {
        tokens: replies.into_iter().map(wire::token_output).collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The reply to a one-token request.
pub(crate) fn decode_reply(bytes: &[u8]) -> Result<Reply> {
    let message = proto::SiteReply::decode(bytes).map_err(|e| malformed("the reply", e))?;
    let mut replies = wire::replies_of(message);
    match (replies.pop(), replies.is_empty()) {
        (Some(reply), true) => Ok(reply),
        _ => Err(Error::new(
            HELORA_BAD_MESSAGE,
            "the reply does not hold exactly one token",
        )),
    }
}
