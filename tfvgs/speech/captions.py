"""Caption text for CLEVR scene JSON: what the espeak-ng speakers say about each image.

Paper 000 (sec. 3 and 6) has two kinds of captions. Its *synthetic* captions describe every object with all of its
attributes plus the spatial relations between objects, so attribute words are evenly represented; its *human*
captions mention only some objects and attributes, colour most of all. `style="synthetic"` and `style="natural"`
imitate the two.

Besides the text, every caption records which object each spoken attribute word refers to and which relations were
stated (`Caption.mentions`, `Caption.relations`), so tests and analyses (the semantic test, per-word retrieval) never
have to parse sentences back. `caption_words` still maps any caption text, synonyms included, back to canonical
attribute values.

Scenes follow CLEVR's scene JSON: `relationships[rel][i]` lists the objects j that are `rel` of object i, e.g.
`j in relationships["left"][i]` means "object j is to the left of object i".
"""
from __future__ import annotations

import dataclasses
import itertools
import operator
import random
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

ATTRIBUTES = ("size", "color", "material", "shape")   # also the usual English adjective order
RELATIONS = ("left", "right", "front", "behind")
STYLES = ("synthetic", "natural")

VALUES: Dict[str, Tuple[str, ...]] = {
    "size": ("large", "small"),
    "color": ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"),
    "material": ("rubber", "metal"),
    "shape": ("cube", "sphere", "cylinder"),
}

# Spoken forms of each canonical value. The first word is the canonical one (used for isolated words).
SPOKEN_WORDS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "size": {"large": ("large", "big"), "small": ("small", "tiny")},
    "color": {color: (color,) for color in VALUES["color"]},
    "material": {"metal": ("metal", "metallic", "shiny"), "rubber": ("rubber", "matte")},
    "shape": {"cube": ("cube", "block"), "sphere": ("sphere", "ball"), "cylinder": ("cylinder",)},
}

# Extra written forms that only `caption_words` needs to understand (plurals, British spelling).
_EXTRA_FORMS = {
    "grey": ("color", "gray"), "cubes": ("shape", "cube"), "blocks": ("shape", "cube"),
    "spheres": ("shape", "sphere"), "balls": ("shape", "sphere"), "cylinders": ("shape", "cylinder"),
}

WORD_TO_VALUE: Dict[str, Tuple[str, str]] = {
    word: (attribute, value)
    for attribute, values in SPOKEN_WORDS.items() for value, words in values.items() for word in words
}
WORD_TO_VALUE.update(_EXTRA_FORMS)

# Material words that are quality adjectives ("a small shiny red cube") may precede the colour; the noun adjuncts
# "metal"/"rubber" only follow it ("a small red rubber cube") or appear as "made of metal".
_PREPOSABLE_MATERIAL = frozenset({"shiny", "metallic", "matte"})
_ADJUNCT_MATERIAL = frozenset({"metal", "rubber"})

_RELATION_PHRASES = {
    "left": ("to the left of", "left of", "on the left of"),
    "right": ("to the right of", "right of", "on the right of"),
    "front": ("in front of",),
    "behind": ("behind",),
}
_POSSESSIVE_RELATION = {"left": "to its left", "right": "to its right"}   # pronoun-only forms
_HORIZONTAL = ("left", "right")
_DEPTH = ("front", "behind")

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve")


@dataclasses.dataclass(frozen=True)
class Mention:
    """One noun phrase of a caption: the object it denotes and the word spoken for each attribute it names.

    `reference` is True for phrases that point back at an already described object ("the red one", "it").
    """
    object_index: int
    words: Mapping[str, str]
    reference: bool = False

    @property
    def values(self) -> Dict[str, str]:
        """Canonical attribute values of the spoken words (e.g. {"material": "metal"} for "shiny")."""
        return {attribute: WORD_TO_VALUE[word][1] for attribute, word in self.words.items()}


@dataclasses.dataclass(frozen=True)
class SpokenRelation:
    """"`subject` is `relation` of `reference`", e.g. ("left", 2, 0): object 2 is to the left of object 0."""
    subject: int
    relation: str
    reference: int


