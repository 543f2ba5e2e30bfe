//! The Private Linear Layer through its server API, with a real client (own keys, real
//! encryption and decryption), on LoRA-shaped factors: A Kaiming-uniform, B ~ N(0, 0.02²).
//! Bounds: PLL off is the plain plan bit for bit; with noise σ an output's relative error
//! lies in [σ/2, 2σ] (one query over ≥ 256 outputs); flooding alone adds its predicted
//! σ_f·√(N/2)/Δ per slot (within 25%) and nothing else; the attack harness stays at or
//! above the bound of docs/security.md.

use helora::backend::CpuBackend;
use helora::ckks::*;
use helora::linear::{random_lora_factors, LoraPlan, Matrix};
use helora::math::sampling::{self, standard_normal};
use helora::pll::attack::{self, AttackConfig, Design};
use helora::pll::{AdapterId, ClientId, PllError, PllServer, PllSettings};
use helora::ring::Basis;

const SIGMA: f64 = 0.1;

fn lora_factors(d_in: usize, d_out: usize, r: usize) -> (Matrix, Matrix) {
    random_lora_factors(d_in, d_out, r, &mut sampling::os_rng().unwrap()).unwrap()
}

fn input(d: usize, scale: f64) -> Vec<f64> {
    let mut rng = sampling::os_rng().unwrap();
    (0..d).map(|_| scale * standard_normal(&mut rng)).collect()
}

fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    (num / want.iter().map(|w| w * w).sum::<f64>()).sqrt()
}

struct Client {
    params: Params,
    encoder: Encoder,
    keygen: KeyGenerator,
    encryptor: SymmetricEncryptor,
    decryptor: Decryptor,
}

/// The seed the tests' server hands every client for its keys' `a` halves.
const KEY_SEED: KeySeed = KeySeed([0x5e; 16]);

impl Client {
    fn new(params: &Params) -> Self {
        let mut keygen = KeyGenerator::new(params).unwrap();
        keygen.set_key_seed(KEY_SEED);
        Self {
            params: params.clone(),
            encoder: Encoder::new(params.n()).unwrap(),
            encryptor: SymmetricEncryptor::new(params, keygen.secret_key()).unwrap(),
            decryptor: Decryptor::new(params, keygen.secret_key()).unwrap(),
            keygen,
        }
    }

    fn register(&mut self, server: &mut PllServer, id: u64) -> Result<(), PllError> {
        let keys = self
            .keygen
            .evaluation_keys(&server.rotation_steps(), false)
            .unwrap();
        server.register_client(ClientId(id), &keys, self.keygen.public_key(), &KEY_SEED)
    }

    fn encrypt(&mut self, plan: &LoraPlan<CpuBackend>, x: &[f64]) -> Vec<Ciphertext> {
        let (level, scale) = (plan.input_level(), self.params.default_scale());
        plan.input_layout()
            .pack(x)
            .unwrap()
            .iter()
            .map(|slots| {
                let poly = self
                    .encoder
                    .encode(self.params.ring(), slots, scale, Basis::level(level))
                    .unwrap();
                self.encryptor
                    .encrypt(&Plaintext { poly, level, scale })
                    .unwrap()
            })
            .collect()
    }

    /// Every slot of every output ciphertext.
    fn slots(&self, y: &[Ciphertext]) -> Vec<Vec<Complex>> {
        y.iter()
            .map(|ct| {
                let pt = self.decryptor.decrypt(ct).unwrap();
                self.encoder
                    .decode_complex(self.params.ring(), &pt.poly, pt.scale)
                    .unwrap()
            })
            .collect()
    }

    fn decrypt(&self, plan: &LoraPlan<CpuBackend>, y: &[Ciphertext]) -> Vec<f64> {
        let real: Vec<Vec<f64>> = self
            .slots(y)
            .iter()
            .map(|s| s.iter().map(|z| z.re).collect())
            .collect();
        plan.output_layout().unpack(&real).unwrap()
    }
}

struct Setup {
    client: Client,
    server: PllServer,
    adapter: AdapterId,
    a: Matrix,
    b: Matrix,
}

