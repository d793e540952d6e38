"""A small open-ended QA task: short factual questions whose answers are free text, not math.

It lets SEED-GRPO and the GCPO-style uncertainties run where answers cannot be hashed: completions are
reduced to their answer span, embedded (``seedgrpo.embeddings``) and clustered by meaning
(``seedgrpo.clustering``).

    from seedgrpo.tasks import qa
    problems = qa.qa_problems(16, seed=0)        # Problem(problem="What is the capital of France?", ...)
    texts = qa.sample_completions(problems[0], 8, correct_rate=0.5, seed=0)
    rewards = qa.qa_reward(texts, [problems[0].answer] * 8)         # 1.0 / 0.0 per completion
    spans = [qa.answer_span(t, problems[0].problem) for t in texts]  # "It's Paris." -> "paris"

The reward is TriviaQA-style containment: 1.0 when one of the gold aliases occurs, as whole words, in the
completion's normalised answer span (lower case, no punctuation, articles or filler such as "I think"), else
0.0. So "Paris", "The capital is Paris" and "It's Paris." all score 1, and so would "not Paris" (a toy).
``answer_span`` also drops the words a completion repeats from the question ("The capital of France is
Marseille" -> "marseille"): sentence encoders put two statements that differ only in the answer close together
(all-MiniLM-L6-v2: cosine 0.81 for that pair and "... is Paris"), so clustering must see the answers alone.
"""
from __future__ import annotations

import random
import re
import string
from typing import Sequence

from .data import Problem

__all__ = ["qa_problems", "qa_reward", "answer_span", "normalize_answer", "sample_completions", "QA_FACTS",
           "ANSWER_TEMPLATES"]

# (question, gold aliases (first = canonical), same-type wrong answers, statement that echoes the question)
QA_FACTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("What is the capital of France?", ("Paris",), ("Lyon", "Marseille", "London"),
     "The capital of France is {}."),
    ("What is the capital of Japan?", ("Tokyo",), ("Kyoto", "Osaka", "Beijing"),
     "The capital of Japan is {}."),
    ("What is the capital of Australia?", ("Canberra",), ("Sydney", "Melbourne", "Perth"),
     "The capital of Australia is {}."),
    ("What is the capital of Canada?", ("Ottawa",), ("Toronto", "Montreal", "Vancouver"),
     "The capital of Canada is {}."),
    ("What is the capital of Italy?", ("Rome",), ("Milan", "Naples", "Venice"),
     "The capital of Italy is {}."),
    ("Who wrote Hamlet?", ("William Shakespeare", "Shakespeare"), ("Charles Dickens", "Christopher Marlowe",
     "Jane Austen"), "{} wrote Hamlet."),
    ("Who wrote Pride and Prejudice?", ("Jane Austen", "Austen"), ("Charlotte Bronte", "Charles Dickens",
     "George Eliot"), "{} wrote Pride and Prejudice."),
    ("Who painted the Mona Lisa?", ("Leonardo da Vinci", "Leonardo", "da Vinci"), ("Michelangelo", "Raphael",
     "Rembrandt"), "The Mona Lisa was painted by {}."),
    ("Who developed the theory of general relativity?", ("Albert Einstein", "Einstein"), ("Isaac Newton",
     "Niels Bohr", "Max Planck"), "General relativity was developed by {}."),
    ("What is the chemical symbol for gold?", ("Au",), ("Ag", "Fe", "Pb"),
     "The chemical symbol for gold is {}."),
    ("What is the chemical symbol for sodium?", ("Na",), ("So", "Sn", "K"),
     "The chemical symbol for sodium is {}."),
    ("Which planet is the largest in the solar system?", ("Jupiter",), ("Saturn", "Neptune", "Earth"),
     "The largest planet in the solar system is {}."),
    ("Which planet is known as the Red Planet?", ("Mars",), ("Venus", "Mercury", "Jupiter"),
     "The Red Planet is {}."),
    ("What is the largest ocean on Earth?", ("the Pacific Ocean", "Pacific"), ("the Atlantic Ocean",
     "the Indian Ocean", "the Arctic Ocean"), "The largest ocean on Earth is {}."),
    ("What is the longest river in South America?", ("the Amazon", "Amazon River"), ("the Parana",
     "the Orinoco", "the Nile"), "The longest river in South America is {}."),
    ("What gas do plants absorb from the air for photosynthesis?", ("carbon dioxide", "CO2"), ("oxygen",
     "nitrogen", "hydrogen"), "For photosynthesis plants absorb {} from the air."),
    ("What is the hardest natural material?", ("diamond",), ("quartz", "granite", "steel"),
     "The hardest natural material is {}."),
    ("How many continents are there?", ("seven", "7"), ("five", "six", "eight"), "There are {} continents."),
    ("In which year did the first human land on the Moon?", ("1969",), ("1959", "1972", "1965"),
     "The year was {}."),
    ("Who was the first person to walk on the Moon?", ("Neil Armstrong", "Armstrong"), ("Buzz Aldrin",
     "Yuri Gagarin", "John Glenn"), "The first person to walk on the Moon was {}."),
    ("What is the main language spoken in Brazil?", ("Portuguese",), ("Spanish", "French", "English"),
     "The main language spoken in Brazil is {}."),
    ("What currency is used in Japan?", ("the yen", "yen"), ("the yuan", "the won", "the dollar"),
     "The currency used in Japan is {}."),
    ("Which organ pumps blood through the human body?", ("the heart", "heart"), ("the liver", "the lungs",
     "the kidneys"), "The organ that pumps blood through the human body is {}."),
    ("What is the freezing point of water in degrees Celsius?", ("zero", "0"), ("100", "32", "minus ten"),
     "The freezing point of water is {} degrees Celsius."),
)

