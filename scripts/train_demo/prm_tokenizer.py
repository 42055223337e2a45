"""The demo verifier's own tokenizer: every number 0-999 and every word of the arith texts is one token.

Why: a verifier checks "a op b = c" by comparing c with what a and b give. With one token per
character (the policies' tokenizer) the digits of a, b and c sit at positions that move with every
number's length, and a small model must learn carrying across them; trained that way the demo PRM
ranked slips in additions and subtractions barely above chance. With one token per number a line
is always the same five tokens, so attention finds a, b and c at fixed offsets, and each number's
embedding can carry its value (scripts/train_demo/verifier.py). A PRM with a tokenizer of its own
is the usual case (Math-Shepherd's Mistral PRM scores Llama policies); the `step_tag` adapter
tokenizes the path text with the PRM's tokenizer. The strings " ки" (tag), "+" and "-" (labels)
are single tokens. Spaces separate tokens and are dropped; "\\n" is a token; anything else unknown
(a longer number, a stray word) is <unk>.

    tok = build_prm_tokenizer()
    tok.tokenize("17 + 25 = 42 ки")   # ['17', '+', '25', '=', '42', ' ки']
"""

from __future__ import annotations

from scripts.train_demo.tokenizer import SPECIALS, finish

NUMBERS = 1000  # 0..999: every operand and result of arith (results <= 199) and most slips
WORDS = ("Start", "with", "Add", "Subtract", "Multiply", "Divide", "by", "What", "is", "the", "result", "The", "answer")
PUNCTUATION = tuple(".,:;?!+-*/=()%$'\"\n")
PIECES = r"\d+|[A-Za-z]+|\n|[^\sA-Za-z\d]"  # a number, a word, a newline or one other character


def prm_vocab() -> dict[str, int]:
    pieces = SPECIALS + [str(n) for n in range(NUMBERS)] + list(WORDS) + list(PUNCTUATION)
    return {t: i for i, t in enumerate(pieces)}


def number_ids(vocab: dict[str, int]) -> list[int]:
    """The token id of each number 0..NUMBERS-1, in order."""
    return [vocab[str(n)] for n in range(NUMBERS)]


def build_prm_tokenizer():
    """A fresh word-level PreTrainedTokenizerFast for the verifier (encoding adds <s> in front)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = prm_vocab()
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(" +"), "removed"), pre_tokenizers.Split(Regex(PIECES), "isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins tokens with spaces
    return finish(tok, vocab, "verifier tokenizer")