fn setup(d_in: usize, d_out: usize, r: usize, settings: PllSettings) -> Setup {
    let params = Params::new(ParamSpec::n13_depth2()).unwrap();
    let mut server = PllServer::cpu(&params, settings).unwrap();
    let (a, b) = lora_factors(d_in, d_out, r);
    let adapter = server.add_adapter(&a, &b, 2).unwrap();
    let mut client = Client::new(&params);
    client.register(&mut server, 1).unwrap();
    Setup {
        client,
        server,
        adapter,
        a,
        b,
    }
}

impl Setup {
    fn plan(&self) -> &LoraPlan<CpuBackend> {
        self.server.adapter(self.adapter).unwrap().plan()
    }

    fn encrypt(&mut self, x: &[f64]) -> Vec<Ciphertext> {
        let plan = self.server.adapter(self.adapter).unwrap().plan();
        self.client.encrypt(plan, x)
    }

    fn query(&mut self, x: &[f64]) -> Vec<Ciphertext> {
        let cts = self.encrypt(x);
        self.server.apply(ClientId(1), self.adapter, &cts).unwrap()
    }

    fn want(&self, x: &[f64]) -> Vec<f64> {
        self.b.left_multiply(&self.a.left_multiply(x))
    }
}

fn settings(noise: f64, flooding: bool) -> PllSettings {
    PllSettings {
        noise,
        flooding,
        ..PllSettings::default()
    }
}

#[test]
fn pll_off_is_the_plain_plan_bit_for_bit() {
    let params = Params::new(ParamSpec::n13_depth2()).unwrap();
    let mut server = PllServer::cpu(&params, PllSettings::off()).unwrap();
    let (a, b) = lora_factors(576, 300, 6);
    let adapter = server.add_adapter(&a, &b, 2).unwrap();
    let mut client = Client::new(&params);
    // One key set, on the server and on a bare evaluator running the plain plan.
    let keys = client
        .keygen
        .evaluation_keys(&server.rotation_steps(), false)
        .unwrap();
    server
        .register_client(ClientId(1), &keys, client.keygen.public_key(), &KEY_SEED)
        .unwrap();
    let mut plain = Evaluator::cpu(&params);
    plain.set_keys(&keys).unwrap();
    let plan = LoraPlan::new(&plain, &client.encoder, &a, &b, 2).unwrap();
    let cts = client.encrypt(&plan, &input(576, 1.0));
    let via_server = server.apply(ClientId(1), adapter, &cts).unwrap();
    let direct = plan.apply(&plain, &cts).unwrap();
    assert!(via_server == direct, "PLL off differs from the plain plan");
    assert_eq!(
        server.queries_used(ClientId(1), adapter).unwrap(),
        1,
        "counted even when off"
    );
}

#[test]
fn noise_is_proportional_and_survives_scaling_the_input() {
    let mut s = setup(256, 256, 8, settings(SIGMA, true));
    for scale in [1.0, 1000.0] {
        let x = input(256, scale);
        let y = s.query(&x);
        let err = relative_error(&s.client.decrypt(s.plan(), &y), &s.want(&x));
        println!("input scale {scale}: relative error {err:.4} (σ = {SIGMA})");
        assert!(
            (SIGMA / 2.0..=2.0 * SIGMA).contains(&err),
            "scale {scale}: relative error {err} is not ≈ σ"
        );
    }
}

#[test]
fn slots_outside_the_result_hold_only_protection_noise() {
    let (d_in, d_out) = (256, 100);
    for (noise, flooding) in [(0.0, false), (SIGMA, true)] {
        let mut s = setup(d_in, d_out, 4, settings(noise, flooding));
        let x = input(d_in, 1.0);
        let want = s.want(&x);
        let y = s.query(&x);
        let slots = s.client.slots(&y);
        let outside: Vec<f64> = slots[0][d_out..].iter().map(|z| z.re).collect();
        let imaginary: Vec<f64> = slots[0].iter().map(|z| z.im).collect();
        // The mask's std per component: σ_E·‖u‖, u = x·A.
        let u_norm =
            s.a.left_multiply(&x)
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt();
        let mask = s.server.adapter(s.adapter).unwrap().noise_std() * u_norm;
        println!(
            "σ = {noise}: outside rms {:.3e}, imaginary rms {:.3e}, mask {mask:.3e}, result rms {:.3e}",
            rms(&outside),
            rms(&imaginary),
            rms(&want)
        );
        if noise == 0.0 {
            // Plain plan: zero up to the scheme's noise — no step-1 values, no partial sums.
            assert!(rms(&outside) < 1e-6 * rms(&want));
            assert!(rms(&imaginary) < 1e-6 * rms(&want));
        } else {
            for part in [&outside, &imaginary] {
                let ratio = rms(part) / mask;
                assert!((0.7..1.4).contains(&ratio), "masked at {ratio} × σ_E‖u‖");
            }
        }
    }
}

