//! The remote client: a [`Serve`] whose server is across the network, so `generate` runs
//! the same [`crate::secure::SecureHook`] and [`SecureClient`] against it as in-process.
//!
//! It keeps its secret key's 32-byte seed on its own disk (file mode 0600, one file per
//! server and token), so a second run finds its key set on the server by fingerprint and
//! uploads nothing. A broken connection is reopened and the request in flight re-sent
//! with the same (session, seq): the server answers it identically and charges it once.
//! Given several server addresses (replicas on one shared state), it moves to the next one
//! when its server breaks, and the re-sent request is answered there the same way.

use super::proto::{self, private_lora_client::PrivateLoraClient};
use super::tokens;
use super::wire;
pub use super::wire::manifest_of;
use super::{KEY_CHUNK, MAX_MESSAGE, WINDOW};
use crate::secure::{KeyUpload, Manifest, NetworkStats, Reply, Request, SecureClient, Serve};
use anyhow::{anyhow, bail, Context, Result};
use helora::ckks::Params;
use helora::pll::{ClientId, PllSettings};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

/// How to reach a server.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// `http://HOST:PORT`, or `https://…` for TLS; several, comma-separated, for replicas
    /// that share one state (tried in turn).
    pub url: String,
    pub token: String,
    /// The adapter's name on the server; empty: the server's only one.
    pub adapter: String,
    /// A CA certificate (PEM) to trust besides the system's (a self-signed server).
    pub ca_cert: Option<PathBuf>,
    /// Where the client keeps its key seeds; default: `client-keys` in helora's data dir.
    pub key_dir: Option<PathBuf>,
    /// Re-sends of a request after its connection broke, with exponential backoff.
    pub retries: u32,
}

#[derive(Clone)]
struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = PrivateLoraClient<InterceptedService<Channel, Bearer>>;

struct OpenSession {
    sender: mpsc::Sender<proto::SiteRequest>,
    replies: tonic::Streaming<proto::SiteReply>,
}

pub struct RemoteServer {
    runtime: tokio::runtime::Runtime,
    client: Client,
    options: RemoteOptions,
    /// The replicas' addresses and the one in use.
    urls: Vec<String>,
    current: usize,
    adapter: String,
    manifest: Manifest,
    settings: PllSettings,
    fingerprint: [u8; 32],
    session: [u8; 16],
    seq: u64,
    open: Option<OpenSession>,
    retries: u32,
    pub stats: NetworkStats,
    /// Every site request's round trip, in ms (what `bench serve` reports percentiles of).
    pub request_ms: Vec<f64>,
    /// Bytes of the gRPC messages sent and received (protobuf and gRPC's 5-byte frame; not
    /// HTTP/2's 9 bytes per 16 KiB frame nor TCP/IP's): the payload plus the protocol's share.
    pub wire_up: u64,
    pub wire_down: u64,
}

/// A connected remote server, and the client whose keys it holds.
pub struct Connected {
    pub server: RemoteServer,
    pub client: SecureClient,
    /// Key bytes uploaded by this run (0 when the server knew the key set).
    pub key_upload_bytes: usize,
}

/// The status of a failed call, with the server's message, as an error.
fn call_error(what: &str, status: Status) -> anyhow::Error {
    anyhow!(
        "{what}: the server answered {:?}: {}",
        status.code(),
        status.message()
    )
}

/// Statuses after which the same request may succeed on a new connection.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

/// The addresses `--server` lists.
fn urls(options: &RemoteOptions) -> Result<Vec<String>> {
    let urls: Vec<String> = options
        .url
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        bail!("--server names no address");
    }
    Ok(urls)
}

/// Connects to the first of the servers that answers and fetches the adapter's manifest.
async fn first_answering(
    options: &RemoteOptions,
    urls: &[String],
) -> Result<(Client, usize, proto::ManifestReply)> {
    let mut failures = Vec::new();
    for (index, url) in urls.iter().enumerate() {
        let answered = match channel(options, url).await {
            Ok(mut client) => client
                .get_manifest(proto::ManifestRequest {
                    adapter: options.adapter.clone(),
                })
                .await
                .map(|reply| (client, reply.into_inner())),
            Err(e) => {
                failures.push(format!("{e:#}"));
                continue;
            }
        };
        match answered {
            Ok((client, reply)) => return Ok((client, index, reply)),
            // Another replica may answer; a refusal (token, adapter) is the same on all.
            Err(status) if retryable(&status) => {
                failures.push(format!("{url}: {:?}: {}", status.code(), status.message()))
            }
            Err(status) => {
                return Err(call_error(
                    &format!("asking {url} for its manifest"),
                    status,
                ))
            }
        }
    }
    bail!("no server answered: {}", failures.join("; "))
}

