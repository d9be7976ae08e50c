"""Write the README's example data set: 4,000 chat examples whose lengths are lognormal (a median of about 309 tokens
at Llama 3's 4.35 characters a token, a long tail to about 7,000), seeded, so that `recommend --dataset` on it prints
what the README shows.

    python examples/make_train_jsonl.py train.jsonl
"""

import json
import math
import random
import sys

WORDS = "the of and to in is that for it as with was on be by this are from at or an have not".split()


def main(path: str) -> None:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(4000):
            chars = math.exp(rng.gauss(math.log(309 * 4.352), 0.93))
            words = []
            while sum(len(w) + 1 for w in words) < chars:
                words.append(rng.choice(WORDS))
            messages = [{"role": "user", "content": "Summarise."}, {"role": "assistant", "content": " ".join(words)}]
            f.write(json.dumps({"messages": messages}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "train.jsonl")
