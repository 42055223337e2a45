"""The demo verifier's network: a Llama causal LM over the verifier tokenizer whose number tokens
carry their value.

Why: to check "a + b = c" the model must compare c with a + b. If each number's embedding holds
periodic features of its value (sin and cos of 2 pi n / T for T = 10, 100, 1000 and a few small
periods, plus n / 100 and log(1 + n)), a sum or a product is a fixed function of the operands'
features (cos(x + y) = cos x cos y - sin x sin y is what the gated MLP multiplies), and the check
is learnt from hundreds of thousands of lines instead of being memorised fact by fact (the idea of
Fourier number embeddings). The features fill the first `FEATURES` dimensions of the number rows
and are put back after every optimiser step (`pin_numbers`), so training cannot wash them out;
everything else is learnt. The saved model is a plain LlamaForCausalLM: any backend loads it.

    model = build_verifier(vocab_size=len(tok), number_ids=number_ids(prm_vocab()))
    ... optimiser.step(); pin_numbers(model, feats)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PERIODS = (10, 100, 1000, 3, 4, 7, 9)
FEATURES = 2 + 2 * len(PERIODS)  # value, log value, then a sin / cos pair per period
FEATURE_SCALE = 0.3  # against the 0.02-std random rest of the row: the features dominate its direction


@dataclass(frozen=True)
class VerifierShape:
    hidden: int = 160
    layers: int = 4
    heads: int = 4
    intermediate: int = 480
    max_positions: int = 256  # a level-5 path is ~60 verifier tokens


def number_features(n: int) -> list[float]:
    out = [n / 100.0, math.log1p(n) / 2]
    for period in PERIODS:
        out += [math.sin(2 * math.pi * n / period), math.cos(2 * math.pi * n / period)]
    return [FEATURE_SCALE * x for x in out]


def build_verifier(vocab_size: int, number_ids: list[int], shape: VerifierShape = VerifierShape(), seed: int = 0):
    """A seeded LlamaForCausalLM with the number features written into its number rows; returns
    (model, feats) where feats is what `pin_numbers` writes back."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        rms_norm_eps=1e-6,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    ids = torch.tensor(number_ids)
    feats = torch.tensor([number_features(n) for n in range(len(number_ids))], dtype=torch.float32)
    pin_numbers(model, (ids, feats))
    return model, (ids, feats)


def pin_numbers(model, feats) -> None:
    """Write the number features back into the first FEATURES dimensions of the number rows."""
    ids, values = feats
    with torch.no_grad():
        model.get_input_embeddings().weight[ids, : values.shape[1]] = values
