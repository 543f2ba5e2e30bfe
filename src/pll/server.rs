//! The server side of the PLL: the adapters, and per client id its evaluation keys, its
//! public key (for re-randomisation) and how many queries it has made to each adapter.
//! Every request is checked before any work: unknown ids, exhausted budgets, malformed
//! keys and ciphertexts are errors, never panics.

use super::evaluate::apply_protected;
use super::{Adapter, PllError, PllSettings};
use crate::backend::{Backend, CpuBackend};
use crate::ckks::{
    rotation_element, Ciphertext, CkksError, Encoder, Encryptor, EvaluationKeys, Evaluator, Params,
    PublicKey,
};
use crate::linear::Matrix;
use crate::math::sampling::{self, NoiseRng};
use crate::ring::{Basis, RnsPoly};
use rayon::prelude::*;
use std::collections::HashMap;

/// A client's identity, as the transport authenticated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// An adapter registered with [`PllServer::add_adapter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdapterId(usize);

impl AdapterId {
    pub fn index(self) -> usize {
        self.0
    }
}

struct Client<B: Backend> {
    evaluator: Evaluator<B>,
    encryptor: Encryptor,
    /// For the batch path's extra encryptors.
    public_key: PublicKey,
    /// Queries made, by adapter index.
    used: Vec<u64>,
}

type EvaluatorFactory<B> = Box<dyn Fn(&Params) -> Result<Evaluator<B>, CkksError> + Send + Sync>;

pub struct PllServer<B: Backend = CpuBackend> {
    params: Params,
    encoder: Encoder,
    settings: PllSettings,
    new_evaluator: EvaluatorFactory<B>,
    /// Keyless: encodes the adapters' plaintexts.
    evaluator: Evaluator<B>,
    /// Holds throwaway keys for the flooding self-test.
    calibration: Evaluator<B>,
    adapters: Vec<Adapter<B>>,
    clients: HashMap<ClientId, Client<B>>,
    rng: NoiseRng,
}

impl PllServer<CpuBackend> {
    /// A server on the CPU backend.
    pub fn cpu(params: &Params, settings: PllSettings) -> Result<Self, PllError> {
        Self::with_backend(params, settings, |p| Ok(Evaluator::cpu(p)))
    }
}

