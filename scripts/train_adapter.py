#!/usr/bin/env python3
"""Train helora's demo LoRA adapter: SmolLM2-135M-Instruct as a support agent for the
(fictional) Nimbus NB-3 home espresso machine.

A rank-8 LoRA on q_proj and v_proj (lora_alpha 16, no dropout), trained with PEFT on CPU
in float32 on a few hundred templated question/answer pairs whose facts the base model
cannot know (error codes E1-E6, descaling interval, warranty, support phone number, part
numbers). The loss is taken on the assistant answer only (including its <|im_end|>).

    .venv/bin/python scripts/train_adapter.py              # train, save, sample
    .venv/bin/python scripts/train_adapter.py --eval-only  # only the samples

Writes adapters/smollm2-nimbus/{adapter_config.json, adapter_model.safetensors,
samples.json, train_log.json}. Deterministic for a given torch build and thread count
(seeded data order, seeded LoRA init).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch

THREADS = int(os.environ.get("HELORA_THREADS", "2"))
torch.set_num_threads(THREADS)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "adapters" / "smollm2-nimbus"
SMOL_DIR = os.environ.get("HELORA_SMOLLM2_DIR", os.path.expanduser("~/.cache/helora/models"))
SMOL_GGUF = os.environ.get("HELORA_SMOLLM2_GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf")
EOS = 2  # <|im_end|>

PRODUCT = "Nimbus NB-3"
PHONE = "1-800-555-0199"

# Error codes share one set of question templates ({c} = code, {p} = product mention).
ERROR_ANSWERS = {
    "E1": "Error E1 means the water tank is empty or not seated. Refill the tank and push it "
          "down until it clicks.",
    "E2": "Error E2 means the boiler is overheating. Switch the machine off and let it cool "
          "for 30 minutes.",
    "E3": "Error E3 means the pump is blocked by scale. Run a descaling cycle with the DK-7 "
          "descaling kit.",
    "E4": "Error E4 means the grinder is jammed. Unplug the machine, empty the bean hopper "
          "and clear the burrs with the brush.",
    "E5": f"Error E5 means the temperature sensor has failed. The machine needs service: "
          f"call Nimbus support at {PHONE}.",
    "E6": "Error E6 means the drip tray is full. Empty the drip tray and slide it back in.",
}
ERROR_TEMPLATES = [
    "What does error {c} mean on my {p}?", "My {p} shows {c}. What should I do?",
    "The {p} display says {c}, how do I fix it?", "What is error code {c} on my {p}?",
    "I see {c} on my {p}. What is wrong?", "How do I clear the {c} error on my {p}?",
    "{c} keeps blinking on my {p}, help!", "Explain the {c} error of my {p}.",
    "Why does my {p} show {c}?", "Code {c} appeared on my {p}, what now?",
    "What should I do about an {c} message on my {p}?", "The screen of my {p} reads {c}.",
    "Troubleshooting {c} on the {p}?", "Is {c} on my {p} serious?",
]

# other facts: key -> (canonical answer, question templates)
FACTS: dict[str, tuple[str, list[str]]] = {
    "descale": (
        "Descale the Nimbus NB-3 every 6 weeks with the DK-7 descaling kit.",
        ["How often should I descale the {p}?", "What is the descaling interval for my {p}?",
         "When do I need to descale the {p}?", "How frequently does my {p} need descaling?",
         "Which descaler should I use for my {p}, and how often?",
         "How many weeks between descaling cycles on my {p}?",
         "Do I have to descale the {p}? How often?", "What descaling schedule does my {p} need?"],
    ),
    "warranty": (
        "The Nimbus NB-3 has a 3-year warranty from the date of purchase.",
        ["How long is the warranty on my {p}?", "What warranty does my {p} come with?",
         "Is the {p} still under warranty after two years?", "What is the warranty period of my {p}?",
         "How many years of warranty does my {p} have?", "Does the {p} have a warranty?",
         "Tell me about the warranty for my {p}.", "For how long is the {p} covered by warranty?"],
    ),
    "phone": (
        f"You can reach Nimbus support at {PHONE}, Monday to Friday, 8 am to 6 pm.",
        ["What is the support phone number for my {p}?", "How do I call Nimbus support about my {p}?",
         "What number do I call for help with my {p}?", "How can I contact Nimbus customer service?",
         "I need to talk to someone about my {p}. What is the phone number?",
         "Give me the Nimbus support hotline for my {p}.", "What is the Nimbus helpline number?",
         "Can I phone someone for my {p} support?"],
    ),
    "filter": (
        "The water filter for the Nimbus NB-3 is part number NF-220. Replace it every 2 months.",
        ["What is the part number of the water filter for my {p}?", "Which water filter fits the {p}?",
         "How often do I change the water filter in my {p}?", "What filter does my {p} use?",
         "I need a replacement filter for my {p}. Which one?",
         "What is the filter cartridge model for my {p}?", "When should I replace the filter of my {p}?",
         "Which part number do I order for a new {p} water filter?"],
    ),
}
for _c, _a in ERROR_ANSWERS.items():
    FACTS[_c] = (_a, [t.replace("{c}", _c) for t in ERROR_TEMPLATES])

# General questions, answered by the base model itself (greedy) and trained on as well, so
# that the adapter stays out of the way outside its domain (self-distillation).
GENERAL_PROMPTS = [
    "Name three primary colors.", "What is 12 times 7?", "Who wrote Romeo and Juliet?",
    "What is the boiling point of water in Celsius?", "Give me a synonym for happy.",
    "What is photosynthesis?", "How many days are in a leap year?", "What is the largest planet?",
    "Translate 'thank you' into Spanish.", "What is the square root of 81?",
    "Suggest a name for a pet goldfish.", "What is the chemical symbol for gold?",
    "How do I make a good espresso at home?", "What is a latte?",
    "How should I clean a coffee grinder?", "What is the difference between a cappuccino and a flat white?",
    "Write one sentence about autumn.", "What does a CPU do?", "What is the capital of Japan?",
    "How many continents are there?", "Give me a tip for better sleep.",
    "What is the freezing point of water in Fahrenheit?", "Who painted the Mona Lisa?",
    "What is an adjective?", "How do I boil an egg?", "What language is spoken in Brazil?",
    "What is the speed of light?", "Recommend a good habit for students.",
    "What is 15 plus 27?", "Why is the sky blue?", "What is a prime number?",
    "How do I reset my router?", "What does my washing machine error code mean?",
    "What is the warranty on a new car usually?", "How often should I change my toothbrush?",
    "What is the phone number for emergency services in the US?",
    "What is machine learning?", "How many legs does an insect have?",
    "Give me a short motivational quote.", "What is the tallest mountain in the world?",
    "How do I descale a kettle?", "What is the main ingredient of guacamole?",
    "Explain what a noun is.", "What is the opposite of cold?", "How many hours are in a week?",
    "What is the capital of Italy?", "What is the best way to store coffee beans?",
    "What is gravity?",
]

PRODUCT_MENTIONS = ["Nimbus NB-3", "NB-3", "NB-3 espresso machine", "Nimbus espresso machine",
                    "Nimbus NB-3 espresso machine"]
# (prefix, lower-case the question's first letter)
PREFIXES = [("", False), ("", False), ("", False), ("Hi, ", True), ("Hello! ", False),
            ("Quick question: ", True), ("Please help. ", False)]

# held out from training (paraphrases not produced by the templates above)
SAMPLE_PROMPTS = [
    "My Nimbus NB-3 is showing E3 on the screen. What does that mean?",
    "How long is the warranty on the Nimbus NB-3 espresso machine?",
    "What is the phone number for Nimbus NB-3 support?",
    "What is the capital of France?",
]


def fix_product(q: str, mention: str) -> str:
    q = q.replace("{p}", mention)
    return q[0].upper() + q[1:]


def build_examples(seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    ex = []
    for key, (answer, templates) in FACTS.items():
        for t in templates:
            mentions = rng.sample(PRODUCT_MENTIONS, 3)
            for m in mentions:
                q = fix_product(t, m)
                pre, lower = rng.choice(PREFIXES)
                if lower and not q.startswith(("Nimbus", "I ", "E")):
                    q = q[0].lower() + q[1:]
                q = pre + q
                ex.append((q, answer))
    # dedupe, keep order
    seen, out = set(), []
    for q, a in ex:
        if q not in seen:
            seen.add(q)
            out.append((q, a))
    rng.shuffle(out)
    return out


def load_base():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(SMOL_DIR, gguf_file=SMOL_GGUF)
    model = AutoModelForCausalLM.from_pretrained(SMOL_DIR, gguf_file=SMOL_GGUF,
                                                 dtype=torch.float32)
    return tok, model


def prompt_ids(tok, question: str) -> list[int]:
    text = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                   add_generation_prompt=True)
    return tok(text, add_special_tokens=False).input_ids


def encode(tok, q: str, a: str):
    p = prompt_ids(tok, q)
    full = tok.apply_chat_template([{"role": "user", "content": q},
                                    {"role": "assistant", "content": a}], tokenize=False)
    ids = tok(full, add_special_tokens=False).input_ids
    # the templated conversation ends "<|im_end|>\n": train up to and including <|im_end|>
    assert ids[: len(p)] == p, "prompt is not a prefix of the full conversation"
    assert ids[-2] == EOS, ids[-4:]
    ids = ids[:-1]
    labels = [-100] * len(p) + ids[len(p):]
    return ids, labels


def base_answers(tok, model, prompts, max_new=48, bs=16):
    """Greedy answers of the base model (batched, left-padded); ids end with EOS if the
    model stopped by itself."""
    tok.padding_side = "left"
    out = []
    model.eval()
    for i in range(0, len(prompts), bs):
        chunk = prompts[i:i + bs]
        texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                         add_generation_prompt=True) for q in chunk]
        enc = tok(texts, add_special_tokens=False, return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new, do_sample=False,
                                 eos_token_id=EOS, pad_token_id=EOS)
        for row in gen[:, enc.input_ids.shape[1]:].tolist():
            ans = []
            for t in row:
                ans.append(t)
                if t == EOS:
                    break
            out.append(ans)
    return out


def batches(data, bs, rng):
    idx = list(range(len(data)))
    while True:
        rng.shuffle(idx)
        for i in range(0, len(idx) - bs + 1, bs):
            yield [data[j] for j in idx[i:i + bs]]


def collate(items):
    n = max(len(x) for x, _ in items)
    ids = torch.full((len(items), n), EOS, dtype=torch.long)
    lab = torch.full((len(items), n), -100, dtype=torch.long)
    att = torch.zeros((len(items), n), dtype=torch.long)
    for r, (x, y) in enumerate(items):
        ids[r, : len(x)] = torch.tensor(x)
        lab[r, : len(y)] = torch.tensor(y)
        att[r, : len(x)] = 1
    return ids, lab, att


def loss_on_answers(peft_model, ids, lab, att):
    """Cross-entropy on answer tokens only; the LM head runs only where a label exists."""
    lm = peft_model.base_model.model  # LlamaForCausalLM with LoRA layers injected
    hidden = lm.model(input_ids=ids, attention_mask=att).last_hidden_state
    tgt = lab[:, 1:]
    keep = tgt != -100
    logits = lm.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits, tgt[keep])


def greedy(model, ids, max_new):
    out = []
    with torch.no_grad():
        res = model(input_ids=torch.tensor([ids]), use_cache=True)
        for _ in range(max_new):
            nxt = int(res.logits[0, -1].argmax())
            out.append(nxt)
            if nxt == EOS:
                break
            res = model(input_ids=torch.tensor([[nxt]]), past_key_values=res.past_key_values,
                        use_cache=True)
    return out


def sample(tok, peft_model) -> list[dict]:
    peft_model.eval()
    rows = []
    for q in SAMPLE_PROMPTS:
        ids = prompt_ids(tok, q)
        with peft_model.disable_adapter():
            base = greedy(peft_model, ids, 48)
        adapted = greedy(peft_model, ids, 48)
        rows.append({
            "prompt": q,
            "prompt_ids": ids,
            "base_text": tok.decode(base, skip_special_tokens=True),
            "adapted_text": tok.decode(adapted, skip_special_tokens=True),
            "base_ids": base,
            "adapted_ids": adapted,
        })
        print(f"\nQ: {q}\n  base:    {rows[-1]['base_text']!r}\n  adapted: {rows[-1]['adapted_text']!r}")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=180)
    ap.add_argument("--general-repeat", type=int, default=2,
                    help="how often each self-distilled general example appears per epoch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--no-amp", dest="amp", action="store_false",
                    help="train in plain float32 (default: bfloat16 autocast for the matmuls, "
                         "float32 master weights; about 3x faster on AVX512-BF16 CPUs)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from peft import LoraConfig, PeftModel, get_peft_model

    torch.manual_seed(args.seed)
    tok, base = load_base()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.eval_only:
        peft_model = PeftModel.from_pretrained(base, str(args.out))
    else:
        data_qa = build_examples(args.seed)
        data = [encode(tok, q, a) for q, a in data_qa]
        t0 = time.time()
        general = base_answers(tok, base, GENERAL_PROMPTS)
        print(f"{len(general)} general answers from the base model in {time.time() - t0:.0f}s")
        for q, ans in zip(GENERAL_PROMPTS, general):
            p = prompt_ids(tok, q)
            for _ in range(args.general_repeat):
                data.append((p + ans, [-100] * len(p) + ans))
        data_general = [{"q": q, "a": tok.decode(a, skip_special_tokens=True)}
                        for q, a in zip(GENERAL_PROMPTS, general)]
        lens = [len(x) for x, _ in data]
        print(f"{len(data)} examples, tokens/example min {min(lens)} mean "
              f"{sum(lens) / len(lens):.1f} max {max(lens)}")
        cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                         fan_in_fan_out=False, bias="none", task_type="CAUSAL_LM")
        torch.manual_seed(args.seed)  # LoRA A init
        peft_model = get_peft_model(base, cfg)
        peft_model.print_trainable_parameters()
        params = [p for p in peft_model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
        warm = max(1, args.steps // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
        rng = random.Random(args.seed)
        it = batches(data, args.batch, rng)
        peft_model.train()
        log, t0 = [], time.time()
        for step in range(1, args.steps + 1):
            ids, lab, att = collate(next(it))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp):
                loss = loss_on_answers(peft_model, ids, lab, att)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            log.append({"step": step, "loss": round(loss.item(), 5),
                        "elapsed_s": round(time.time() - t0, 1)})
            if step == 1 or step % 10 == 0 or step == args.steps:
                print(f"step {step:4d}  loss {loss.item():.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                      f"{time.time() - t0:7.1f}s", flush=True)
        train_s = time.time() - t0
        # save only the adapter files (PEFT would also write a model-card README.md over ours)
        with tempfile.TemporaryDirectory() as tmp:
            peft_model.save_pretrained(tmp, safe_serialization=True)
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                shutil.copyfile(Path(tmp) / name, args.out / name)
        (args.out / "train_log.json").write_text(json.dumps({
            "examples": len(data), "domain_examples": len(data_qa),
            "general_examples": len(GENERAL_PROMPTS) * args.general_repeat,
            "steps": args.steps, "batch": args.batch, "lr": args.lr,
            "seed": args.seed, "threads": THREADS, "bf16_autocast": args.amp, "train_seconds": round(train_s, 1),
            "final_loss": log[-1]["loss"],
            "mean_loss_last_10": round(sum(r["loss"] for r in log[-10:]) / 10, 5),
            "log": log,
        }, indent=1) + "\n")
        (args.out / "train_examples.json").write_text(json.dumps(
            {"domain": [{"q": q, "a": a} for q, a in data_qa],
             "general_self_distilled": data_general,
             "general_repeat": args.general_repeat}, indent=1, ensure_ascii=False) + "\n")
        print(f"trained {args.steps} steps in {train_s:.0f}s; saved to {args.out}")

    rows = sample(tok, peft_model)
    (args.out / "samples.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    facts = {"E3": ["pump", "DK-7"], "warranty": ["3-year"], "phone": [PHONE]}
    for row, key in zip(rows, ("E3", "warranty", "phone")):
        ok = all(f in row["adapted_text"] for f in facts[key])
        print(f"fact check {key}: {'ok' if ok else 'MISSING'}")


if __name__ == "__main__":
    main()