#[test]
fn rerandomised_outputs_differ_and_decrypt_within_the_flooding_cost() {
    let mut s = setup(256, 256, 8, settings(0.0, true));
    let x = input(256, 1.0);
    let cts = s.encrypt(&x);
    let first = s.server.apply(ClientId(1), s.adapter, &cts).unwrap();
    let second = s.server.apply(ClientId(1), s.adapter, &cts).unwrap();
    assert_ne!(first[0].c1, second[0].c1);
    assert_ne!(first[0].c0, second[0].c0);
    let adapter = s.server.adapter(s.adapter).unwrap();
    let params = &s.client.params;
    // The flood's std per slot component: σ_f·√(N/2)/Δ.
    let predicted = adapter.flood_std() * (params.n() as f64 / 2.0).sqrt() / params.default_scale();
    let want = s.want(&x);
    for y in [&first, &second] {
        let err = relative_error(&s.client.decrypt(s.plan(), y), &want);
        let imaginary: Vec<f64> = s.client.slots(y)[0].iter().map(|z| z.im).collect();
        let ratio = rms(&imaginary) / predicted;
        println!(
            "σ_f = 2^{:.1} (circuit error rms ≤ {:.1}): relative error {err:.2e}, flood {ratio:.2} × predicted",
            adapter.flood_std().log2(),
            adapter.circuit_error()
        );
        // The flood is the whole error here: its share of the result's rms.
        assert!(err < 1.5 * predicted / rms(&want), "{err}");
        assert!((0.8..1.25).contains(&ratio));
    }
}

#[test]
fn flooding_is_sized_for_more_than_the_measured_circuit_error() {
    let mut s = setup(256, 256, 8, settings(0.0, true));
    let plan = LoraPlan::new(
        &Evaluator::cpu(&s.client.params),
        &s.client.encoder,
        &s.a,
        &s.b,
        2,
    )
    .unwrap();
    let mut plain = Evaluator::cpu(&s.client.params);
    plain
        .set_keys(
            &s.client
                .keygen
                .evaluation_keys(&plan.rotation_steps(), false)
                .unwrap(),
        )
        .unwrap();
    let x = input(256, 1.0);
    let y = plan.apply(&plain, &s.client.encrypt(&plan, &x)).unwrap();
    // The whole decrypted error of the unprotected output, per coefficient, from its slots
    // (Parseval: Σ_j |e_j|² = (N/2)·‖e‖² / Δ²).
    let want = s.want(&x);
    let slots = s.client.slots(&y);
    let n = s.client.params.n() as f64;
    let energy: f64 = slots[0]
        .iter()
        .enumerate()
        .map(|(i, z)| (z.re - want.get(i).copied().unwrap_or(0.0)).powi(2) + z.im * z.im)
        .sum();
    let measured = y[0].scale * (2.0 * energy / n).sqrt() / n.sqrt();
    let assumed = s.server.adapter(s.adapter).unwrap().circuit_error();
    println!("circuit error rms: measured {measured:.1}, flooding assumes {assumed:.1}");
    assert!(measured <= assumed);
    let _ = s.query(&x);
}

#[test]
fn budget_exhaustion_is_a_clear_error() {
    let mut s = setup(
        64,
        64,
        4,
        PllSettings {
            budget: 2,
            ..settings(SIGMA, true)
        },
    );
    let x = input(64, 1.0);
    s.query(&x);
    s.query(&x);
    assert_eq!(s.server.queries_left(ClientId(1), s.adapter).unwrap(), 0);
    let cts = s.encrypt(&x);
    let err = s.server.apply(ClientId(1), s.adapter, &cts).unwrap_err();
    assert!(matches!(
        err,
        PllError::BudgetExhausted {
            client: 1,
            budget: 2,
            ..
        }
    ));
    assert!(err.to_string().contains("budget exhausted"), "{err}");
    // Another client id has its own budget.
    s.client.register(&mut s.server, 2).unwrap();
    assert!(s.server.apply(ClientId(2), s.adapter, &cts).is_ok());
}