# Ways a model phrases a short answer; {} is the answer. The fact's own statement is added per problem.
ANSWER_TEMPLATES = ("{}", "{}.", "It's {}.", "The answer is {}.", "I think it's {}.", "{}, I believe.",
                    "It is {}.")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation})
# Hedges and lead-ins that carry no answer (matched on the lower-cased text, before punctuation is removed).
_LEAD_INS = re.compile(r"^(?:(?:i think|i believe|i'm pretty sure|probably|surely|answer:|the answer is|"
                       r"the correct answer is|my answer is|it's|it is|that's|that is|that would be)"
                       r"[\s,:]*)+")
_TRAIL_OFFS = re.compile(r"(?:[\s,]*(?:i think|i believe|probably|i guess))+[\s.!]*$")
# Function words a completion wraps around the words it repeats from the question.
_GLUE = frozenset("a an the is are was were of for by in on at to it its this that which who what how "
                  "does do did has have there".split())


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, punctuation to spaces, no articles, single spaces."""
    text = text.lower().replace("\u2019", "'").translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_span(completion: str, question: str | None = None) -> str:
    """The normalised answer a completion gives: lead-ins, hedges and the question's own words stripped.

    "It's Paris." -> "paris"; "The capital of France is Marseille." (for "What is the capital of France?")
    -> "marseille"; "Shakespeare wrote it" (for "Who wrote Hamlet?") -> "shakespeare". Falls back to the whole
    normalised completion when stripping would leave nothing (e.g. the completion only repeats the question).
    """
    text = completion.strip().lower().replace("\u2019", "'")
    text = _TRAIL_OFFS.sub("", _LEAD_INS.sub("", text))
    tokens = normalize_answer(text).split()
    if question is not None:
        echo = set(normalize_answer(question).split()) | _GLUE
        start, end = 0, len(tokens)
        while start < end and tokens[start] in echo:
            start += 1
        while end > start and tokens[end - 1] in echo:
            end -= 1
        if start < end:
            tokens = tokens[start:end]
    return " ".join(tokens) or normalize_answer(completion)


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def qa_reward(completions: Sequence[str], golds: Sequence[str | Sequence[str]]) -> list[float]:
    """1.0 when a gold alias occurs as whole words in the completion's answer span, else 0.0 (one per row).

    ``golds[i]`` is the gold answer of row i: a string or a list of accepted aliases (``Problem.answer``).
    """
    if isinstance(completions, str) or isinstance(golds, str):
        raise ValueError("completions and golds must be lists (one entry per row), not a single string")
    if len(completions) != len(golds):
        raise ValueError(f"completions ({len(completions)}) and golds ({len(golds)}) must have the same "
                         "length: one gold (or list of aliases) per completion")
    rewards = []
    for completion, gold in zip(completions, golds, strict=True):
        aliases = [gold] if isinstance(gold, str) else list(gold)
        if not aliases or not all(isinstance(a, str) for a in aliases):
            raise ValueError(f"each gold must be a string or a non-empty list of strings, got {gold!r}")
        span = answer_span(completion).split()
        rewards.append(float(any(_contains(span, normalize_answer(a).split()) for a in aliases)))
    return rewards


def qa_problems(n: int, seed: int = 0) -> list[Problem]:
    """``n`` problems from ``QA_FACTS`` in a seeded order; past the bank's size it reshuffles and repeats.

    ``Problem.answer`` lists the gold aliases (canonical first); ``meta`` holds ``distractors`` (wrong answers
    of the same kind) and ``statement`` (a sentence that repeats the question, ``{}`` = the answer).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < n:
        block = list(range(len(QA_FACTS)))
        rng.shuffle(block)
        order.extend(block)
    problems = []
    for k, index in enumerate(order[:n]):
        question, aliases, distractors, statement = QA_FACTS[index]
        problems.append(Problem(problem=question, answer=list(aliases), id=f"qa-{seed}-{k}",
                                meta={"fact": index, "distractors": list(distractors),
                                      "statement": statement}))
    return problems


