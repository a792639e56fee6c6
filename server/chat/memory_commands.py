"""What a user tells the memory itself, done by the gateway rather than left to the model.

A person asks a memory what it holds ("What do you remember about me?"), to forget everything
("Forget everything about me"), to forget one thing ("Please forget that I have kids, that's
private") or not to keep what they are about to say ("Don't save this: I failed first year").
Left to a small model these fail as the issue that led here showed: "forget that I have kids"
was answered "Noted, you have two kids" and nothing was forgotten. A request about privacy is
not a guess to sample, so the gateway recognises these messages and acts on them itself:

- `recall`: the reply lists the stored profile, as it is stored; nothing changes.
- `forget_all`: every stored trait is removed (a new version with none, source `user`); the
  history of versions stays for the operator, as after `DELETE /v1/me/profile/traits`; the
  user's erasure (`DELETE /v1/me`) is what removes it.
- `forget`: the stored traits the message names are removed: those sharing the most specific
  words with what follows the command in its clause ("drop what I told you about Maja" -> the
  trait naming Maja), else with what the message said before it ("I shouldn't have said the
  wine thing. Can you wipe it?"), else with the user's previous message ("Strike that
  figure"). A word counts less the more stored traits hold it, and one that more than two hold
  removes nothing alone. What the message says itself is still stored ("Scratch that, it's now
  the 2nd of September"), unless it is only the command.
- `dont_store`: the turn stores nothing new, whatever the model's block says (its `forget:`
  lines still apply); a message that is only the request ("I'd rather that didn't end up
  stored") also removes what it names, as `forget` does.

A message that is only a command (no question besides the command, and at most four words
beside the command's own: "that's private", "Solicitor's orders") is answered by the gateway,
naming what it removed; one that says or asks more ("don't store this but I failed first year,
how do I revise?") is answered by the model, with the stored profile changed as above.

Recognition is by patterns, kept narrow: "I don't remember the film's name" is the user's own
memory, not a request, and "I always forget to water the plants" is a fact. A command the
patterns miss is left to the model, as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from server import rlpa

Kind = Literal["recall", "forget_all", "forget", "dont_store"]

# Openers a command may come after: "hey,", "oh, actually -", "on second thought,".
_LEAD = (
    r"(?:(?:hey|hi|hello|ok(?:ay)?|so|and|also|oh|um+|hmm+|actually|wait|sorry|right|"
    r"on\s+(?:second\s+thought|reflection)|one\s+more\s+thing|quick\s+question)[\s,.!:;-]*)*"
)
_END = r"[\s,.!?]*(?:please|pls|thanks|thank\s+you|cheers)?[\s.!?]*$"
_ASK = r"(?:(?:can|could|would|will)\s+you\s+)?(?:please\s+)?"

_RECALL = re.compile(
    _LEAD
    + _ASK
    + r"""(?:
        what\s+(?:else\s+)?(?:do|did|have|can)\s+you\s+
            (?:remember|recall|know|kept|got|stored|saved|learn(?:ed|t)|have\s+(?:stored|saved))
            (?:\s+so\s+far)?\s+(?:about|on|of)\s+me
      | what(?:'s|\s+is|\s+do\s+you\s+have)\s+in\s+(?:your|my)\s+(?:memory|profile)
            (?:\s+(?:about|on|of)\s+me)?
      | (?:show|tell)\s+me\s+(?:
            what\s+you\s+(?:remember|know|have\s+(?:stored|saved|on\s+file))\s+about\s+me
          | (?:my|your)\s+(?:memory|memories|profile))
      | do\s+you\s+remember\s+(?:anything\s+)?about\s+me
    )(?:\s+so\s+far)?"""
    + _END,
    re.I | re.X,
)
_FORGET_ALL = re.compile(
    _LEAD
    + _ASK
    + r"""(?:
        forget\s+(?:everything|all)
            (?:\s+(?:you\s+(?:know|remember|have\s+(?:stored|saved)|learn(?:ed|t))))?
            (?:\s+(?:about|of)\s+me)
      | forget\s+(?:everything|all)\s+you\s+(?:know|remember)
      | forget\s+(?:about\s+)?me
      | (?:clear|wipe|erase|delete|reset|empty)\s+(?:all\s+(?:of\s+)?)?(?:my|your)\s+
            (?:memory|memories|profile|data)(?:\s+(?:of|about|on)\s+me)?
      | (?:clear|wipe|erase|delete|reset)\s+(?:everything|all)\s+you\s+
            (?:know|remember|have\s+(?:stored|saved))\s+about\s+me
    )"""
    + _END,
    re.I | re.X,
)
# "Forget that", "drop what I told you about Maja", "take out the part about the custody
# thing", "strike that figure", "take that back": an imperative, so at a sentence's start (after
# an opener), after "please" or "can you", never after "don't" or a subject ("I forget").
_FORGET = re.compile(
    r"(?:^|[.!?;:,]\s*|\s-+\s*|\b(?:please|pls|just|you\s+can|(?:can|could|would|will)\s+you"
    r"(?:\s+please)?)\s+)"
    + _LEAD
    + r"""(?:
        (?:forget|drop|wipe|delete|erase|remove|scrap|scratch|strike|unsave)\s+
            (?:that|this|it|those|these|what|the\s+(?:part|bit|thing|stuff|line|figure|number)|
               about|I\s+(?:said|told|mentioned)|anything|my|all\s+(?:of\s+)?that)\b
      | take\s+(?:that|this|it)\s+(?:back|out)
      | take\s+out\s+(?:the|that|what|my)\b
    )""",
    re.I | re.X,
)
# "Don't store this", "not something to keep", "please leave that out of whatever you save",
# "I'd rather that didn't end up stored", "context, but not for saving". Not after a subject:
# "I don't remember its name" and "we never keep receipts" are about the user.
_DONT_STORE = re.compile(
    r"""(?<!\bi\s)(?<!\bwe\s)(?<!\bthey\s)(?<!\bhe\s)(?<!\bshe\s)
    (?:
        \b(?:do\s*n[o']?t|never|please\s+don'?t)\s+(?:\w+\s+){0,2}?
            (?:store|save|keep|remember|record|write\s+(?:it|this|that)?\s*down|hold\s+on\s+to|log)\b
      | \bnot\s+(?:something\s+)?(?:to\s+|for\s+)?
            (?:keep|keeping|save|saving|store|storing|remember)\b
      | \bcan\s+you\s+not\s+(?:hold\s+on\s+to|keep|store|save|remember)\b
      | \bleave\s+(?:that|this|it)\s+out\b
      | \boff\s+the\s+record\b
      | \brather\s+(?:that|this|it)\s+(?:didn'?t|did\s+not|wasn'?t|was\s+not)\s+(?:end\s+up\s+)?
            (?:get\s+)?(?:stored|saved|kept|remembered)\b
      | \bfor\s+(?:right\s+)?now\s+only\b
      | \bdo\s+not\s+need\s+to\s+(?:remember|keep|store|save)\b
      | \bdon'?t\s+want\s+(?:it|that|this)\s+(?:kept|stored|saved|written\s+down)\b
    )""",
    re.I | re.X,
)
# Words that say how to forget, not what: never the reason a trait is removed.
_COMMAND_WORDS = frozenset(
    """
    forget forgot drop wipe delete erase remove scrap scratch strike unsave take back out store
    stored storing save saved saving keep kept keeping remember remembered record recorded write
    written down hold log logged part bit thing things stuff line told said mentioned anything
    anywhere everything private please pls actually rather end ended want wanted need needed
    know knowing fine rest okay thanks cheers whatever sorry second thought reflection memory
    profile context only now right just really also something nothing nobody anyone somebody
    """.split()
)
_STOP = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing don't down during each few for from
    further had has have having he he'd he's her here hers herself him himself his how i i'd
    i'll i'm i've if in into is it it's its itself let's me more most my myself no nor not of
    off on once or other ought our ours ourselves over own same she she's should so some such
    than that that's the their theirs them themselves then there there's these they they'd
    they're this those through to too under until up very was we we're were what when where
    which while who whom why with would you you're your yours yourself yourselves
    dont im ive id youre thats gets get got would've should've shouldn't wouldn't isn't wasn't
    one ones lot bit yes no yeah ok okay oh hmm um well said say says tell told whatever even
    ever any more much many
    """.split()
)
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ0-9][A-Za-zÀ-ÖØ-öø-ÿ0-9'-]*")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_CLAUSE_END = re.compile(r"[,.;:!?]|\s-+\s")
# A message with at most this many words after the command's clause, the command's own aside
# ("that's private", "Solicitor's orders"), can be only the command (_only).
_ONLY_WORDS = 2
_BEFORE_WORDS = 3


@dataclass(frozen=True)
class Command:
    """A memory command recognised in the user's latest message."""

    kind: Kind
    message: str
    only: bool  # the message is only the command: the gateway answers it, not the model
    # What the command is about, most specific first: the words after the command in its
    # clause ("about Maja"), then the message's words before it ("the wine thing ... wipe it").
    # With neither, it is about the user's previous message ("Strike that figure").
    about: tuple[str, ...] = ()
    before: tuple[str, ...] = ()

    @property
    def keeps_nothing_new(self) -> bool:
        """The turn adds no trait: the message asks not to keep what it says, or is only the
        command. ("Scratch that, it's now the 2nd of September" keeps the new date.)"""
        said = " ".join(self.message.replace("\u2019", "'").split())
        return self.kind != "recall" and (self.only or bool(_DONT_STORE.search(said)))


def recognise(message: str) -> Command | None:
    """The memory command `message` gives, if any."""
    text = " ".join(message.replace("\u2019", "'").split())
    if not text:
        return None
    if _RECALL.match(text):
        return Command("recall", message, only=True)
    if _FORGET_ALL.match(text):
        return Command("forget_all", message, only=True)
    cue = _FORGET.search(text)
    kind: Kind = "forget"
    if cue is None:
        cue = _DONT_STORE.search(text)
        kind = "dont_store"
    if cue is None:
        return None
    # The clause after the command word: up to a comma, a dash or the sentence's end.
    after = text[cue.end() :]
    end = _CLAUSE_END.search(after)
    clause, rest = (after[: end.start()], after[end.end() :]) if end else (after, "")
    before = tuple(_content_words(text[: cue.start()]))
    about = tuple(_content_words(clause))
    return Command(
        kind,
        message,
        only=_only(text, before, rest, forget_about=kind == "forget" and bool(about and before)),
        about=about,
        before=before,
    )


def _only(text: str, before: Sequence[str], rest: str, *, forget_about: bool) -> bool:
    """Whether a message is only its command: it asks nothing besides the command, what comes
    before the command names what it is about in a few words ("the caution - I'd rather that
    didn't end up stored"), not a new story, and what follows the command's clause is its
    reason in a few words ("that's private", "Solicitor's
    orders"), with no value in it (a digit, or a capitalised word inside a sentence: "scratch
    that, we live in Porto now" carries the new value, so the model answers and stores it).
    A forget that names what it is about after saying something else ("We moved to Porto, so
    forget what I said about Lisbon") is not only a command either."""
    if forget_about or len(before) > _BEFORE_WORDS:
        return False
    for sentence in _SENTENCE.findall(text):
        if "?" in sentence and not (_FORGET.search(sentence) or _DONT_STORE.search(sentence)):
            return False
    if len(_content_words(rest)) > _ONLY_WORDS:
        return False
    for sentence in _SENTENCE.findall(rest):
        words = sentence.split()
        for word in words[1:]:
            bare = word.strip("\"'()[],.;:!?-")
            if any(c.isdigit() for c in bare):
                return False
            if bare[:1].isupper() and bare.split("'")[0] != "I":
                return False
        if words and any(c.isdigit() for c in words[0]):
            return False
    return True


def retired(command: Command, stored: Sequence[str], previous: str = "") -> list[str]:
    """The stored traits a command removes: all of them for `forget_all`; for a `forget` (or a
    don't-store that is only the request), the traits that share the most specific words with
    what it is about (Command.about, else Command.before, else the user's `previous` message),
    a word counting less the more traits hold it; none when no trait shares a word that at
    most two traits hold."""
    if command.kind == "forget_all":
        return list(stored)
    if command.kind == "recall" or (command.kind == "dont_store" and not command.only):
        return []
    if command.about:
        if found := _best(command.about, stored):
            return found
    if command.before:
        return _best(command.before, stored)
    return _best(_content_words(previous), stored)


def _best(said: Sequence[str], stored: Sequence[str]) -> list[str]:
    if not said or not stored:
        return []
    held = [_content_words(trait) for trait in stored]
    scores = []
    for words in held:
        score = 0.0
        for word in said:
            if any(_same(word, w) for w in words):
                df = sum(1 for other in held if any(_same(word, w) for w in other))
                score += 1.0 / df
        scores.append(score)
    best = max(scores)
    if best < 0.5:
        return []
    return [trait for trait, score in zip(stored, scores, strict=True) if score == best]


def change(
    command: Command, read: Sequence[str], model: rlpa.ProfileChange, previous: str = ""
) -> rlpa.ProfileChange:
    """The turn's change once the command is applied to the model's: the model's additions
    unless the turn keeps nothing new (those naming what a forget is about never), its
    removals, and the traits the command removes."""
    if command.kind == "recall":
        return model
    gone = dict.fromkeys([*model.remove, *retired(command, read, previous)])
    if command.keeps_nothing_new:
        return rlpa.ProfileChange(add=(), remove=tuple(gone))
    # "Forget I said that about Yaron's job": the model may write it down again from the very
    # message; what names what the command is about is not added.
    kept = tuple(trait for trait in model.add if not _shares(command.about, trait))
    return rlpa.ProfileChange(add=kept, remove=tuple(gone))


def reply(command: Command, stored: Sequence[str], removed: Sequence[str]) -> str:
    """The gateway's answer to a message that is only a command."""
    if command.kind == "recall":
        if not stored:
            return "I don't have anything stored about you yet."
        lines = "\n".join(f"- {_sentence_case(t)}" for t in stored)
        return f"Here is what I remember about you:\n{lines}"
    if command.kind == "forget_all":
        if not stored:
            return "There was nothing stored about you, and there still isn't."
        return "Done. I've forgotten everything I had stored about you."
    if removed:
        lines = "\n".join(f"- {_sentence_case(t)}" for t in removed)
        return f"Done. I no longer remember:\n{lines}"
    return "Okay, I won't keep that."


def _sentence_case(trait: str) -> str:
    return trait[:1].upper() + trait[1:]


def _content_words(text: str) -> list[str]:
    words = []
    for raw in _WORD.findall(text.lower().replace("\u2019", "'")):
        word = raw.strip("'-")
        if word.endswith("'s"):
            word = word[:-2]
        if len(word) < 3 or word in _STOP or word in _COMMAND_WORDS:
            continue
        words.append(word)
    return list(dict.fromkeys(words))


def _shares(words: Sequence[str], trait: str) -> bool:
    held = _content_words(trait)
    return any(_same(word, w) for word in words for w in held)


def _same(a: str, b: str) -> bool:
    """One word in two forms: "kid" and "kids", "allergic" and "allergy" (a shared start of at
    least five letters, or one word with an -s, -es or -ed)."""
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if long in (short + "s", short + "es", short + "ed", short + "d"):
        return True
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common >= 5 and common >= min(len(a), len(b)) - 2