#[test]
fn unknown_ids_bad_keys_and_limits_are_errors() {
    let params = Params::new(ParamSpec::n13_depth2()).unwrap();
    let mut server = PllServer::cpu(
        &params,
        PllSettings {
            max_clients: 1,
            ..settings(SIGMA, true)
        },
    )
    .unwrap();
    let (a, b) = lora_factors(64, 64, 4);
    let adapter = server.add_adapter(&a, &b, 2).unwrap();
    let mut client = Client::new(&params);
    let cts = client.encrypt(server.adapter(adapter).unwrap().plan(), &input(64, 1.0));
    assert!(matches!(
        server.apply(ClientId(7), adapter, &cts),
        Err(PllError::UnknownClient(7))
    ));
    assert!(matches!(
        server.queries_used(ClientId(7), adapter),
        Err(PllError::UnknownClient(7))
    ));
    // Keys without the plan's rotations.
    let partial = client.keygen.evaluation_keys(&[1], false).unwrap();
    assert!(matches!(
        server.register_client(ClientId(1), &partial, client.keygen.public_key(), &KEY_SEED),
        Err(PllError::MissingRotationKey { .. })
    ));
    // A public key over the wrong basis.
    let keys = client
        .keygen
        .evaluation_keys(&server.rotation_steps(), false)
        .unwrap();
    let mut bad_pk = client.keygen.public_key();
    bad_pk.a.truncate_q(1);
    assert!(matches!(
        server.register_client(ClientId(1), &keys, bad_pk, &KEY_SEED),
        Err(PllError::Malformed(_))
    ));
    // Keys whose `a` halves come from a seed of the client's choosing, or a = 0.
    let mut own = KeyGenerator::new(&params).unwrap();
    let own_keys = own
        .evaluation_keys(&server.rotation_steps(), false)
        .unwrap();
    assert!(matches!(
        server.register_client(ClientId(1), &own_keys, own.public_key(), &KEY_SEED),
        Err(PllError::WrongKeySeed)
    ));
    assert!(matches!(
        server.register_client(ClientId(1), &keys, own.public_key(), &KEY_SEED),
        Err(PllError::WrongKeySeed)
    ));
    // a = 0 naming the server's seed: the server expands the seed itself.
    let mut zero_a = client.keygen.public_key();
    zero_a.a = helora::ring::RnsPoly::zero(zero_a.a.n(), zero_a.a.basis(), true);
    assert!(matches!(
        server.register_client(ClientId(1), &keys, zero_a, &KEY_SEED),
        Err(PllError::WrongKeySeed)
    ));
    client.register(&mut server, 1).unwrap();
    assert!(matches!(
        client.register(&mut server, 1),
        Err(PllError::DuplicateClient(1))
    ));
    assert!(matches!(
        client.register(&mut server, 2),
        Err(PllError::TooManyClients { max: 1 })
    ));
    // Unknown adapter, empty and duplicated groups, wrong input count, bad scale.
    assert!(server.apply(ClientId(1), adapter, &cts).is_ok());
    let other = {
        let mut s2 = PllServer::cpu(&params, PllSettings::off()).unwrap();
        s2.add_adapter(&a, &b, 2).unwrap();
        s2.add_adapter(&a, &b, 2).unwrap()
    };
    assert!(matches!(
        server.apply(ClientId(1), other, &cts),
        Err(PllError::UnknownAdapter(1))
    ));
    assert!(server.apply_group(ClientId(1), &[], &cts).is_err());
    assert!(server
        .apply_group(ClientId(1), &[adapter, adapter], &cts)
        .is_err());
    assert!(server.apply(ClientId(1), adapter, &[]).is_err());
    let mut nan = cts.clone();
    nan[0].scale = f64::NAN;
    assert!(matches!(
        server.apply(ClientId(1), adapter, &nan),
        Err(PllError::Malformed(_))
    ));
    assert_eq!(
        server.queries_used(ClientId(1), adapter).unwrap(),
        1,
        "failed requests are not counted"
    );
    // Key size limit, and settings that cannot work.
    let mut small = PllServer::cpu(
        &params,
        PllSettings {
            max_key_bytes: 1 << 20,
            ..PllSettings::off()
        },
    )
    .unwrap();
    small.add_adapter(&a, &b, 2).unwrap();
    assert!(matches!(
        client.register(&mut small, 1),
        Err(PllError::KeysTooLarge { .. })
    ));
    for bad in [
        settings(-1.0, false),
        settings(f64::NAN, true),
        // Noise without flooding: the decryption error would carry B's diagonals.
        settings(SIGMA, false),
        PllSettings {
            budget: 0,
            ..settings(SIGMA, true)
        },
    ] {
        assert!(matches!(
            PllServer::cpu(&params, bad),
            Err(PllError::Settings(_))
        ));
    }
    let mut huge = PllServer::cpu(
        &params,
        PllSettings {
            budget: u64::MAX,
            ..settings(SIGMA, true)
        },
    )
    .unwrap();
    assert!(matches!(
        huge.add_adapter(&a, &b, 2),
        Err(PllError::Settings(_))
    ));
}

