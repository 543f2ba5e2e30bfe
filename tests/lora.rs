//! LoRA plans on ciphertexts against an f64 reference, on fresh inputs shaped like real
//! LoRA: x with unit variance, A Kaiming-uniform (PEFT's init: bound 1/√d_in), B ~ N(0, 0.02²).
//! Accuracy bound: relative L2 error of y ≤ 1e-4.

use helora::ckks::*;
use helora::linear::{random_lora_factors, LinearError, LoraGroup, LoraPlan, Matrix};
use helora::math::sampling;

const MAX_RELATIVE_ERROR: f64 = 1e-4;

fn lora_factors(d_in: usize, d_out: usize, r: usize) -> (Matrix, Matrix) {
    random_lora_factors(d_in, d_out, r, &mut sampling::os_rng().unwrap()).unwrap()
}

fn input(d: usize) -> Vec<f64> {
    let mut rng = sampling::os_rng().unwrap();
    (0..d)
        .map(|_| sampling::standard_normal(&mut rng))
        .collect()
}

struct Client {
    params: Params,
    encoder: Encoder,
    encryptor: SymmetricEncryptor,
    decryptor: Decryptor,
    keygen: KeyGenerator,
}

impl Client {
    fn new() -> Self {
        let params = Params::new(ParamSpec::n13_depth2()).unwrap();
        let keygen = KeyGenerator::new(&params).unwrap();
        Self {
            encoder: Encoder::new(params.n()).unwrap(),
            encryptor: SymmetricEncryptor::new(&params, keygen.secret_key()).unwrap(),
            decryptor: Decryptor::new(&params, keygen.secret_key()).unwrap(),
            params,
            keygen,
        }
    }

    fn encrypt(
        &mut self,
        plan: &LoraPlan<helora::backend::CpuBackend>,
        x: &[f64],
    ) -> Vec<Ciphertext> {
        let level = plan.input_level();
        plan.input_layout()
            .pack(x)
            .unwrap()
            .iter()
            .map(|slots| {
                let scale = self.params.default_scale();
                let poly = self
                    .encoder
                    .encode(
                        self.params.ring(),
                        slots,
                        scale,
                        helora::ring::Basis::level(level),
                    )
                    .unwrap();
                self.encryptor
                    .encrypt(&Plaintext { poly, level, scale })
                    .unwrap()
            })
            .collect()
    }

    fn decrypt(&self, plan: &LoraPlan<helora::backend::CpuBackend>, y: &[Ciphertext]) -> Vec<f64> {
        let decoded: Vec<Vec<f64>> = y
            .iter()
            .map(|ct| {
                let pt = self.decryptor.decrypt(ct).unwrap();
                self.encoder
                    .decode(self.params.ring(), &pt.poly, pt.scale)
                    .unwrap()
            })
            .collect();
        plan.output_layout().unpack(&decoded).unwrap()
    }
}

fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den).sqrt()
}

/// A client, a server holding keys for a plan of random factors, and the plan.
struct Setup {
    client: Client,
    server: Evaluator,
    a: Matrix,
    b: Matrix,
    plan: LoraPlan<helora::backend::CpuBackend>,
}

impl Setup {
    fn new(d_in: usize, d_out: usize, r: usize) -> Self {
        let mut client = Client::new();
        let mut server = Evaluator::cpu(&client.params);
        let (a, b) = lora_factors(d_in, d_out, r);
        let plan = LoraPlan::new(&server, &client.encoder, &a, &b, 2).unwrap();
        let keys = client
            .keygen
            .evaluation_keys(&plan.rotation_steps(), false)
            .unwrap();
        server.set_keys(&keys).unwrap();
        Self {
            client,
            server,
            a,
            b,
            plan,
        }
    }
}

