"""The demo world's character-level tokenizer (built with `tokenizers`, saved as a
transformers PreTrainedTokenizerFast).

Why character level: arithmetic chains need every digit as its own token, and a fixed alphabet makes
the tokenizer deterministic without training. The PRM strings " ки" (step tag), "+" and "-" (good /
bad labels) are single tokens, as the `step_tag` PRM adapter requires. Encoding adds <s> in front
(post-processor), so a backend that tokenizes the plain prompt sees exactly what training saw.

    from scripts.train_demo.tokenizer import build_tokenizer
    tok = build_tokenizer()            # PreTrainedTokenizerFast
    tok.save_pretrained("some/dir")    # AutoTokenizer.from_pretrained("some/dir") works
"""

from __future__ import annotations

import string

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
STEP_TAG = " ки"
GOOD = "+"
BAD = "-"


def alphabet() -> list[str]:
    """Every character the demo texts use (prompts, solutions, PRM inputs), in a fixed order."""
    chars = string.digits + string.ascii_letters + " \n.,:;?!+-*/=()%$'\""
    return list(dict.fromkeys(chars))


def build_tokenizer():
    """A fresh character-level PreTrainedTokenizerFast (no chat template, plain prompts)."""
    from tokenizers import Tokenizer, decoders, models

    vocab = {tok: i for i, tok in enumerate(SPECIALS + alphabet())}
    # BPE with no merges and no pre-tokenizer = one token per character (spaces included)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    return finish(tok, vocab, "demo tokenizer", padding_side="left")  # batched generation continues each row's end


def finish(tok, vocab: dict[str, int], what: str, **kwargs):
    """What both demo tokenizers share: the special tokens, the step tag as one added token, <s> in
    front of every encoding, the PreTrainedTokenizerFast wrapper, and the check that the PRM strings
    (tag, good, bad) are single tokens. `kwargs` go to PreTrainedTokenizerFast."""
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    tok.add_tokens([AddedToken(STEP_TAG, normalized=False, special=False)])
    bos = vocab["<s>"]
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        **kwargs,
    )
    for s in (STEP_TAG, GOOD, BAD):
        ids = fast.encode(s, add_special_tokens=False)
        if len(ids) != 1:
            raise RuntimeError(f"{what}: {s!r} is {len(ids)} tokens, expected 1")
    return fast