#[test]
fn group_members_each_count_one_query_and_stay_noisy() {
    let params = Params::new(ParamSpec::n13_depth2()).unwrap();
    let mut server = PllServer::cpu(&params, settings(SIGMA, true)).unwrap();
    let factors = [lora_factors(256, 256, 8), lora_factors(256, 128, 4)];
    let ids: Vec<AdapterId> = factors
        .iter()
        .map(|(a, b)| server.add_adapter(a, b, 2).unwrap())
        .collect();
    let mut client = Client::new(&params);
    client.register(&mut server, 1).unwrap();
    let x = input(256, 1.0);
    let cts = client.encrypt(server.adapter(ids[0]).unwrap().plan(), &x);
    let outputs = server.apply_group(ClientId(1), &ids, &cts).unwrap();
    for ((id, (a, b)), y) in ids.iter().zip(&factors).zip(&outputs) {
        let plan = server.adapter(*id).unwrap().plan();
        let err = relative_error(
            &client.decrypt(plan, y),
            &b.left_multiply(&a.left_multiply(&x)),
        );
        println!("group member {}: relative error {err:.4}", id.index());
        assert!((SIGMA / 2.0..=2.0 * SIGMA).contains(&err));
        assert_eq!(server.queries_used(ClientId(1), *id).unwrap(), 1);
    }
}

#[test]
fn extraction_attack_succeeds_without_pll_and_stays_above_the_bound_with_it() {
    let (d, r) = (64, 4);
    let off = attack::run(&AttackConfig::new(d, r, d as u64, false)).unwrap();
    println!("{off:?}");
    assert!(off.relative_error < 1e-4, "{off:?}");
    assert_eq!(off.bound, 0.0);
    let on = attack::run(&AttackConfig::new(d, r, d as u64, true)).unwrap();
    println!("{on:?}");
    assert!(on.bound > 0.0);
    assert!(on.relative_error >= on.bound, "{on:?}");
    assert!(on.least_squares_error >= on.bound);
    // Plain least squares is at σ·√(d/Q) = σ here.
    assert!((0.7 * SIGMA..1.4 * SIGMA).contains(&on.least_squares_error));
    // Random inputs and scaled inputs do no better.
    let mut random = AttackConfig::new(d, r, 2 * d as u64, true);
    random.design = Design::Random;
    random.input_scale = 1000.0;
    let random = attack::run(&random).unwrap();
    println!("{random:?}");
    assert!(random.relative_error >= random.bound, "{random:?}");
}

