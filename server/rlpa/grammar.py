"""The output format as a GBNF grammar, for backends that can constrain decoding (llama.cpp).

A small model that was never trained on the contract drifts out of it (stray tags, no profile
block); constraining decoding makes every turn parseable. The bounds mirror the trait limits the
parser enforces anyway, kept lower so that the profile block leaves room for the reply.
"""

FORMAT_GBNF = r"""
root    ::= "<profile>\n" trait{0,12} "</profile>\n\n<response>\n" reply "\n</response>"
trait   ::= "- " [^\n<-] [^\n<]{1,120} "\n"
reply   ::= [^<\n\t -] [^<]*
"""