@dataclasses.dataclass(frozen=True)
class Caption:
    text: str
    style: str
    seed: int
    mentions: Tuple[Mention, ...]
    relations: Tuple[SpokenRelation, ...]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly record for storing next to the audio."""
        return {
            "text": self.text, "style": self.style, "seed": self.seed,
            "mentions": [{"object": m.object_index, "words": dict(m.words), "values": m.values,
                          "reference": m.reference} for m in self.mentions],
            "relations": [[r.subject, r.relation, r.reference] for r in self.relations],
        }


def caption_for_scene(scene: Mapping[str, Any], seed: int, style: str = "synthetic") -> str:
    """The caption text for `scene`; deterministic per (scene, seed, style). See `describe_scene`."""
    return describe_scene(scene, seed, style).text


def describe_scene(scene: Mapping[str, Any], seed: int, style: str = "synthetic") -> Caption:
    """Writes a caption for a CLEVR scene dict and records what it says.

    style="synthetic" (paper 000's synthetic captions): every object is described once with all four attributes
      (size, colour, material, shape) and every object after the first is placed relative to an earlier one with a
      relation that holds in the scene ("to the left of", "in front of", "behind", ...). Variation, all driven by
      `seed`: object order is shuffled; the caption is either a chain ("There is a big red metal cube. Behind it is
      a small matte ball.") or a list followed by relations ("I see two objects: a ..., and a .... The ball is
      behind the cube."); sentence templates, synonyms (big/large, shiny/metallic/metal, ball/sphere, ...),
      adjective order where English allows it ("small shiny red" and "small red shiny" but not "small rubber red"),
      post-modifiers ("made of rubber"), pronouns and the attributes used to refer back to an object all vary.
      References back use a minimal distinguishing description ("the metal one", "the red cube"), so no attribute
      family dominates. No filler words.
    style="natural" imitates people (paper 000's human captions): only one to four objects, chosen with a bias
      towards large ones; each with only some attributes (colour ~90%, shape ~75%, size ~45%, material ~30% of the
      time, "thing"/"object"/"one" when the shape is not named); informal synonyms; fillers ("um", "uh", "so",
      "I think", "and then"); sometimes a true relation to the previously mentioned object. Every spoken attribute
      and relation is still true of the scene.

    Raises ValueError naming the problem for scenes without objects, with unknown attribute values, or with
    relationships that do not match the objects.
    """
    if style not in STYLES:
        raise ValueError(f"Unknown caption style. Expected one of {STYLES}. Received: style={style!r}")
    try:
        seed = operator.index(seed)
    except TypeError:
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}") from None
    objects, relationships = _validated_scene(scene)
    # String seeding hashes with SHA-512: identical across processes and Python builds (unlike hash()).
    rng = random.Random(f"tfvgs-caption:{style}:{seed}")
    writer = _CaptionWriter(objects, relationships, rng)
    if style == "synthetic":
        writer.write_synthetic()
    else:
        writer.write_natural()
    return Caption(text=writer.text(), style=style, seed=seed, mentions=tuple(writer.mentions),
                   relations=tuple(writer.relations))


def caption_words(caption: str | Caption) -> Dict[str, List[str]]:
    """Canonical attribute values mentioned in a caption, in spoken order, synonyms mapped back.

    E.g. "A big shiny ball behind the red block." -> {"size": ["large"], "color": ["red"],
    "material": ["metal"], "shape": ["sphere", "cube"]}. Every attribute key is present (possibly empty).
    """
    text = caption.text if isinstance(caption, Caption) else caption
    if not isinstance(text, str):
        raise ValueError(f"`caption` must be a string or Caption. Received: {type(caption).__name__}")
    found: Dict[str, List[str]] = {attribute: [] for attribute in ATTRIBUTES}
    for token in re.findall(r"[a-z]+", text.lower()):
        if token in WORD_TO_VALUE:
            attribute, value = WORD_TO_VALUE[token]
            found[attribute].append(value)
    return found


def isolated_words() -> Dict[str, List[Tuple[str, str]]]:
    """One spoken word per attribute value for the semantic test: {"shape": [("cube", "cube"), ...], ...}."""
    return {attribute: [(value, SPOKEN_WORDS[attribute][value][0]) for value in VALUES[attribute]]
            for attribute in ATTRIBUTES}


# ----------------------------------------------------------------------------------------------------------------
# Scene checks

def _validated_scene(scene: Mapping[str, Any]) -> Tuple[List[Dict[str, str]], Dict[str, List[List[int]]]]:
    if not isinstance(scene, Mapping) or not isinstance(scene.get("objects"), (list, tuple)):
        received = sorted(scene) if isinstance(scene, Mapping) else type(scene).__name__
        raise ValueError(f"`scene` must be a CLEVR scene dict with an 'objects' list. Received: {received}")
    if not scene["objects"]:
        raise ValueError("`scene` has no objects; there is nothing to describe. Received: objects=[]")
    objects = []
    for i, obj in enumerate(scene["objects"]):
        if not isinstance(obj, Mapping):
            raise ValueError(f"scene object {i} must be a dict. Received: {obj!r}")
        attributes = {}
        for attribute in ATTRIBUTES:
            value = obj.get(attribute)
            if value not in VALUES[attribute]:
                raise ValueError(f"scene object {i} has an unknown {attribute}. Expected one of "
                                 f"{VALUES[attribute]}. Received: {attribute}={value!r}")
            attributes[attribute] = value
        objects.append(attributes)
    n = len(objects)
    raw = scene.get("relationships")
    if n == 1 and not raw:
        return objects, {relation: [[]] for relation in RELATIONS}
    if not isinstance(raw, Mapping):
        raise ValueError(f"`scene` with {n} objects needs a 'relationships' dict with keys {RELATIONS}. "
                         f"Received: relationships={raw!r}")
    relationships = {}
    for relation in RELATIONS:
        lists = raw.get(relation)
        if not isinstance(lists, (list, tuple)) or len(lists) != n:
            raise ValueError(f"scene relationships[{relation!r}] must hold one list per object ({n}). "
                             f"Received: {lists!r}")
        for i, related in enumerate(lists):
            if any(not isinstance(j, int) or not 0 <= j < n or j == i for j in related):
                raise ValueError(f"scene relationships[{relation!r}][{i}] must list other object indices in "
                                 f"[0, {n}). Received: {related!r}")
        relationships[relation] = [list(related) for related in lists]
    return objects, relationships


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join_list(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _number(n: int) -> str:
    return _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)


# ----------------------------------------------------------------------------------------------------------------
# Writing

class _CaptionWriter:
    """Builds one caption left to right, recording each mention and relation in spoken order."""

    def __init__(self, objects: List[Dict[str, str]], relationships: Dict[str, List[List[int]]],
                 rng: random.Random):
        self.objects = objects
        self.relationships = relationships
        self.rng = rng
        self.sentences: List[List[str]] = []
        self.mentions: List[Mention] = []
        self.relations: List[SpokenRelation] = []

    # --- output -------------------------------------------------------------------------------------------------

    def say(self, *parts: str) -> None:
        """Appends words to the current sentence (starting one if needed)."""
        if not self.sentences:
            self.sentences.append([])
        self.sentences[-1].extend(part for part in parts if part)

    def end_sentence(self) -> None:
        if self.sentences and self.sentences[-1]:
            self.sentences.append([])

    def text(self) -> str:
        out = []
        for words in self.sentences:
            if words:
                sentence = " ".join(words).replace(" ,", ",")
                out.append(sentence[0].upper() + sentence[1:] + ".")
        return " ".join(out)

    # --- facts --------------------------------------------------------------------------------------------------

    def true_relations(self, subject: int, reference: int) -> List[str]:
        """Relations r with "subject is r of reference" true in the scene."""
        return [r for r in RELATIONS if subject in self.relationships[r][reference]]

    def choose_relations(self, subject: int, reference: int, compound_probability: float) -> List[str]:
        true = self.true_relations(subject, reference)
        horizontal = [r for r in true if r in _HORIZONTAL]
        depth = [r for r in true if r in _DEPTH]
        if horizontal and depth and self.rng.random() < compound_probability:
            pair = [self.rng.choice(depth), self.rng.choice(horizontal)]
            self.rng.shuffle(pair)
            return pair
        return [self.rng.choice(true)]

    def choose_reference(self, subject: int, earlier: Sequence[int], prefer_last: float) -> Optional[int]:
        """An earlier object that `subject` stands in some relation to, preferring the most recent one."""
        candidates = [j for j in earlier if self.true_relations(subject, j)]
        if not candidates:
            return None
        if earlier[-1] in candidates and self.rng.random() < prefer_last:
            return earlier[-1]
        return self.rng.choice(candidates)

    # --- noun phrases -------------------------------------------------------------------------------------------

    def spoken(self, index: int, attribute: str) -> str:
        return self.rng.choice(SPOKEN_WORDS[attribute][self.objects[index][attribute]])

    def full_phrase(self, index: int, final: bool) -> str:
        """All four attributes: "a small shiny red cube", "a big red cylinder made of rubber", ...

        Post-modifiers ("made of rubber", "that is shiny") are only used when the phrase ends its sentence, where
        they cannot run into a following relation ("... that is shiny left of it").
        """
        words = {attribute: self.spoken(index, attribute) for attribute in ATTRIBUTES}
        size, color, material, shape = (words[a] for a in ATTRIBUTES)
        forms = [f"{size} {color} {material} {shape}"]
        if material in _PREPOSABLE_MATERIAL:
            forms.append(f"{size} {material} {color} {shape}")
            if final:
                forms.append(f"{size} {color} {shape} that is {material}")
        elif final:
            forms.append(f"{size} {color} {shape} made of {material}")
        phrase = self.rng.choice(forms)
        self.mentions.append(Mention(index, words))
        return f"{_article(phrase)} {phrase}"

    def referring_phrase(self, index: int) -> str:
        """ "the ..." with the fewest attributes that single the object out (random among equally short ones)."""
        target = self.objects[index]
        others = [obj for j, obj in enumerate(self.objects) if j != index]
        chosen: Tuple[str, ...] = ATTRIBUTES   # identical twins: the full description is the best we can do
        for k in range(1, len(ATTRIBUTES) + 1):
            subsets = list(itertools.combinations(ATTRIBUTES, k))
            self.rng.shuffle(subsets)
            unique = [s for s in subsets if all(any(o[a] != target[a] for a in s) for o in others)]
            if unique:
                chosen = unique[0]
                break
        words = {attribute: self.spoken(index, attribute) for attribute in chosen}
        adjectives = [words[a] for a in ATTRIBUTES[:3] if a in words]
        noun = words.get("shape", "one")
        self.mentions.append(Mention(index, words, reference=True))
        return " ".join(["the"] + adjectives + [noun])

    def pronoun(self, index: int) -> None:
        self.mentions.append(Mention(index, {}, reference=True))

    def relation_phrase(self, subject: int, reference: int, relations: List[str], use_pronoun: bool) -> str:
        """ "to the left of the red one", "behind it", "to its left", "in front of and left of the cube"."""
        for relation in relations:
            self.relations.append(SpokenRelation(subject, relation, reference))
        if use_pronoun and len(relations) == 1 and relations[0] in _POSSESSIVE_RELATION \
                and self.rng.random() < 0.4:
            self.pronoun(reference)
            return _POSSESSIVE_RELATION[relations[0]]
        phrases = " and ".join(self.rng.choice(_RELATION_PHRASES[r]) for r in relations)
        if use_pronoun:
            self.pronoun(reference)
            return f"{phrases} it"
        return f"{phrases} {self.referring_phrase(reference)}"

    # --- synthetic ----------------------------------------------------------------------------------------------

    def write_synthetic(self) -> None:
        order = list(range(len(self.objects)))
        self.rng.shuffle(order)
        # The list form repeats every object as a reference, so it is kept to small scenes where that stays short.
        if 1 < len(order) <= 4 and self.rng.random() < 0.35:
            self._synthetic_list(order)
        else:
            self._synthetic_chain(order)

    def _synthetic_chain(self, order: List[int]) -> None:
        first = self.rng.choice(("There is {X}", "I see {X}", "The picture shows {X}"))
        self.say(first.format(X=self.full_phrase(order[0], final=True)))
        for k in range(1, len(order)):
            self.end_sentence()
            subject = order[k]
            reference = self.choose_reference(subject, order[:k], prefer_last=0.75)
            if reference is None:   # touching/coincident objects: no relation holds
                self.say(f"there is also {self.full_phrase(subject, final=True)}")
                continue
            relations = self.choose_relations(subject, reference, compound_probability=0.15)
            use_pronoun = reference == order[k - 1] and self.rng.random() < 0.6
            template = self.rng.choice(("{R} is {X}", "{R} there is {X}", "{X} is {R}", "there is {X} {R}"))
            # Render slots in spoken order so mentions stay in text order.
            if template.index("{R}") < template.index("{X}"):
                r = self.relation_phrase(subject, reference, relations, use_pronoun)
                x = self.full_phrase(subject, final=True)
            else:
                x = self.full_phrase(subject, final=False)
                r = self.relation_phrase(subject, reference, relations, use_pronoun)
            self.say(template.format(R=r, X=x))

    def _synthetic_list(self, order: List[int]) -> None:
        n = len(order)
        opener = self.rng.choice(("There are {N} objects: {L}", "I see {N} objects: {L}", "I see {L}",
                                  "The picture shows {L}"))
        phrases = [self.full_phrase(i, final=k == n - 1) for k, i in enumerate(order)]
        self.say(opener.format(N=_number(n), L=_join_list(phrases)))
        self.end_sentence()
        for k in range(1, n):
            subject = order[k]
            reference = self.choose_reference(subject, order[:k], prefer_last=0.5)
            if reference is None:
                continue
            relations = self.choose_relations(subject, reference, compound_probability=0.15)
            if self.rng.random() < 0.7:
                s = self.referring_phrase(subject)
                r = self.relation_phrase(subject, reference, relations, use_pronoun=False)
                clause = f"{s} is {r}"
            else:
                r = self.relation_phrase(subject, reference, relations, use_pronoun=False)
                s = self.referring_phrase(subject)
                clause = f"{r} is {s}"
            if self.sentences[-1] and self.rng.random() < 0.3:
                self.say(",", "and", clause)
            else:
                self.end_sentence()
                self.say(clause)

    # --- natural ------------------------------------------------------------------------------------------------

    _NATURAL_PROBABILITY = {"color": 0.9, "shape": 0.75, "size": 0.45, "material": 0.3}
    _NATURAL_WORDS = {   # people prefer the informal synonyms
        ("size", "large"): ("big", "big", "large"), ("size", "small"): ("small", "small", "tiny"),
        ("material", "metal"): ("shiny", "shiny", "metal", "metallic"), ("material", "rubber"): ("rubber", "matte"),
        ("shape", "cube"): ("cube", "block", "block"), ("shape", "sphere"): ("ball", "ball", "sphere"),
    }

    def natural_phrase(self, index: int) -> str:
        obj = self.objects[index]
        attributes = [a for a in ATTRIBUTES if self.rng.random() < self._NATURAL_PROBABILITY[a]]
        if not attributes:
            attributes = ["color"]
        words = {}
        for attribute in attributes:
            options = self._NATURAL_WORDS.get((attribute, obj[attribute]), SPOKEN_WORDS[attribute][obj[attribute]])
            words[attribute] = self.rng.choice(options)
        adjectives = [words[a] for a in ATTRIBUTES[:3] if a in words]
        noun = words.get("shape") or self.rng.choice(("thing", "object", "one") if adjectives else ("thing", "object"))
        self.mentions.append(Mention(index, words))
        phrase = " ".join(adjectives + [noun])
        return f"{_article(phrase)} {phrase}"

    def write_natural(self) -> None:
        n = len(self.objects)
        count = min(n, self.rng.choice((1, 2, 2, 3, 3, 4)))
        salience = {i: self.rng.random() + (0.35 if self.objects[i]["size"] == "large" else 0.0) for i in range(n)}
        chosen = sorted(range(n), key=lambda i: -salience[i])[:count]
        if self.rng.random() < 0.5:
            self.say(self.rng.choice(("um", "uh", "so", "okay so", "well", "um so")) + ",")
        intro = self.rng.choice(("there's {X}", "there is {X}", "I see {X}", "I can see {X}", "this picture has {X}"))
        self.say(intro.format(X=self.natural_phrase(chosen[0])))
        for k in range(1, count):
            subject, previous = chosen[k], chosen[k - 1]
            connector = self.rng.choice(("and", "and uh", "and then", "um and", "also", "and there's", "uh"))
            x = self.natural_phrase(subject)
            if self.true_relations(subject, previous) and self.rng.random() < 0.4:
                relation = self.rng.choice(self.true_relations(subject, previous))
                self.relations.append(SpokenRelation(subject, relation, previous))
                phrase = self.rng.choice(_RELATION_PHRASES[relation])
                self.say(",", connector, x, phrase, self._natural_reference(previous))
            else:
                self.say(",", connector, x)
        ending = self.rng.random()
        if ending < 0.15:
            self.say(",", "I think")
        elif ending < 0.25:
            self.say(",", "and that's it")

    def _natural_reference(self, index: int) -> str:
        choice = self.rng.random()
        if choice < 0.4:
            self.pronoun(index)
            return "it"
        if choice < 0.6:
            self.pronoun(index)
            return "that one"
        color = self.spoken(index, "color")
        self.mentions.append(Mention(index, {"color": color}, reference=True))
        return f"the {color} one"
