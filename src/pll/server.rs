//! The server side of the PLL: the adapters, and per client id its evaluation keys, its
//! public key (for re-randomisation) and how many queries it has made to each adapter.
//! Every request is checked before any work: unknown ids, exhausted budgets, malformed
//! keys and ciphertexts are errors, never panics.

use super::evaluate::apply_protected;
use super::{Adapter, PllError, PllSettings};
use crate::ckks::{
    rotation_element, Backend, Ciphertext, CkksError, CpuBackend, Encoder, Encryptor,
    EvaluationKeys, Evaluator, KeySeed, Params, PublicKey,
};
use crate::linear::Matrix;
use crate::math::sampling::{self, NoiseRng};
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
    /// Under the client's public key: re-randomises its outputs.
    encryptor: Encryptor,
    /// Queries made, by adapter index.
    used: Vec<u64>,
}

/// A client's keys checked and its evaluator readied, not yet admitted.
pub struct PreparedClient<B: Backend>(Client<B>);

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

    /// Admits a client with its evaluation keys and public key, made from `key_seed`: the
    /// seed this server handed the client for the keys' `a` halves.
    pub fn register_client(
        &mut self,
        id: ClientId,
        keys: &EvaluationKeys,
        public_key: PublicKey,
        key_seed: &KeySeed,
    ) -> Result<(), PllError> {
        self.check_admission(id)?;
        let client = self.prepare_client(keys, public_key, key_seed)?;
        self.insert_client(id, client)
    }

    /// Checks a client's keys against every adapter and readies its evaluator: the costly
    /// half of [`register_client`](Self::register_client), which needs only `&self` (a
    /// server that shares this one among threads does it outside its write lock).
    pub fn prepare_client(
        &self,
        keys: &EvaluationKeys,
        public_key: PublicKey,
        key_seed: &KeySeed,
    ) -> Result<PreparedClient<B>, PllError> {
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
        // A malformed key is the client's malformed request, as its other inputs are.
        public_key
            .check_well_formed(&self.params)
            .map_err(|e| match e {
                CkksError::Malformed(why) => PllError::Malformed(why),
                other => other.into(),
            })?;
        // Keys whose `a` the client chose could undo re-randomisation or shape the
        // key-switching errors it later decrypts (docs/security.md §4.2).
        if !key_seed.made(&self.params, keys, &public_key) {
            return Err(PllError::WrongKeySeed);
        }
        let encryptor = Encryptor::new(&self.params, public_key)?;
        let mut evaluator = (self.new_evaluator)(&self.params)?;
        evaluator.set_keys(keys)?;
        Ok(PreparedClient(Client {
            evaluator,
            encryptor,
            used: Vec::new(),
        }))
    }

    /// Admits a client readied by [`prepare_client`](Self::prepare_client).
    pub fn insert_client(
        &mut self,
        id: ClientId,
        client: PreparedClient<B>,
    ) -> Result<(), PllError> {
        self.check_admission(id)?;
        self.clients.insert(id, client.0);
        Ok(())
    }

    pub fn has_client(&self, id: ClientId) -> bool {
        self.clients.contains_key(&id)
    }

    /// Drops a client's keys and evaluator (a server that caches key sets evicts one);
    /// false if it was not held.
    pub fn remove_client(&mut self, id: ClientId) -> bool {
        self.clients.remove(&id).is_some()
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
        check_distinct(adapters)?;
        for id in adapters {
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
        self.apply_group_batch(client, adapters, &[inputs])?
            .pop()
            .ok_or(PllError::Malformed("no output".into()))
    }

    /// [`apply_group`](Self::apply_group) for several tokens of one client (a prompt),
    /// one task per token on the worker pool; each token counts one query per adapter, and
    /// the whole batch is refused if it would exceed a budget. Results keep the tokens'
    /// order.
    pub fn apply_group_batch<T: AsRef<[Ciphertext]> + Sync>(
        &mut self,
        client: ClientId,
        adapters: &[AdapterId],
        tokens: &[T],
    ) -> Result<Vec<Vec<Vec<Ciphertext>>>, PllError> {
        let count = tokens.len() as u64;
        self.check_queries(client, adapters, count)?;
        for inputs in tokens {
            check_scales(inputs.as_ref())?;
        }
        // Every token gets its own generator, forked from the server's stream: no two share
        // randomness for E, the flood or Enc_pk(0).
        let rngs: Vec<NoiseRng> = tokens
            .iter()
            .map(|_| sampling::fork(&mut self.rng))
            .collect();
        let state = self
            .clients
            .get(&client)
            .ok_or(PllError::UnknownClient(client.0))?;
        let members = self.members(adapters)?;
        let outputs: Vec<Vec<Vec<Ciphertext<B::Poly>>>> = tokens
            .par_iter()
            .zip(rngs)
            .map(|(inputs, mut rng)| {
                evaluate(state, &members, inputs.as_ref(), &self.settings, &mut rng)
            })
            .collect::<Result<Vec<_>, PllError>>()?;
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
        let state = self
            .clients
            .get_mut(&client)
            .ok_or(PllError::UnknownClient(client.0))?;
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

impl<B: Backend> PllServer<B> {
    /// The adapters `ids` name.
    fn members(&self, ids: &[AdapterId]) -> Result<Vec<&Adapter<B>>, PllError> {
        ids.iter()
            .map(|id| {
                self.adapters
                    .get(id.0)
                    .ok_or(PllError::UnknownAdapter(id.0))
            })
            .collect()
    }

    /// One token's protected application of `adapters` for `client`, its randomness from
    /// `rng`. **No budget is checked or charged**: this is for a caller that meters
    /// queries itself, durably (the network server's ledger), and that derives `rng` so
    /// that a re-sent request gets the same answer, never a fresh sample.
    pub fn evaluate_group(
        &self,
        client: ClientId,
        adapters: &[AdapterId],
        inputs: &[Ciphertext],
        rng: &mut NoiseRng,
    ) -> Result<Vec<Vec<Ciphertext>>, PllError> {
        let state = self
            .clients
            .get(&client)
            .ok_or(PllError::UnknownClient(client.0))?;
        check_distinct(adapters)?;
        let members = self.members(adapters)?;
        check_scales(inputs)?;
        let outputs = evaluate(state, &members, inputs, &self.settings, rng)?;
        outputs
            .iter()
            .map(|cts| {
                cts.iter()
                    .map(|ct| Ok(state.evaluator.download(ct)?))
                    .collect()
            })
            .collect()
    }
}

/// At least one adapter, none twice (a query must not count once for two answers).
fn check_distinct(adapters: &[AdapterId]) -> Result<(), PllError> {
    if adapters.is_empty() {
        return Err(PllError::Malformed("no adapter requested".into()));
    }
    match (1..adapters.len()).find(|&k| adapters[..k].contains(&adapters[k])) {
        Some(k) => Err(PllError::Malformed(format!(
            "adapter {} requested twice",
            adapters[k].0
        ))),
        None => Ok(()),
    }
}

/// Inputs with a positive, finite scale (a zero or NaN scale would poison every output).
fn check_scales(inputs: &[Ciphertext]) -> Result<(), PllError> {
    match inputs
        .iter()
        .find(|ct| !(ct.scale.is_finite() && ct.scale > 0.0))
    {
        Some(ct) => Err(PllError::Malformed(format!(
            "input scale {} is not positive",
            ct.scale
        ))),
        None => Ok(()),
    }
}

/// One token through the adapters, on the client's evaluator; outputs stay on its backend.
fn evaluate<B: Backend>(
    client: &Client<B>,
    members: &[&Adapter<B>],
    inputs: &[Ciphertext],
    settings: &PllSettings,
    rng: &mut NoiseRng,
) -> Result<Vec<Vec<Ciphertext<B::Poly>>>, PllError> {
    let uploaded = inputs
        .iter()
        .map(|ct| client.evaluator.upload(ct))
        .collect::<Result<Vec<_>, _>>()?;
    apply_protected(
        &client.evaluator,
        &client.encryptor,
        members,
        &uploaded,
        settings,
        rng,
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::{Decryptor, KeyGenerator, ParamSpec, SymmetricEncryptor};
    use crate::linear::{random_lora_factors, LoraGroup};
    use rand::SeedableRng;

    /// Every output is re-randomised and flooded: the answer is the perturbed plan's output
    /// plus a fresh encryption of the flood. The unmasked output is recomputed by
    /// replaying the server's stream the way `apply_group_batch` and `apply_protected`
    /// consume it (one fork per token, then one for the masks, then E), so the test fails
    /// if the mask is skipped (c1 unchanged) or is anything but an encryption of a flood of
    /// std σ_f (the difference decrypts to another spread).
    #[test]
    fn outputs_are_rerandomised_and_flooded() {
        let params = Params::new(ParamSpec::n13_depth2()).unwrap();
        let mut server = PllServer::cpu(&params, PllSettings::default()).unwrap();
        let mut rng = sampling::os_rng().unwrap();
        let (a, b) = random_lora_factors(64, 64, 4, &mut rng).unwrap();
        let adapter = server.add_adapter(&a, &b, 2).unwrap();
        let mut keygen = KeyGenerator::new(&params).unwrap();
        let keys = keygen
            .evaluation_keys(&server.rotation_steps(), false)
            .unwrap();
        server
            .register_client(ClientId(1), &keys, keygen.public_key(), &keygen.key_seed())
            .unwrap();
        let encoder = Encoder::new(params.n()).unwrap();
        let pt = encoder
            .encode_at(&params, &[0.5; 64], 2, params.default_scale())
            .unwrap();
        let ct = SymmetricEncryptor::new(&params, keygen.secret_key())
            .unwrap()
            .encrypt(&pt)
            .unwrap();
        server.rng = NoiseRng::from_seed([9; 32]);
        let answer = server
            .apply(ClientId(1), adapter, std::slice::from_ref(&ct))
            .unwrap();

        let mut replay = NoiseRng::from_seed([9; 32]);
        let mut token: NoiseRng = sampling::fork(&mut replay);
        let _masks: NoiseRng = sampling::fork(&mut token);
        let held = server.adapter(adapter).unwrap();
        let evaluator = &server.clients[&ClientId(1)].evaluator;
        let perturbed = held
            .perturbation
            .unwrap()
            .draw(evaluator, &held.plan, &mut token)
            .unwrap();
        let group = LoraGroup::new(vec![&held.plan]).unwrap();
        let z = group.step1(evaluator, std::slice::from_ref(&ct)).unwrap();
        let unmasked = group.finish(evaluator, z, &[&perturbed]).unwrap();
        let unmasked = &unmasked[0][0];

        assert_ne!(answer[0].c1, unmasked.c1, "c1 is re-randomised");
        let difference = evaluator.sub(&answer[0], unmasked).unwrap();
        let decrypted = Decryptor::new(&params, keygen.secret_key())
            .unwrap()
            .decrypt(&difference)
            .unwrap();
        let coefficients = decrypted.centered_coefficients(&params).unwrap();
        let rms =
            (coefficients.iter().map(|c| c * c).sum::<f64>() / coefficients.len() as f64).sqrt();
        // The flood's std over N = 8192 coefficients, plus fresh public-key encryption
        // noise (|e0 + e1·s + u·e| ≲ 2^10, negligible beside σ_f).
        let flood = held.flood_std();
        assert!(flood > f64::from(1u32 << 14), "σ_f = {flood}");
        assert!(
            (0.95..1.05).contains(&(rms / flood)),
            "mask decrypts to rms {rms}, σ_f = {flood}"
        );
    }
}
