"""The output format as a GBNF grammar, for backends that can constrain decoding (llama.cpp).

A small model that was never trained on the contract drifts out of it (stray tags, no profile
block); constraining decoding makes every turn parseable. The bounds mirror the trait limits the
parser enforces anyway, kept lower so that the profile block leaves room for the reply.

A trait line is one statement about the user. Left free, a small model runs a trait on into the
reply it is about to write ("works nights, so they get a good rest. What's your home like?"), and
that text would be stored as memory. So a trait holds no "?", "!" or ";", and a full stop inside
it must not start a new sentence: it is followed by a letter or digit ("3.5", "a.m.") or by a
space and a lower-case word or digit ("approx. 5"); it may end the line. The cost: a capitalised
word after an abbreviation ("St. Louis") cannot follow its full stop, so the model writes
"St Louis" or ends the trait there.
"""

FORMAT_GBNF = r"""
root    ::= "<profile>\n" trait{0,12} "</profile>\n\n<response>\n" reply "\n</response>"
trait   ::= "- " [^\n<?!;.-] tchar{1,120} "."? "\n"
tchar   ::= [^\n<?!;.] | "." [^\n<?!;. ] | ". " [a-z0-9]
reply   ::= [^<\n\t -] [^<]*
"""