/// Connects to the server, fetches the adapter's manifest and makes sure the server holds
/// this client's key set (uploading it only if not).
pub fn connect(options: &RemoteOptions, params: &Params) -> Result<Connected> {
    let mut server = RemoteServer::open(options, params)?;
    let key_file = key_file(options)?;
    let stored = StoredKeys::read(&key_file)?.filter(|k| k.fits(&server.manifest, &server.adapter));
    let manifest = server.manifest.clone();
    let (secure_client, uploaded) = match stored {
        Some(stored) => {
            let seed = stored.seed()?;
            if server.knows_keys(&stored.fingerprint()?)? {
                server.fingerprint = stored.fingerprint()?;
                (SecureClient::from_seed(params, manifest, &seed)?, 0)
            } else {
                // The server lost the key set (a new state): the same seed makes the same keys.
                let (c, upload) = SecureClient::with_keys(params, manifest, &seed)?;
                server.register_keys(&upload.eval_keys, &upload.public_key)?;
                (c, upload_bytes(&upload))
            }
        }
        None => {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(seed.as_mut()).map_err(|e| anyhow!("no OS randomness: {e}"))?;
            let (c, upload) = SecureClient::with_keys(params, manifest.clone(), &seed)?;
            server.register_keys(&upload.eval_keys, &upload.public_key)?;
            StoredKeys::new(&seed, &server.fingerprint, &manifest, &server.adapter)
                .write(&key_file)?;
            (c, upload_bytes(&upload))
        }
    };
    Ok(Connected {
        server,
        client: secure_client,
        key_upload_bytes: uploaded,
    })
}

fn upload_bytes(upload: &KeyUpload) -> usize {
    upload.eval_keys.len() + upload.public_key.len()
}

