"""Tiny random-weight models and locally built tokenizers for tests (no model hub).

`build_tokenizer(dir)` trains a small byte-level BPE on GSM8K questions and arithmetic text, with the
special strings the PRM families need as single tokens (" ки", "<extra_0>") and a ChatML template.
`build_model(dir, arch)` saves a seeded random Llama or Qwen2 (head_dim 64, as vLLM's CPU kernels
require) beside that tokenizer, so `from_pretrained(dir)` works like a hub model.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<extra_0>"]


def _corpus(data_dir: Path) -> list[str]:
    lines = []
    p = data_dir / "gsm8k" / "test.jsonl"
    if p.exists():
        for i, row in enumerate(p.read_text().splitlines()[:300]):
            r = json.loads(row)
            lines += [r["question"], r["answer"]]
    lines += [f"Start with {a}. Add {b}. The answer is {a + b}." for a in range(0, 100, 7) for b in range(0, 100, 11)]
    lines += ["Question: Answer: Step 1: The answer is \\boxed{} Yes No + - ки"]
    return lines


def build_tokenizer(out: Path, data_dir: Path, vocab_size: int = 600):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(data_dir), trainer)
    tok.add_tokens([AddedToken(" ки", normalized=False, special=False)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>", "<extra_0>"],
    )
    fast.chat_template = CHATML
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return fast


def build_model(
    out: Path,
    tok_dir: Path,
    arch: str = "llama",
    hidden: int = 128,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    intermediate: int = 256,
    seed: int = 0,
    chat: bool = True,
    num_labels: int | None = None,
):
    """A seeded random model saved with the tokenizer from `tok_dir` (chat template removed when
    chat=False, to exercise the plain-prompt path)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, Qwen2Config

    tok = AutoTokenizer.from_pretrained(tok_dir)
    if not chat:
        tok.chat_template = None
    Cfg = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    cfg = Cfg(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        head_dim=hidden // heads,
    )
    torch.manual_seed(seed)
    if num_labels:
        from transformers import AutoModelForTokenClassification

        cfg.num_labels = num_labels
        model = AutoModelForTokenClassification.from_config(cfg)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # larger logits than the default init, so sampling is not uniform noise
        model.get_input_embeddings().weight.mul_(2)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
