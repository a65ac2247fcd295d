"""Seeded English sentences from a tiny grammar: the text side of the synthetic demo corpus."""

from __future__ import annotations

import random

_SUBJECTS = ["the cat", "my friend", "a small boy", "the old man", "her sister", "the teacher", "our dog",
             "the pilot", "a young girl", "the farmer", "his mother", "the doctor", "a tall woman", "the baker"]
_VERBS = ["sees", "likes", "finds", "paints", "needs", "holds", "opens", "wants", "loves", "carries", "reads",
          "makes", "moves", "cleans", "brings", "watches"]
_OBJECTS = ["a red ball", "the blue door", "some fresh bread", "a long letter", "the green box", "a warm coat",
            "the big window", "a yellow kite", "the quiet garden", "an apple", "the heavy bag", "a new book",
            "the bright lamp", "some cold water"]
_PLACES = ["in the morning", "at the park", "near the river", "after lunch", "every day", "on the table",
           "by the road", "at night", "in the kitchen", "under the tree"]
_OPENERS = ["hello", "yes", "well", "look", "okay", "today", "now", "listen"]
_QUESTIONS = ["where is the", "can you see the", "do you like the", "who took the", "why is the"]
_NOUNS = ["house", "music", "river", "garden", "window", "paper", "rabbit", "shadow", "picture", "market"]


def make_sentence(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.55:
        words = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)]
        if rng.random() < 0.5:
            words.append(rng.choice(_PLACES))
        text = " ".join(words) + "."
    elif kind < 0.75:
        text = f"{rng.choice(_OPENERS)}, {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}."
    else:
        text = f"{rng.choice(_QUESTIONS)} {rng.choice(_NOUNS)}?"
    return text[0].upper() + text[1:]


def make_sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [make_sentence(rng) for _ in range(count)]