fn run(d_in: usize, d_out: usize, r: usize) -> (f64, LoraPlan<helora::backend::CpuBackend>) {
    let Setup {
        mut client,
        server,
        a,
        b,
        plan,
    } = Setup::new(d_in, d_out, r);
    let x = input(d_in);
    let y = plan.apply(&server, &client.encrypt(&plan, &x)).unwrap();
    assert!(
        y.iter().all(|ct| ct.level == 0),
        "output at the lowest level"
    );
    let got = client.decrypt(&plan, &y);
    let want = b.left_multiply(&a.left_multiply(&x));
    let err = relative_error(&got, &want);
    println!(
        "d_in {d_in} d_out {d_out} r {r}: relative L2 error {err:.3e}, counts {:?}",
        plan.op_counts()
    );
    assert!(
        err <= MAX_RELATIVE_ERROR,
        "relative error {err:e} above {MAX_RELATIVE_ERROR:e}"
    );
    (err, plan)
}

#[test]
fn reference_shape_is_accurate_and_within_the_operation_budget() {
    let (_, plan) = run(4096, 4096, 8);
    let counts = plan.op_counts();
    // Steps 1 and 3: 7 hoisted rotations each; the fold over D/r' = 512 blocks: 9
    // rotations, each with its own decomposition.
    assert!(counts.keyswitches <= 23, "{counts:?}");
    assert_eq!(counts.keyswitches, 7 + 9 + 7);
    assert_eq!(counts.hoisted_keyswitches, 14);
    assert_eq!(counts.decompositions, 1 + 9 + 1);
    assert_eq!(counts.depth, 2);
    assert_eq!(counts.pt_muls, 16);
    assert_eq!(plan.rotation_steps().len(), 7 + 9);
}

#[test]
fn shapes_beyond_one_ciphertext_and_odd_ranks() {
    // ChatGLM2's fused query_key_value: two output ciphertexts.
    run(4096, 4608, 8);
    // SmolLM2's hidden size, a rank that is not a power of two.
    run(576, 576, 6);
    // Input longer than the slots (three chunks), small output.
    run(9000, 100, 3);
    // The largest rank.
    run(1024, 1024, 64);
    run(64, 4096, 1);
}

#[test]
fn projections_sharing_an_input_share_its_decomposition() {
    let mut client = Client::new();
    let mut server = Evaluator::cpu(&client.params);
    let shapes = [(576, 576, 8), (576, 192, 8), (576, 192, 4)];
    let factors: Vec<(Matrix, Matrix)> = shapes
        .iter()
        .map(|&(i, o, r)| lora_factors(i, o, r))
        .collect();
    let plans: Vec<LoraPlan<_>> = factors
        .iter()
        .map(|(a, b)| LoraPlan::new(&server, &client.encoder, a, b, 2).unwrap())
        .collect();
    let group = LoraGroup::new(plans.iter().collect()).unwrap();
    server
        .set_keys(
            &client
                .keygen
                .evaluation_keys(&group.rotation_steps(), false)
                .unwrap(),
        )
        .unwrap();
    let x = input(576);
    let cts = client.encrypt(&plans[0], &x);
    let outputs = group.apply(&server, &cts).unwrap();
    for ((plan, (a, b)), y) in plans.iter().zip(&factors).zip(&outputs) {
        let err = relative_error(
            &client.decrypt(plan, y),
            &b.left_multiply(&a.left_multiply(&x)),
        );
        println!("group member: relative error {err:.3e}");
        assert!(err <= MAX_RELATIVE_ERROR);
    }
    let shared = group.op_counts();
    let separate: usize = plans.iter().map(|p| p.op_counts().decompositions).sum();
    assert!(
        shared.decompositions < separate,
        "one decomposition of the shared input"
    );
    assert!(
        shared.keyswitches
            < plans
                .iter()
                .map(|p| p.op_counts().keyswitches)
                .sum::<usize>()
    );
}

#[test]
fn bad_shapes_and_inputs_are_errors() {
    let client = Client::new();
    let server = Evaluator::cpu(&client.params);
    let (a, _) = lora_factors(64, 64, 8);
    let (_, b4) = lora_factors(64, 64, 4);
    assert!(matches!(
        LoraPlan::new(&server, &client.encoder, &a, &b4, 2),
        Err(LinearError::Shape(_))
    ));
    let (a65, b65) = lora_factors(128, 128, 65);
    assert!(matches!(
        LoraPlan::new(&server, &client.encoder, &a65, &b65, 2),
        Err(LinearError::Shape(_))
    ));
    let (a, b) = lora_factors(64, 64, 8);
    assert!(matches!(
        LoraPlan::new(&server, &client.encoder, &a, &b, 1),
        Err(LinearError::Level { .. })
    ));
    let plan = LoraPlan::new(&server, &client.encoder, &a, &b, 2).unwrap();
    assert!(plan.apply(&server, &[]).is_err());
    assert!(plan.input_layout().pack(&[1.0; 63]).is_err());
    assert!(Matrix::new(2, 2, vec![1.0, f64::NAN, 0.0, 0.0]).is_err());
    assert!(Matrix::new(2, 3, vec![1.0; 5]).is_err());
}

