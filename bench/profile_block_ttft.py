"""Time to the first visible token against stored-profile size, under contract v1 and v2.

    PYTHONPATH=. .venv/bin/python bench/profile_block_ttft.py [--runs 3] [--sizes 0,10,30,64]

Splits it into the two parts a turn pays before the reply starts: evaluating the prompt (which
holds the stored traits under both contracts) and generating the profile block. The block is the
contract's ideal output for a turn that learns one new fact (v1: every stored trait plus the new
one; v2: only the new one), decoded token by token as generation would (teacher forcing: the same
one-token forward passes, without the sampler), on the embedded SmolLM2 GGUF. Prints a table; not
a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

from server import rlpa
from server.backends.llamacpp_model import LoadedModel
from server.settings import Settings

TRAITS = [
    "works as a nurse",
    "lives in Seattle",
    "loves hiking",
    "has a dog named Biscuit",
    "is learning Spanish",
    "drinks green tea",
    "has two kids",
    "plays the guitar",
    "is training for a half marathon",
    "dislikes horror films",
    "reads science fiction",
    "works night shifts",
    "grew up in Ohio",
    "is allergic to cats",
    "bakes sourdough",
    "supports the Seahawks",
    "drives an old Subaru",
    "is saving for a house",
    "speaks some French",
    "volunteers at a food bank",
    "likes jazz",
    "has a garden",
    "is afraid of flying",
    "enjoys board games",
    "takes the bus to work",
    "has a sister in Boston",
    "prefers mornings",
    "does yoga on Sundays",
    "collects vinyl records",
    "is lactose intolerant",
    "watches cooking shows",
    "has a 6-year-old daughter who loves dinosaurs",
    "knits scarves",
    "plans a trip to Japan",
    "is studying for a nursing exam",
    "likes spicy food",
    "has a vegetable patch",
    "rides a bike on weekends",
    "dislikes crowded places",
    "listens to podcasts",
    "is an early riser",
    "has a cat named Miso",
    "paints watercolours",
    "works at a children's hospital",
    "is left-handed",
    "runs a book club",
    "is renovating a kitchen",
    "likes rainy days",
    "plays chess online",
    "avoids caffeine",
    "takes photos of birds",
    "has a partner named Sam",
    "loves Thai food",
    "is a night owl",
    "camps every summer",
    "dislikes driving in snow",
    "learns piano",
    "follows Formula 1",
    "has a brother who is a chef",
    "wants to run a marathon",
    "grows tomatoes",
    "is allergic to peanuts",
    "likes crosswords",
    "has moved twice this year",
]
NEW_FACT = "is vegetarian"
MESSAGES = [
    {"role": "user", "content": "hi again! I've gone vegetarian. What should I cook tonight?"}
]


def ideal_block(version: int, stored: list[str]) -> str:
    lines = [*stored, NEW_FACT] if version == 1 else [NEW_FACT]
    output = rlpa.render_output(lines, "x")
    return output[: output.index("<response>") + len("<response>\n")]


def measure(model: LoadedModel, version: int, size: int) -> tuple[float, float, int, int]:
    """(prompt seconds, block seconds, prompt tokens, block tokens) for one fresh turn."""
    llama = model.llama
    stored = TRAITS[:size]
    prompt = model.prompt_tokens(rlpa.build_messages(MESSAGES, stored, version))
    block = llama.tokenize(ideal_block(version, stored).encode(), add_bos=False, special=False)
    llama.reset()  # no prefix cache: a new conversation's first turn
    start = time.perf_counter()
    llama.eval(prompt)
    prompt_s = time.perf_counter() - start
    start = time.perf_counter()
    for token in block:
        llama.eval([token])
    return prompt_s, time.perf_counter() - start, len(prompt), len(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="0,10,30,64")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    model = LoadedModel.load(Settings(_env_file=None, adapter="none"))  # type: ignore[call-arg]
    measure(model, 2, 0)  # warm up
    print(
        "| contract | stored traits | prompt tokens | prompt eval (s) | block tokens "
        "| block generation (s) | first visible token (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for version in (1, 2):
        for size in sizes:
            runs = [measure(model, version, size) for _ in range(args.runs)]
            prompt_s = statistics.median(r[0] for r in runs)
            block_s = statistics.median(r[1] for r in runs)
            _, _, prompt_tokens, block_tokens = runs[0]
            print(
                f"| v{version} | {size} | {prompt_tokens} | {prompt_s:.2f} | {block_tokens} "
                f"| {block_s:.2f} | {prompt_s + block_s:.2f} |"
            )
    model.close()


if __name__ == "__main__":
    main()