async fn channel(options: &RemoteOptions, url: &str) -> Result<Client> {
    let bearer = format!("Bearer {}", options.token.trim());
    if tokens::from_bearer(&bearer).is_none() {
        bail!("the API token is malformed: expected hlr_ and 64 hex digits");
    }
    let header = MetadataValue::try_from(bearer)
        .map_err(|_| anyhow!("the API token is not valid header text"))?;
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("--server {url}: not a URL"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        // A prompt's request is megabytes: HTTP/2's default 64 KiB windows would make it
        // crawl through flow control.
        .http2_adaptive_window(true)
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some(ca) = &options.ca_cert {
            let pem =
                std::fs::read(ca).with_context(|| format!("reading --tls-ca {}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).context("TLS settings")?;
    } else if options.ca_cert.is_some() {
        bail!("--tls-ca is for an https:// server");
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(PrivateLoraClient::with_interceptor(channel, Bearer(header))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

async fn register(
    client: &mut Client,
    adapter: &str,
    eval_keys: &[u8],
    public_key: &[u8],
) -> Result<[u8; 32]> {
    let mut hash = Sha256::new();
    hash.update(eval_keys);
    hash.update(public_key);
    let fingerprint: [u8; 32] = hash.finalize().into();
    let mut bytes = eval_keys.to_vec();
    bytes.extend_from_slice(public_key);
    let header = proto::KeyHeader {
        eval_keys_len: eval_keys.len() as u64,
        public_key_len: public_key.len() as u64,
        fingerprint: fingerprint.to_vec(),
        adapter: adapter.to_string(),
    };
    let mut chunks: Vec<proto::KeyChunk> = bytes
        .chunks(KEY_CHUNK)
        .map(|data| proto::KeyChunk {
            header: None,
            data: data.to_vec(),
        })
        .collect();
    match chunks.first_mut() {
        Some(first) => first.header = Some(header),
        None => bail!("no key bytes to upload"),
    }
    match client.register_keys(tokio_stream::iter(chunks)).await {
        Ok(_) => Ok(fingerprint),
        Err(status) if status.code() == Code::AlreadyExists => Ok(fingerprint),
        Err(status) => Err(call_error("uploading the key set", status)),
    }
}

impl RemoteServer {
    /// Connects to the server and fetches the adapter's manifest; no key set yet: a client
    /// registers one ([`register_keys`](Self::register_keys)) before its first request.
    pub fn open(options: &RemoteOptions, params: &Params) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let urls = urls(options)?;
        let (client, current, reply) = runtime.block_on(first_answering(options, &urls))?;
        let manifest = manifest_of(&reply)?;
        if manifest.params_id != params.id() {
            bail!("the server uses other CKKS parameters than this client");
        }
        let mut session = [0u8; 16];
        getrandom::fill(&mut session).map_err(|e| anyhow!("no OS randomness: {e}"))?;
        Ok(Self {
            runtime,
            client,
            options: options.clone(),
            urls,
            current,
            adapter: reply.adapter.clone(),
            settings: wire::settings_of(&reply),
            manifest,
            fingerprint: [0; 32],
            session,
            seq: 0,
            open: None,
            retries: options.retries,
            stats: NetworkStats::default(),
            request_ms: Vec::new(),
            wire_up: 0,
            wire_down: 0,
        })
    }

    /// The adapter's name on the server.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Whether the server holds the key set of `fingerprint`.
    fn knows_keys(&mut self, fingerprint: &[u8; 32]) -> Result<bool> {
        let reply = self
            .runtime
            .block_on(self.client.has_keys(proto::HasKeysRequest {
                fingerprint: fingerprint.to_vec(),
            }))
            .map_err(|s| call_error("asking the server for the key set", s))?;
        Ok(reply.into_inner().known)
    }

    /// Uploads a key set (in chunks; one the server holds already is not refused) and
    /// sends the following requests under it.
    pub fn register_keys(&mut self, eval_keys: &[u8], public_key: &[u8]) -> Result<()> {
        self.fingerprint = self.runtime.block_on(register(
            &mut self.client,
            &self.adapter,
            eval_keys,
            public_key,
        ))?;
        Ok(())
    }

    /// Sends one site request on the session's stream, reopening it after a broken
    /// connection, and waits for its reply.
    fn round_trip(&mut self, message: proto::SiteRequest) -> Result<proto::SiteReply> {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = self.runtime.block_on(Self::send(
                &mut self.client,
                &mut self.open,
                message.clone(),
            ));
            match result {
                Ok(reply) => {
                    self.stats.round_trip += started.elapsed();
                    self.stats.server += Duration::from_micros(reply.server_micros);
                    self.stats.requests += 1;
                    self.request_ms.push(started.elapsed().as_secs_f64() * 1e3);
                    self.wire_up += (prost::Message::encoded_len(&message) + 5) as u64;
                    self.wire_down += (prost::Message::encoded_len(&reply) + 5) as u64;
                    return Ok(reply);
                }
                Err(status) if retryable(&status) && attempt < self.retries => {
                    self.open = None;
                    attempt += 1;
                    self.stats.retries += 1;
                    let wait = Duration::from_millis(100 << attempt.min(6));
                    eprintln!(
                        "helora: the connection to {} broke ({}); retrying in {} ms ({attempt}/{})",
                        self.urls[self.current],
                        status.message(),
                        wait.as_millis(),
                        self.retries
                    );
                    std::thread::sleep(wait);
                    self.reconnect();
                }
                Err(status) => {
                    self.open = None;
                    return Err(call_error(
                        &format!("request {} (layer {})", message.seq, message.layer),
                        status,
                    ));
                }
            }
        }
    }

    /// A new connection, to the next replica when there are several; a server that does
    /// not answer yet is tried again at the next attempt.
    fn reconnect(&mut self) {
        if self.urls.len() > 1 {
            self.current = (self.current + 1) % self.urls.len();
        }
        let url = &self.urls[self.current];
        match self.runtime.block_on(channel(&self.options, url)) {
            Ok(client) => self.client = client,
            Err(e) => eprintln!("helora: {e:#}"),
        }
    }

    async fn send(
        client: &mut Client,
        open: &mut Option<OpenSession>,
        message: proto::SiteRequest,
    ) -> Result<proto::SiteReply, Status> {
        if open.is_none() {
            let (sender, receiver) = mpsc::channel(2);
            let replies = client
                .session(ReceiverStream::new(receiver))
                .await?
                .into_inner();
            *open = Some(OpenSession { sender, replies });
        }
        let session = open
            .as_mut()
            .ok_or_else(|| Status::internal("no open session"))?;
        let seq = message.seq;
        session
            .sender
            .send(message)
            .await
            .map_err(|_| Status::unavailable("the session's stream closed"))?;
        match session.replies.message().await? {
            Some(reply) if reply.seq == seq => Ok(reply),
            Some(reply) => Err(Status::internal(format!(
                "the server answered request {} to request {seq}",
                reply.seq
            ))),
            None => Err(Status::unavailable("the server ended the session")),
        }
    }
}

impl Serve for RemoteServer {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn settings(&self) -> &PllSettings {
        &self.settings
    }

    fn backend(&self) -> &'static str {
        "remote"
    }

    /// The server names clients by their token: `id` is not sent.
    fn register_client(&mut self, _: ClientId, eval_keys: &[u8], public_key: &[u8]) -> Result<()> {
        self.register_keys(eval_keys, public_key)
    }

    fn apply_batch(&mut self, _: ClientId, requests: &[Request]) -> Result<Vec<Reply>> {
        let first = requests.first().ok_or_else(|| anyhow!("no request"))?;
        let message = proto::SiteRequest {
            session: self.session.to_vec(),
            seq: self.seq,
            adapter: self.adapter.clone(),
            fingerprint: self.fingerprint.to_vec(),
            layer: u32::try_from(first.layer).context("layer out of range")?,
            modules: first.modules.clone(),
            tokens: requests
                .iter()
                .map(|r| proto::TokenInput {
                    inputs: r.inputs.clone(),
                })
                .collect(),
        };
        let reply = self.round_trip(message)?;
        self.seq += 1;
        if reply.tokens.len() != requests.len() {
            bail!(
                "the server answered {} of {} tokens",
                reply.tokens.len(),
                requests.len()
            );
        }
        Ok(wire::replies_of(reply))
    }

    fn network(&self) -> Option<NetworkStats> {
        Some(self.stats)
    }
}

/// Where this client's key seed for `options`' token and adapter lives (a token belongs to
/// one state, whichever replica of it answers).
fn key_file(options: &RemoteOptions) -> Result<PathBuf> {
    let dir = match &options.key_dir {
        Some(dir) => dir.clone(),
        None => dirs::data_dir()
            .ok_or_else(|| anyhow!("no data dir for this user: give --key-dir"))?
            .join("helora")
            .join("client-keys"),
    };
    let mut hash = Sha256::new();
    hash.update(options.token.trim().as_bytes());
    hash.update([0]);
    hash.update(options.adapter.as_bytes());
    Ok(dir.join(format!("{}.json", &tokens::hex(&hash.finalize())[..32])))
}

/// The client's record of a key set: the seed (secret), and what it covers (public).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKeys {
    seed: String,
    fingerprint: String,
    params_id: u64,
    rotation_steps: Vec<i64>,
    adapter: String,
    /// The server's registration challenge the keys were made from (hex); files written
    /// before it existed have none and no longer fit.
    #[serde(default)]
    key_seed: String,
}

impl StoredKeys {
    fn new(seed: &[u8; 32], fingerprint: &[u8; 32], manifest: &Manifest, adapter: &str) -> Self {
        Self {
            seed: tokens::hex(seed),
            fingerprint: tokens::hex(fingerprint),
            params_id: manifest.params_id,
            rotation_steps: manifest.rotation_steps.clone(),
            adapter: adapter.to_string(),
            key_seed: tokens::hex(&manifest.key_seed.0),
        }
    }

    fn read(path: &Path) -> Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "the client key file {} is damaged: remove it to make new keys",
                    path.display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Whether this key set serves `manifest` (same parameters and key seed, every
    /// rotation covered).
    fn fits(&self, manifest: &Manifest, adapter: &str) -> bool {
        self.params_id == manifest.params_id
            && self.adapter == adapter
            && self.key_seed == tokens::hex(&manifest.key_seed.0)
            && manifest
                .rotation_steps
                .iter()
                .all(|s| self.rotation_steps.contains(s))
    }

    fn seed(&self) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        tokens::unhex::<32>(&self.seed)
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| anyhow!("the client key file's seed is damaged"))
    }

    fn fingerprint(&self) -> Result<[u8; 32]> {
        tokens::unhex::<32>(&self.fingerprint)
            .ok_or_else(|| anyhow!("the client key file's fingerprint is damaged"))
    }

    /// Writes the file readable by its owner only (0600, its directory 0700), atomically.
    fn write(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", dir.display()))?;
        }
        let text = zeroize::Zeroizing::new(serde_json::to_string_pretty(self)?);
        crate::files::write_private(path, text.as_bytes())
    }
}

impl Drop for StoredKeys {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.seed.zeroize();
    }
}