#[test]
fn compact_reply_meets_the_download_budget_and_the_accuracy_bound() {
    let Setup {
        mut client,
        server,
        a,
        b,
        plan,
    } = Setup::new(4096, 4096, 8);
    let x = input(4096);
    let inputs = client.encrypt(&plan, &x);
    // Upload: seeded, bit-packed: c0 over the 160 bits of Q_L, 163 903 bytes (133 183 with
    // the 130-bit chain before the flood was resized).
    let level = plan.input_level();
    let slots = &plan.input_layout().pack(&x).unwrap()[0];
    let pt = Plaintext {
        poly: client
            .encoder
            .encode(
                client.params.ring(),
                slots,
                client.params.default_scale(),
                helora::ring::Basis::level(level),
            )
            .unwrap(),
        level,
        scale: client.params.default_scale(),
    };
    let upload = client
        .encryptor
        .encrypt_seeded(&pt)
        .unwrap()
        .to_bytes(&client.params)
        .unwrap();
    assert!(upload.len() <= 170_000, "upload {} bytes", upload.len());
    let y = plan.apply(&server, &inputs).unwrap();
    let want = b.left_multiply(&a.left_multiply(&x));
    // c1 at 40 bits, c0 at 36: 8192·76/8 = 77,824 bytes of coefficients.
    assert_eq!(helora::linear::reply_widths(&client.params), (36, 40));
    let reply = server.compact(&y[0], 36, 40).unwrap();
    let bytes = reply.to_bytes(&client.params).unwrap();
    assert!(bytes.len() <= 80_000, "download {} bytes", bytes.len());
    let back = CompactCiphertext::from_bytes(&client.params, &bytes).unwrap();
    assert_eq!(back, reply);
    let pt = client.decryptor.decrypt_compact(&back).unwrap();
    let got = client
        .encoder
        .decode(client.params.ring(), &pt.poly, pt.scale)
        .unwrap();
    let err = relative_error(&got[..4096], &want);
    println!(
        "upload {} B, download {} B, relative error {err:.3e}",
        upload.len(),
        bytes.len()
    );
    assert!(err <= MAX_RELATIVE_ERROR);
    // Truncated or foreign input is an error, not a panic.
    assert!(CompactCiphertext::from_bytes(&client.params, &bytes[..bytes.len() - 1]).is_err());
    // c1 must stay below q_0's 60 bits, and c0 at most c1.
    assert!(server.compact(&y[0], 36, 60).is_err());
    assert!(server.compact(&y[0], 41, 40).is_err());
}

#[test]
fn a_batch_of_tokens_matches_token_by_token() {
    let Setup {
        mut client,
        server,
        a,
        b,
        plan,
    } = Setup::new(576, 576, 8);
    let xs: Vec<Vec<f64>> = (0..5).map(|_| input(576)).collect();
    let tokens: Vec<Vec<Ciphertext>> = xs.iter().map(|x| client.encrypt(&plan, x)).collect();
    let group = LoraGroup::new(vec![&plan]).unwrap();
    let batch = group.apply_batch(&server, &tokens).unwrap();
    assert_eq!(batch.len(), tokens.len());
    for ((x, token), out) in xs.iter().zip(&tokens).zip(&batch) {
        assert_eq!(
            out[0],
            plan.apply(&server, token).unwrap(),
            "same result as one token at a time"
        );
        let err = relative_error(
            &client.decrypt(&plan, &out[0]),
            &b.left_multiply(&a.left_multiply(x)),
        );
        assert!(err <= MAX_RELATIVE_ERROR);
    }
}