#[test]
fn batches_run_on_threads_count_every_token_and_respect_the_budget() {
    // PLL off: the batch is the plain plan, token for token, bit for bit.
    let mut s = setup(128, 96, 4, PllSettings::off());
    let xs: Vec<Vec<f64>> = (0..5).map(|_| input(128, 1.0)).collect();
    let tokens: Vec<Vec<Ciphertext>> = xs.iter().map(|x| s.encrypt(x)).collect();
    let batch = s
        .server
        .apply_group_batch(ClientId(1), &[s.adapter], &tokens)
        .unwrap();
    assert_eq!(batch.len(), 5);
    for (token, out) in tokens.iter().zip(&batch) {
        let single = s.server.apply(ClientId(1), s.adapter, token).unwrap();
        assert!(out[0] == single, "batch differs from one at a time");
    }
    assert_eq!(s.server.queries_used(ClientId(1), s.adapter).unwrap(), 10);

    // PLL on: every token noisy but right to about σ, each with its own randomness.
    let mut s = setup(
        128,
        96,
        4,
        PllSettings {
            budget: 6,
            ..settings(SIGMA, true)
        },
    );
    let x = input(128, 1.0);
    let same: Vec<Vec<Ciphertext>> = (0..4).map(|_| s.encrypt(&x)).collect();
    let outs = s
        .server
        .apply_group_batch(ClientId(1), &[s.adapter], &same)
        .unwrap();
    let decrypted: Vec<Vec<f64>> = outs
        .iter()
        .map(|o| s.client.decrypt(s.plan(), &o[0]))
        .collect();
    for (k, y) in decrypted.iter().enumerate() {
        let err = relative_error(y, &s.want(&x));
        assert!(err < 4.0 * SIGMA, "token {k}: relative error {err}");
        for other in &decrypted[..k] {
            assert!(
                relative_error(y, other) > 1e-3,
                "two tokens drew the same noise"
            );
        }
    }
    assert_eq!(s.server.queries_left(ClientId(1), s.adapter).unwrap(), 2);
    // A batch that would overrun the budget is refused whole, and nothing is counted.
    let err = s
        .server
        .apply_group_batch(ClientId(1), &[s.adapter], &same[..3])
        .unwrap_err();
    assert!(matches!(err, PllError::BudgetExhausted { .. }), "{err}");
    assert_eq!(s.server.queries_left(ClientId(1), s.adapter).unwrap(), 2);
}

/// With a target extraction error, each adapter gets the σ that its own rank and shape
/// factor κ need: its bound at the full budget is the target, whatever κ is. An adapter
/// whose A has one dominant direction has κ well below 1 and so needs a larger σ than a
/// balanced one (a σ sized with κ = 1 would leave its floor at √κ of the target).
#[test]
fn a_target_error_sizes_each_adapters_noise_with_its_own_shape() {
    let params = Params::new(ParamSpec::n13_depth2()).unwrap();
    let target = 0.01;
    let settings = PllSettings {
        noise_target: Some(target),
        ..PllSettings::default()
    };
    let mut server = PllServer::cpu(&params, settings.clone()).unwrap();
    let (a, b) = lora_factors(64, 64, 4);
    // The same factors with A's first column 30 times longer.
    let skewed = Matrix::new(
        64,
        4,
        (0..64 * 4)
            .map(|i| a.get(i / 4, i % 4) * if i % 4 == 0 { 30.0 } else { 1.0 })
            .collect(),
    )
    .unwrap();
    let mut sigmas = Vec::new();
    for a in [&a, &skewed] {
        let id = server.add_adapter(a, &b, 2).unwrap();
        let held = server.adapter(id).unwrap();
        let kappa = helora::pll::shape_factor(a, &b);
        let want = helora::pll::noise_for_target(target, settings.budget, 4, kappa);
        println!("κ = {kappa:.3}: σ = {:.4}", held.noise());
        assert!((held.noise() - want).abs() < 1e-12 * want);
        let floor = held.extraction_bound().relative_error(settings.budget);
        assert!((floor - target).abs() < 1e-9, "floor {floor}");
        sigmas.push((kappa, held.noise()));
    }
    assert!(sigmas[1].0 < 0.7 * sigmas[0].0, "κ {:?}", sigmas);
    assert!(
        sigmas[1].1 > sigmas[0].1,
        "a smaller κ needs a larger σ: {sigmas:?}"
    );

    for bad in [
        PllSettings {
            noise_target: Some(0.0),
            ..settings.clone()
        },
        PllSettings {
            noise_target: Some(f64::NAN),
            ..settings.clone()
        },
        PllSettings {
            flooding: false,
            noise: 0.0,
            ..settings.clone()
        },
    ] {
        assert!(matches!(
            PllServer::cpu(&params, bad),
            Err(PllError::Settings(_))
        ));
    }
}
