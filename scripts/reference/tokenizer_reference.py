#!/usr/bin/env python3
"""Reference token ids and chat prompts for SmolLM2-135M-Instruct (Q4_1 GGUF), for
engine/tests/model_files.rs.

Needs transformers, tokenizers and gguf. Usage:
    python scripts/reference/tokenizer_reference.py GGUF_FILE engine/tests/data/smollm2-tokenizer.json

transformers builds a tokenizer from the GGUF metadata, but for `tokenizer.ggml.pre = smollm`
it uses plain GPT-2 pre-tokenization. SmolLM2's own tokenizer.json, and llama.cpp for
`smollm`, first split every digit alone (Digits(individual_digits=True), then ByteLevel
with GPT-2's regex). The two differ only where whitespace runs before a digit ("x  1":
[x, Ġ, Ġ, 1] against [x, ĠĠ, 1]). `ids` are from transformers' GGUF tokenizer with the
pre-tokenizer set to SmolLM2's; `transformers_gguf_ids` records transformers' own result
where it differs. Chat prompts are transformers' `apply_chat_template` with the template
in the file.
"""

import json
import os
import sys

from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoTokenizer

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "naïve café — 東京タワー 🚀🤖👍🏽",
    "12345 and 3.14159, on 2024-01-01",
    "x  12345\n  7",
    "def f(x):\n    return x * 2  # double\n",
    "a   b\n\n\nc\t\td    \n",
    "<|im_start|>user",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "don't I'll WE'VE",
    " leading space",
    "",
]

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one, with ünïcode 🚀?"},
    ],
]


def main():
    gguf_path, out_path = sys.argv[1], sys.argv[2]
    hf = AutoTokenizer.from_pretrained(
        os.path.dirname(os.path.abspath(gguf_path)), gguf_file=os.path.basename(gguf_path)
    )
    smollm = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    smollm.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    cases = []
    for text in TEXTS:
        ids = smollm.encode(text, add_special_tokens=False).ids
        case = {"text": text, "ids": ids}
        theirs = hf.encode(text)
        if theirs != ids:
            case["transformers_gguf_ids"] = theirs
        cases.append(case)
    chats = [
        {
            "messages": messages,
            "prompt": hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
        }
        for messages in CHATS
    ]
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"encode": cases, "chat": chats}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