def sample_completions(problem: Problem, num: int, *, correct_rate: float = 0.5, seed: int = 0) -> list[str]:
    """``num`` synthetic completions: a gold alias (with probability ``correct_rate``) or a distractor, each
    in a random phrasing (``ANSWER_TEMPLATES`` plus the fact's statement). For tests and model-free demos."""
    if not 0.0 <= correct_rate <= 1.0:
        raise ValueError(f"correct_rate must be in [0, 1], got {correct_rate!r}")
    rng = random.Random(seed)
    aliases = problem.answer if isinstance(problem.answer, list) else [problem.answer]
    templates = ANSWER_TEMPLATES + ((problem.meta["statement"],) if "statement" in problem.meta else ())
    texts = []
    for _ in range(num):
        pool = aliases if rng.random() < correct_rate else problem.meta.get("distractors", [])
        if not pool:
            raise ValueError(f"problem {problem.id!r} has no distractors in meta; use correct_rate=1.0")
        texts.append(rng.choice(templates).format(rng.choice(pool)))
    return texts


def _alias_separation() -> None:
    """Print how far apart MiniLM puts the answer spans of the bank: the basis of the clustering threshold."""
    import itertools

    from ..embeddings import minilm_embeddings

    same, different = [], []
    for question, aliases, distractors, statement in QA_FACTS:
        answers = [(0, a) for a in aliases] + [(k + 1, d) for k, d in enumerate(distractors)]
        spans = sorted({(label, answer_span(t.format(a), question))
                        for label, a in answers for t in ANSWER_TEMPLATES + (statement,)})
        vectors = minilm_embeddings([s for _, s in spans])
        cosine = (vectors @ vectors.T).tolist()
        for (x, (lx, sx)), (y, (ly, sy)) in itertools.combinations(enumerate(spans), 2):
            if sx != sy:
                (same if lx == ly else different).append((cosine[x][y], sx, sy))
    same.sort()
    different.sort(reverse=True)
    print(f"{len(QA_FACTS)} facts: {len(same)} pairs of different spans with one meaning (aliases), "
          f"{len(different)} pairs of different answers")
    print("least similar aliases:     ", ", ".join(f"{a}/{b} {c:.3f}" for c, a, b in same[:5]))
    print("most similar other answers:", ", ".join(f"{a}/{b} {c:.3f}" for c, a, b in different[:5]))
    for threshold in (0.80, 0.85, 0.87, 0.90):
        merged_wrong = sum(c >= threshold for c, _, _ in different)
        alias_apart = sum(c < threshold for c, _, _ in same)
        print(f"threshold {threshold:.2f}: {merged_wrong} different-answer pairs >= it, "
              f"{alias_apart} alias pairs below it")


if __name__ == "__main__":
    _alias_separation()