impl<B: Backend> PllServer<B> {
    /// A server whose evaluators (one per client, plus two of its own) come from `factory`.
    pub fn with_backend(
        params: &Params,
        settings: PllSettings,
        factory: impl Fn(&Params) -> Result<Evaluator<B>, CkksError> + Send + Sync + 'static,
    ) -> Result<Self, PllError> {
        settings.validate()?;
        Ok(Self {
            params: params.clone(),
            encoder: Encoder::new(params.n())?,
            evaluator: factory(params)?,
            calibration: factory(params)?,
            new_evaluator: Box::new(factory),
            settings,
            adapters: Vec::new(),
            clients: HashMap::new(),
            rng: sampling::os_noise_rng()?,
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn settings(&self) -> &PllSettings {
        &self.settings
    }

    /// The backend of the server's own evaluator (clients' come from the same factory).
    pub fn backend(&self) -> &B {
        self.evaluator.backend()
    }

    /// Registers an adapter y = x·A·B for inputs encrypted at `level`.
    pub fn add_adapter(
        &mut self,
        a: &Matrix,
        b: &Matrix,
        level: usize,
    ) -> Result<AdapterId, PllError> {
        let adapter = Adapter::new(
            &self.evaluator,
            &mut self.calibration,
            &self.encoder,
            a,
            b,
            level,
            &self.settings,
        )?;
        self.adapters.push(adapter);
        Ok(AdapterId(self.adapters.len() - 1))
    }

    pub fn adapter(&self, id: AdapterId) -> Result<&Adapter<B>, PllError> {
        self.adapters
            .get(id.0)
            .ok_or(PllError::UnknownAdapter(id.0))
    }

    /// Every rotation any adapter uses: what a client's Galois keys must cover.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let mut steps: Vec<i64> = self
            .adapters
            .iter()
            .flat_map(|a| a.plan.rotation_steps())
            .collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Admits a client with its evaluation keys and public key.
    pub fn register_client(
        &mut self,
        id: ClientId,
        keys: &EvaluationKeys,
        public_key: PublicKey,
    ) -> Result<(), PllError> {
        self.check_admission(id)?;
        let bytes = key_bytes(keys);
        if bytes > self.settings.max_key_bytes {
            return Err(PllError::KeysTooLarge {
                bytes,
                max: self.settings.max_key_bytes,
            });
        }
        for (index, adapter) in self.adapters.iter().enumerate() {
            for step in adapter.plan.rotation_steps() {
                let g = rotation_element(step, self.params.n());
                if g != 1 && !keys.galois.contains_key(&g) {
                    return Err(PllError::MissingRotationKey {
                        adapter: index,
                        step,
                    });
                }
            }
        }
        check_public_key(&self.params, &public_key)?;
        let encryptor = Encryptor::new(&self.params, public_key.clone())?;
        let mut evaluator = (self.new_evaluator)(&self.params)?;
        evaluator.set_keys(keys)?;
        self.clients.insert(
            id,
            Client {
                evaluator,
                encryptor,
                public_key,
                used: Vec::new(),
            },
        );
        Ok(())
    }

    /// Whether a client `id` would be admitted (new, and room for it), before its keys are
    /// even decoded.
    pub fn check_admission(&self, id: ClientId) -> Result<(), PllError> {
        if self.clients.contains_key(&id) {
            return Err(PllError::DuplicateClient(id.0));
        }
        if self.clients.len() >= self.settings.max_clients {
            return Err(PllError::TooManyClients {
                max: self.settings.max_clients,
            });
        }
        Ok(())
    }

    /// Whether `client` may make `count` more queries to each of `adapters` (distinct, known,
    /// within its budgets), before its inputs are even decoded.
    pub fn check_queries(
        &self,
        client: ClientId,
        adapters: &[AdapterId],
        count: u64,
    ) -> Result<(), PllError> {
        let state = self
            .clients
            .get(&client)
            .ok_or(PllError::UnknownClient(client.0))?;
        if adapters.is_empty() {
            return Err(PllError::Malformed("no adapter requested".into()));
        }
        for (k, id) in adapters.iter().enumerate() {
            if adapters[..k].contains(id) {
                return Err(PllError::Malformed(format!(
                    "adapter {} requested twice",
                    id.0
                )));
            }
            self.adapter(*id)?;
            let used = state.used.get(id.0).copied().unwrap_or(0);
            if used.saturating_add(count) > self.settings.budget {
                return Err(PllError::BudgetExhausted {
                    client: client.0,
                    adapter: id.0,
                    budget: self.settings.budget,
                });
            }
        }
        Ok(())
    }

    /// Forgets a client; its count goes with it, so ids must not be reissued lightly.
    pub fn remove_client(&mut self, id: ClientId) -> Result<(), PllError> {
        self.clients
            .remove(&id)
            .map(|_| ())
            .ok_or(PllError::UnknownClient(id.0))
    }

    /// Queries `client` has made to `adapter`.
    pub fn queries_used(&self, client: ClientId, adapter: AdapterId) -> Result<u64, PllError> {
        self.adapter(adapter)?;
        let c = self
            .clients
            .get(&client)
            .ok_or(PllError::UnknownClient(client.0))?;
        Ok(c.used.get(adapter.0).copied().unwrap_or(0))
    }

    /// Queries `client` may still make to `adapter`.
    pub fn queries_left(&self, client: ClientId, adapter: AdapterId) -> Result<u64, PllError> {
        Ok(self
            .settings
            .budget
            .saturating_sub(self.queries_used(client, adapter)?))
    }

    /// One protected application of one adapter to one token's input ciphertexts.
    pub fn apply(
        &mut self,
        client: ClientId,
        adapter: AdapterId,
        inputs: &[Ciphertext],
    ) -> Result<Vec<Ciphertext>, PllError> {
        self.apply_group(client, &[adapter], inputs)?
            .pop()
            .ok_or(PllError::Malformed("no output".into()))
    }

    /// Adapters that read the same input (q, k, v) in one pass; each counts one query.
    pub fn apply_group(
        &mut self,
        client: ClientId,
        adapters: &[AdapterId],
        inputs: &[Ciphertext],
    ) -> Result<Vec<Vec<Ciphertext>>, PllError> {
        self.apply_group_batch(client, adapters, &[inputs], 1)?
            .pop()
            .ok_or(PllError::Malformed("no output".into()))
    }

    /// [`apply_group`](Self::apply_group) for several tokens of one client (a prompt),
    /// spread over `threads` worker threads; each token counts one query per adapter, and
    /// the whole batch is refused if it would exceed a budget. Results keep the tokens'
    /// order.
    pub fn apply_group_batch<T: AsRef<[Ciphertext]>>(
        &mut self,
        client: ClientId,
        adapters: &[AdapterId],
        tokens: &[T],
        threads: usize,
    ) -> Result<Vec<Vec<Vec<Ciphertext>>>, PllError> {
        let count = tokens.len() as u64;
        self.check_queries(client, adapters, count)?;
        let state = self
            .clients
            .get_mut(&client)
            .ok_or(PllError::UnknownClient(client.0))?;
        let members = adapters
            .iter()
            .map(|id| {
                self.adapters
                    .get(id.0)
                    .ok_or(PllError::UnknownAdapter(id.0))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(ct) = tokens
            .iter()
            .flat_map(|t| t.as_ref())
            .find(|ct| !(ct.scale.is_finite() && ct.scale > 0.0))
        {
            return Err(PllError::Malformed(format!(
                "input scale {} is not positive",
                ct.scale
            )));
        }
        let uploaded = tokens
            .iter()
            .map(|inputs| {
                inputs
                    .as_ref()
                    .iter()
                    .map(|ct| state.evaluator.upload(ct))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let threads = threads.clamp(1, tokens.len().max(1));
        let per_thread = tokens.len().div_ceil(threads).max(1);
        // Every job gets its own generator and encryptor, seeded afresh: no two share
        // randomness for E, the masks or Enc_pk(0). The first reuses the client's encryptor.
        let chunks: Vec<_> = uploaded.chunks(per_thread).collect();
        let mut extra_encryptors = (1..chunks.len())
            .map(|_| Encryptor::new(&self.params, state.public_key.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let encryptors = std::iter::once(&mut state.encryptor).chain(extra_encryptors.iter_mut());
        let jobs: Vec<_> = chunks
            .into_iter()
            .zip(encryptors)
            .map(|(chunk, encryptor)| (chunk, encryptor, sampling::fork::<NoiseRng>(&mut self.rng)))
            .collect();
        let settings = &self.settings;
        let evaluator = &state.evaluator;
        let members = &members;
        let outputs: Vec<Vec<Vec<Ciphertext<B::Poly>>>> = jobs
            .into_par_iter()
            .map(|(chunk, encryptor, mut rng)| {
                chunk
                    .iter()
                    .map(|inputs| {
                        apply_protected(evaluator, encryptor, members, inputs, settings, &mut rng)
                    })
                    .collect::<Result<Vec<_>, PllError>>()
            })
            .collect::<Result<Vec<_>, PllError>>()?
            .into_iter()
            .flatten()
            .collect();
        let downloaded = outputs
            .iter()
            .map(|token| {
                token
                    .iter()
                    .map(|cts| {
                        cts.iter()
                            .map(|ct| state.evaluator.download(ct))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Counted once the answers exist: a failed request reveals nothing.
        for id in adapters {
            if state.used.len() <= id.0 {
                state.used.resize(id.0 + 1, 0);
            }
            // Saturating: an unbounded budget (PLL off) is u64::MAX.
            state.used[id.0] = state.used[id.0].saturating_add(count);
        }
        Ok(downloaded)
    }
}

/// Bytes of key material in a client's evaluation keys.
fn key_bytes(keys: &EvaluationKeys) -> usize {
    keys.relin
        .iter()
        .chain(keys.galois.values())
        .flat_map(|k| k.digits.iter())
        .flat_map(|pair| pair.iter())
        .map(|p| std::mem::size_of_val(p.data()))
        .sum()
}

/// A public key over Q_L in NTT form with reduced residues (Encryptor slices it per level).
fn check_public_key(params: &Params, pk: &PublicKey) -> Result<(), PllError> {
    let basis = Basis::level(params.max_level());
    let ctx = params.ring();
    let well_formed = |p: &RnsPoly| {
        p.basis() == basis
            && p.ntt_form
            && p.n() == params.n()
            && p.limbs()
                .enumerate()
                .all(|(i, limb)| limb.iter().all(|&x| x < ctx.modulus(basis, i).value()))
    };
    if !(well_formed(&pk.b) && well_formed(&pk.a)) {
        return Err(PllError::Malformed(
            "public key is not over Q_L in NTT form with reduced residues".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::{KeyGenerator, ParamSpec, Plaintext, SymmetricEncryptor};
    use crate::linear::random_lora_factors;
    use rand::SeedableRng;

    /// Noise on and flooding off still re-randomises every output: with the server's
    /// stream replayed (so E is the same), two answers to one ciphertext differ in c1
    /// only through Enc_pk(0).
    #[test]
    fn outputs_are_rerandomised_without_flooding() {
        let params = Params::new(ParamSpec::n13_depth2()).unwrap();
        let settings = PllSettings {
            noise: 0.1,
            flooding: false,
            ..PllSettings::default()
        };
        let mut server = PllServer::cpu(&params, settings).unwrap();
        let mut rng = sampling::os_rng().unwrap();
        let (a, b) = random_lora_factors(64, 64, 4, &mut rng).unwrap();
        let adapter = server.add_adapter(&a, &b, 2).unwrap();
        let mut keygen = KeyGenerator::new(&params).unwrap();
        let keys = keygen
            .evaluation_keys(&server.rotation_steps(), false)
            .unwrap();
        server
            .register_client(ClientId(1), &keys, keygen.public_key())
            .unwrap();
        let encoder = Encoder::new(params.n()).unwrap();
        let level = 2;
        let scale = params.default_scale();
        let poly = encoder
            .encode(params.ring(), &[0.5; 64], scale, Basis::level(level))
            .unwrap();
        let ct = SymmetricEncryptor::new(&params, keygen.secret_key())
            .unwrap()
            .encrypt(&Plaintext { poly, level, scale })
            .unwrap();
        let answer = |server: &mut PllServer| {
            server.rng = NoiseRng::from_seed([9; 32]);
            server
                .apply(ClientId(1), adapter, std::slice::from_ref(&ct))
                .unwrap()
        };
        let (first, second) = (answer(&mut server), answer(&mut server));
        assert_ne!(first[0].c1, second[0].c1, "c1 is re-randomised");
    }
}
