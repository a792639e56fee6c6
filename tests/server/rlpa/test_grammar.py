"""The output grammar, checked by llama.cpp's own grammar sampler: what it lets a model write.

Every token of a text is offered to the sampler the embedded backend decodes with; a text is
admitted when no token is refused and the text may end there (end-of-generation is allowed).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterator
from typing import Any

import pytest

from server import rlpa
from server.backends import default_gguf_path

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def vocab_model() -> Iterator[Any]:
    model = llama_cpp.Llama(default_gguf_path(), vocab_only=True, verbose=False)
    yield model
    model.close()


def _allowed(sampler: Any, token: int) -> bool:
    data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
    candidates = llama_cpp.llama_token_data_array(data, 1, -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
    return not math.isinf(data[0].logit)


def admits(model: Any, text: str, grammar: str = rlpa.FORMAT_GBNF) -> bool:
    vocab = model._model.vocab
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    assert sampler, "llama.cpp could not parse the grammar"
    try:
        for token in model.tokenize(text.encode(), add_bos=False, special=False):
            if not _allowed(sampler, token):
                return False
            llama_cpp.llama_sampler_accept(sampler, token)
        return _allowed(sampler, model.token_eos())
    finally:
        llama_cpp.llama_sampler_free(sampler)


def output(*traits: str, reply: str = "Sure, here is an idea.") -> str:
    return rlpa.render_output(list(traits), reply)


@pytest.mark.parametrize(
    "traits",
    [
        (),
        ("is a nurse in Seattle", "loves hiking"),
        ("forget: lives in Bristol", "lives in Lisbon"),
        ("has a 6-year-old daughter who loves dinosaurs",),
        ("is allergic to peanuts.",),  # a trait may end with a full stop
        ("runs 3.5 miles before 6 a.m. most days",),
        ("earns approx. 40k a year",),
        ("is vegan, so avoids dairy and eggs",),
    ],
)
def test_the_grammar_admits_well_formed_outputs(vocab_model: Any, traits: tuple[str, ...]) -> None:
    assert admits(vocab_model, output(*traits))


@pytest.mark.parametrize(
    "trait",
    [
        # What a small model writes when a trait runs on into its reply: stored, it is not memory.
        "works nights at the airport, so they get a good rest. What's your home like",
        "is in their early twenties. Any health issues I should keep in mind?",
        "loves hiking! That sounds like fun",
        "is vegan; I can suggest recipes",
        "has a cat?",
    ],
)
def test_a_trait_line_is_one_statement(vocab_model: Any, trait: str) -> None:
    assert not admits(vocab_model, output(trait))


def test_the_reply_is_free_text(vocab_model: Any) -> None:
    reply = "Try a short hike! Or a film? Either works.\n\nEnjoy your evening."
    assert admits(vocab_model, output("loves hiking", reply=reply))


@pytest.mark.parametrize(
    "reply",
    [
        "Use Vec<u8> when a < b, and a <= b otherwise.",
        "<b>Bold</b> and <i>slanted</i>:\n<ul>\n  <li>one</li>\n</ul>",
        "<html>",
        "Echo: <profile>\n- not a trait\n</profile> and <response>",
        "a <</resp </RESPONSe </respond> x",
        "ends with </respons",
    ],
)
def test_a_reply_may_hold_any_text_with_angle_brackets(vocab_model: Any, reply: str) -> None:
    assert admits(vocab_model, output("likes Rust", reply=reply))


@pytest.mark.parametrize("end", ["</response>", "</RESPONSE>", "</Response>"])
def test_the_reply_ends_only_at_its_end_tag(vocab_model: Any, end: str) -> None:
    # The parser ends the reply at the tag in any case: the model cannot write one inside it.
    assert not admits(vocab_model, output(reply=f"Before {end} after"))
    assert not admits(vocab_model, output(reply=f"{end} after"))


def test_text_outside_the_format_is_refused(vocab_model: Any) -> None:
    assert not admits(vocab_model, "Sure, here is an idea.")
    assert not admits(vocab_model, output("likes jazz") + " trailing")


# Traits in the user's own words (RLPA_TRAIT_WORDS=said): what the user said in the conversation.
SAID = [
    "Morning! I'm a paramedic on night shifts out of Dundee, what could I batch cook?",
    "I love hiking and my sister, Maya, is vegan.",
]
SAID_GRAMMAR = rlpa.output_grammar(said=SAID, stored=["lives in Lisbon", "has a cat"])


@pytest.mark.parametrize(
    "traits",
    [
        (),
        ("is a paramedic on night shifts", "is out of Dundee"),
        ("I'm a paramedic",),  # the user's words as written
        ("loves hiking", "their sister, Maya, is vegan"),  # "love" -> "loves"
        ("forget: lives in Lisbon", "works night shifts"),
    ],
)
def test_said_traits_use_the_users_words(vocab_model: Any, traits: tuple[str, ...]) -> None:
    assert admits(vocab_model, output(*traits), SAID_GRAMMAR)


@pytest.mark.parametrize(
    "trait",
    [
        "is in Denver",  # nobody said Denver
        "is based in Dundee",  # nor "based"
        "forget: lives in Porto",  # a forget line names a stored trait exactly
        "forget: lives",
        "is a paramedic on night shifts out of Dundee and",  # ends on a connector
        "is a paramedic on night shifts out of Dundee, what could",  # runs on into the request
        "is a",  # no word of the user's that carries a fact
        "morning",
    ],
)
def test_said_traits_hold_nothing_the_user_did_not_say(vocab_model: Any, trait: str) -> None:
    assert not admits(vocab_model, output(trait), SAID_GRAMMAR)


def test_small_talk_alone_leaves_the_block_empty(vocab_model: Any) -> None:
    grammar = rlpa.output_grammar(said=["hey", "thanks, cheers!"])
    assert admits(vocab_model, output(reply="Hi!"), grammar)
    for trait in ("hey", "heys", "thanks", "is a cheers"):
        assert not admits(vocab_model, output(trait, reply="Hi!"), grammar)
    # A stored trait can still be forgotten.
    forgetting = rlpa.output_grammar(said=["hey, forget my cat"], stored=["has a cat"])
    assert admits(vocab_model, output("forget: has a cat"), forgetting)


def test_said_words_keep_the_users_spelling_and_a_third_person_form() -> None:
    words = rlpa.said_words(["I study in São Paulo, and I'm tired!", "Bold: <b>law</b>"])
    assert {"study", "studies", "São", "Paulo", "tired", "I'm", "i'm"} <= set(words)
    assert "Paulo," not in words and "tired!" not in words  # punctuation around a word is cut
    assert not any("<" in w for w in words)  # never a tag in a trait
