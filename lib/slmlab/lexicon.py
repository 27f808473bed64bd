"""The course's emotion lexicon: tones, cue words and situations.

Both the pretraining corpus (`corpus.py`) and the tone dataset (`make_tone_data.py`) draw
from here. Every cue word and situation appears in the pretraining corpus, but only the
`train` halves appear in the tone training split: the `heldout` halves exist so that
the test split can measure whether fine-tuning generalises through what the base model
learned in pretraining ("knowledge from pretraining, format from fine-tuning").
"""

TONES: tuple[str, ...] = ("joy", "sadness", "fear", "surprise")

# Cue words: adjectives that signal a tone.
CUE_WORDS: dict[str, dict[str, list[str]]] = {
    "joy": {
        "train": ["happy", "glad", "delighted", "cheerful", "thrilled", "overjoyed",
                  "joyful", "pleased", "elated", "merry", "grateful", "proud"],
        "heldout": ["ecstatic", "jubilant", "blissful", "gleeful", "radiant", "euphoric"],
    },
    "sadness": {
        "train": ["sad", "unhappy", "heartbroken", "miserable", "gloomy", "depressed",
                  "lonely", "sorrowful", "downcast", "tearful", "hopeless", "grieving"],
        "heldout": ["melancholy", "despondent", "forlorn", "dejected", "crestfallen",
                    "mournful"],
    },
    "fear": {
        "train": ["afraid", "scared", "terrified", "frightened", "nervous", "anxious",
                  "worried", "panicked", "fearful", "uneasy", "alarmed", "horrified"],
        "heldout": ["petrified", "jittery", "spooked", "apprehensive", "trembling",
                    "timid"],
    },
    "surprise": {
        "train": ["surprised", "amazed", "astonished", "shocked", "stunned", "startled",
                  "astounded", "speechless", "bewildered", "dumbfounded", "puzzled",
                  "flabbergasted"],
        "heldout": ["gobsmacked", "awestruck", "staggered", "thunderstruck", "incredulous",
                    "baffled"],
    },
}

# Situations: noun phrases that bring a tone without naming an emotion.
SITUATIONS: dict[str, dict[str, list[str]]] = {
    "joy": {
        "train": ["winning the game", "a birthday party", "getting a puppy",
                  "a sunny holiday", "passing the exam", "a warm hug from a friend"],
        "heldout": ["landing my dream job", "the wedding of my sister", "a pay rise",
                    "a perfect day at the beach"],
    },
    "sadness": {
        "train": ["losing my dog", "a funeral", "saying goodbye", "a rainy lonely night",
                  "failing the exam", "a broken friendship"],
        "heldout": ["my grandmother passing away", "moving away from old friends",
                    "the empty house", "a cancelled reunion"],
    },
    "fear": {
        "train": ["a strange noise in the dark", "a huge spider", "a storm at night",
                  "a dark alley", "a growling dog", "the shaking bridge"],
        "heldout": ["footsteps behind me at midnight", "the turbulence on the plane",
                    "a snake in the grass", "the fire alarm at night"],
    },
    "surprise": {
        "train": ["an unexpected visitor", "a secret party", "a sudden twist",
                  "a letter out of nowhere", "a gift for no reason", "a sudden result"],
        "heldout": ["a stranger knowing my name", "snow in july",
                    "an old friend at the door", "a plot twist nobody saw coming"],
    },
}


def all_cue_words(split: str | None = None) -> dict[str, str]:
    """Map every cue word to its tone; `split` is "train", "heldout" or None for both."""
    return {
        word: tone
        for tone, halves in CUE_WORDS.items()
        for half, words in halves.items()
        if split in (None, half)
        for word in words
    }
