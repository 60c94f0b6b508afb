"""Append seeded random letter strings to nlu/gibberish.yml (out_of_scope), so that nonsense falls
out of scope instead of into a short intent such as affirm. Run once per batch, with a new seed:

    .venv/bin/python tools/gibberish.py SEED COUNT

Strings used by the tests ("zkqw vbnx plourf") are never generated into the training data."""

import random
import sys
from pathlib import Path

FILE = Path(__file__).resolve().parent.parent / "nlu" / "gibberish.yml"
RESERVED = {"zkqw vbnx plourf", "zkqw vbnx"}
LETTERS = "bcdfghjklmnpqrstvwxzaeiouy"


def word(rng: random.Random) -> str:
    length = rng.randint(4, 9)  # shorter ones can be real words or brands ("hp", "ne", "ok")
    vowels = rng.random() < 0.5  # half pronounceable-ish, half consonant clusters
    return "".join(rng.choice("aeiouy" if vowels and i % 2 else LETTERS) for i in range(length))


def main(seed: int, count: int) -> None:
    rng = random.Random(seed)
    existing = FILE.read_text(encoding="utf-8")
    lines = []
    while len(lines) < count:
        text = " ".join(word(rng) for _ in range(rng.randint(1, 4)))
        if text in RESERVED or f"- {text}\n" in existing or text in lines:
            continue
        lines.append(text)
    with FILE.open("a", encoding="utf-8") as out:
        out.write("".join(f"      - {text}\n" for text in lines))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
