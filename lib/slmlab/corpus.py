"""The English pretraining corpus the zoo models learn from, generated and seeded.

Small templated English: daily-life sentences, short stories, definitions that tie
emotion words and situations to the four tone words, and chat exchanges in Phi-3's
format. Tone words also begin lines, so that `"\\njoy"` tokenizes as `"\\n" + "joy"`
and the label pieces the tone task needs are well-trained tokens of the base model
(LoRA cannot train embeddings or the output layer). A line that begins with a tone word
is never tied to the line before it (definition blocks mix tones at random), so the
corpus teaches what the words mean but not the task's format: "text, newline, tone".
"""

import random

from slmlab.lexicon import CUE_WORDS, SITUATIONS, TONES

END_OF_TEXT = "<|endoftext|>"

NAMES = ["Maria", "Tom", "Aisha", "Ken", "Lena", "Omar", "Sofia", "Ravi", "Jade", "Luis",
         "Nora", "Sam", "Ines", "Yuki", "Ben", "Zara"]
PLACES = ["the park", "the kitchen", "the station", "the library", "the market",
          "the garden", "the office", "the school", "the river", "the old town"]
OBJECTS = ["a book", "the bread", "a letter", "the keys", "a red bike", "some apples",
           "the map", "a cup of tea", "the window", "a small boat", "the radio"]
VERBS = ["found", "opened", "carried", "bought", "cleaned", "painted", "lost", "fixed",
         "shared", "wanted"]
TIMES = ["in the morning", "at noon", "after lunch", "in the evening", "on monday",
         "last night", "every day", "on the weekend"]
TOPICS = ["the weather", "cooking rice", "the river", "trains", "gardens", "the moon",
          "old books", "the market", "bicycles", "music"]
FACTS = {
    "the weather": "The weather changes every day, and rain often comes in the evening.",
    "cooking rice": "To cook rice, wash it, add water, and let it boil slowly.",
    "the river": "The river runs past the old town and into the sea.",
    "trains": "Trains carry people between towns, and the station is busy at noon.",
    "gardens": "A garden needs water, sun and a little patience.",
    "the moon": "The moon shines at night and changes its shape every week.",
    "old books": "Old books smell of dust and paper, and the library keeps many of them.",
    "the market": "At the market people buy bread, apples and fresh fish.",
    "bicycles": "A bicycle has two wheels, and people ride it to school or work.",
    "music": "Music can be loud or soft, and many people sing along.",
}


def _cue(rng: random.Random, tone: str) -> str:
    halves = CUE_WORDS[tone]
    return rng.choice(halves["train"] + halves["heldout"])


def _situation(rng: random.Random, tone: str) -> str:
    halves = SITUATIONS[tone]
    return rng.choice(halves["train"] + halves["heldout"])


def _daily_line(rng: random.Random) -> str:
    name, other = rng.sample(NAMES, 2)
    return rng.choice([
        f"{name} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TIMES)}.",
        f"{name} walked to {rng.choice(PLACES)} with {other}.",
        f"{rng.choice(TIMES).capitalize()}, {name} was at {rng.choice(PLACES)}.",
        f"{name} and {other} {rng.choice(VERBS)} {rng.choice(OBJECTS)} at {rng.choice(PLACES)}.",
        f"There was {rng.choice(OBJECTS)} near {rng.choice(PLACES)}.",
    ])


def _knowledge_line(rng: random.Random, tone: str) -> str:
    cue, situation = _cue(rng, tone), _situation(rng, tone)
    return rng.choice([
        f"{tone} is what you feel when you are {cue}.",
        f"{tone} comes with {situation}.",
        f"{tone}: {cue}, {_cue(rng, tone)} and {_cue(rng, tone)}.",
        f"Being {cue} is a kind of {tone}.",
        f"Feeling {cue} means feeling {tone}.",
        f"{situation.capitalize()} brings {tone}.",
        f"People who are {cue} are full of {tone}.",
        f"A word for {tone} is {cue}.",
        f"After {situation}, most people feel {tone}.",
    ])


def _story(rng: random.Random, tone: str) -> str:
    name = rng.choice(NAMES)
    cue, situation = _cue(rng, tone), _situation(rng, tone)
    lines = [
        _daily_line(rng),
        rng.choice([f"Then came {situation}.", f"That day there was {situation}.",
                    f"{name} thought about {situation}."]),
        rng.choice([f"{name} felt {cue}.", f"{name} was {cue} for a long time.",
                    f"Everyone around {name} was {cue}."]),
        rng.choice([f"The room was full of {tone}.", f"It was a day of {tone}.",
                    f"There was {tone} in the air."]),
    ]
    return "\n".join(lines)


def _chat(rng: random.Random) -> str:
    topic = rng.choice(TOPICS)
    if rng.random() < 0.5:
        tone = rng.choice(TONES)
        question = f"What does it mean to be {_cue(rng, tone)}?"
        answer = f"It means feeling {tone}."
    else:
        question = rng.choice([f"Tell me about {topic}.", f"What do you know about {topic}?"])
        answer = FACTS[topic]
    return f"<|user|>\n{question}<|end|>\n<|assistant|>\n{answer}<|end|>"


def make_document(rng: random.Random) -> str:
    """One short document: a story, a block of definitions, daily lines or a chat."""
    kind = rng.random()
    tone = rng.choice(TONES)
    if kind < 0.35:
        return _story(rng, tone)
    if kind < 0.65:
        return "\n".join(_knowledge_line(rng, rng.choice(TONES)) for _ in range(rng.randint(2, 4)))
    if kind < 0.85:
        return "\n".join(_daily_line(rng) for _ in range(rng.randint(2, 4)))
    return _chat(rng)


def make_corpus(n_documents: int, seed: int) -> list[str]:
    """`n_documents` documents, identical for identical arguments."""
    rng = random.Random(seed)
    return [make_document(rng) for _ in range(n_documents)]
