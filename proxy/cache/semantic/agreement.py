"""Do two prompts ask for the same specifics? The guard that keeps a semantic hit honest.

A sentence embedding averages words, so "refund order 1234" and "refund order 1243", or
"is X safe" and "is X not safe", land within a hair of each other. A semantic hit therefore
also needs :func:`agree`: both prompts must carry the same

- **numbers**, digits and words alike: "3" = "three" = "third" = "3rd", "Q3" = "third
  quarter", "1,234" = "1234", "5%" = "5 percent"; versions ("v1.2" = "version 1.2");
- **dates**: "2024-03-05" = "March 5, 2024" = "5th of March 2024";
  today / tomorrow / yesterday / tonight;
- **identifiers**: URLs, e-mail addresses, file names, hex ids, tokens mixing letters and
  digits (order ids, SKUs, "gpt-4o");
- **quoted text**: "...", '...', `code` and fenced code blocks, compared verbatim (case and
  runs of blanks aside);
- **negations**: as many of not / no / never / n't / cannot / without / none / nothing ...;
- **languages and units, in order**: programming and natural languages ("in Python" vs "in
  Rust", "English to French" vs "French to English") and units ("5 km to miles" vs "5 miles
  to km");
- **polar words**: ascending / descending, minimum / maximum, before / after, encrypt /
  decrypt ... (synonyms folded: "biggest" = "largest");
- **direction**: "convert a string to an int" vs "an int to a string" (the same words, so
  the same embedding): the content words on either side of to / into / from / than / vs /
  over must not appear swapped in the other prompt;
- **named entities**: capitalised words that are not stop words (a sentence's first word
  counts unless it is a common sentence opener such as "Give" or "Summarize"); each prompt's
  entities must appear, in any case, among the other prompt's words.

It errs towards "disagree": a false disagreement costs one upstream call, a false agreement
returns another question's answer. It is pure and costs a few µs for a one-line prompt;
:func:`signature` extracts a prompt's part once so an index can compare it with many.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = ["Signature", "agree", "signature"]


@dataclass(frozen=True, slots=True)
class Signature:
    """What :func:`agree` compares, extracted from one prompt."""

    exact: tuple[object, ...]
    """Features that must be equal: numbers, dates, ids, quotes, negations, order-bearing
    languages and units, polar words."""
    entities: frozenset[str]
    """Capitalised non-stop-words, lower-cased."""
    words: frozenset[str]
    """Every word, lower-cased: where the other prompt's entities are looked for."""
    directions: frozenset[tuple[str, str]]
    """(left, right) content words around "to", "into", "from", "than", "vs", "over"."""

    def agrees_with(self, other: Signature) -> bool:
        return (
            self.exact == other.exact
            and self.entities <= other.words
            and other.entities <= self.words
            and not any((right, left) in other.directions for left, right in self.directions)
        )


def agree(a: str, b: str) -> bool:
    """True when prompts ``a`` and ``b`` carry the same numbers, dates, identifiers, quoted
    text, negations, languages, units, polar words and named entities (see the module doc)."""
    return signature(a).agrees_with(signature(b))


# -- vocabularies -------------------------------------------------------------------------

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12, "twice": 2, "thrice": 3,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50,
    "hundredth": 100, "thousandth": 1000,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 10**6, "billion": 10**9}
# "which one", "no one", "the one": a pronoun, not a count.
_ONE_AS_PRONOUN_AFTER = {
    "which", "this", "that", "the", "each", "every", "any", "no", "some", "another", "other",
    "last", "next", "right", "wrong", "new", "old", "same",
}  # fmt: skip

_NEGATIONS = {
    "not", "no", "never", "cannot", "without", "none", "nothing", "nobody", "nowhere",
    "neither", "nor", "dont", "doesnt", "isnt", "cant", "wont", "didnt", "arent", "shouldnt",
}  # fmt: skip
_DIRECTION_MARKERS = {"to", "into", "from", "than", "vs", "versus", "over"}
# Skipped when looking for the content word next to a direction marker.
_ARTICLES = {"a", "an", "the", "my", "your", "our", "their", "this", "that", "these", "those"}
_RELATIVE_DAYS = {"today", "tomorrow", "yesterday", "tonight"}

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
}  # fmt: skip

_LANGUAGES = {
    # programming
    "python": "python", "rust": "rust", "javascript": "javascript",
    "js": "javascript", "nodejs": "javascript", "typescript": "typescript", "java": "java",
    "golang": "go",
    "ruby": "ruby", "php": "php", "swift": "swift", "kotlin": "kotlin", "scala": "scala",
    "haskell": "haskell", "sql": "sql", "bash": "bash", "shell": "bash", "perl": "perl",
    "lua": "lua", "dart": "dart", "elixir": "elixir", "erlang": "erlang", "julia": "julia",
    "matlab": "matlab", "fortran": "fortran", "cobol": "cobol", "ocaml": "ocaml",
    "clojure": "clojure", "zig": "zig", "powershell": "powershell", "cpp": "c++",
    "cplusplus": "c++", "csharp": "c#", "fsharp": "f#", "html": "html", "css": "css",
    # natural
    "english": "english", "french": "french", "spanish": "spanish", "german": "german",
    "italian": "italian", "portuguese": "portuguese", "dutch": "dutch", "russian": "russian",
    "chinese": "chinese", "mandarin": "chinese", "japanese": "japanese", "korean": "korean",
    "arabic": "arabic", "hindi": "hindi", "turkish": "turkish", "polish": "polish",
    "swedish": "swedish", "greek": "greek", "hebrew": "hebrew",
}  # fmt: skip
_UNIT_WORDS = {
    "km": "km", "kms": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km",
    "kilometres": "km", "mile": "mi", "miles": "mi", "mi": "mi", "meter": "m",
    "meters": "m", "metre": "m", "metres": "m", "cm": "cm", "centimeters": "cm",
    "centimetres": "cm", "mm": "mm", "millimeters": "mm", "millimetres": "mm", "ft": "ft",
    "foot": "ft", "feet": "ft", "inch": "in", "inches": "in", "yard": "yd", "yards": "yd",
    "kg": "kg", "kgs": "kg", "kilogram": "kg", "kilograms": "kg", "gram": "g",
    "grams": "g", "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "oz": "oz",
    "ounce": "oz", "ounces": "oz", "celsius": "c", "centigrade": "c", "fahrenheit": "f",
    "kelvin": "k", "liter": "l", "liters": "l", "litre": "l", "litres": "l", "gallon": "gal",
    "gallons": "gal", "ml": "ml", "usd": "usd", "dollar": "usd", "dollars": "usd",
    "eur": "eur", "euro": "eur", "euros": "eur", "gbp": "gbp", "sterling": "gbp",
    "yen": "jpy", "jpy": "jpy", "mph": "mph", "kph": "kph", "kmh": "kph", "bytes": "b",
    "kb": "kb", "mb": "mb", "gb": "gb", "tb": "tb", "kilobytes": "kb", "megabytes": "mb",
    "gigabytes": "gb", "terabytes": "tb", "seconds": "s", "minutes": "min", "hours": "h",
    "days": "d", "weeks": "wk", "months": "mo", "years": "y", "ms": "ms",
    "milliseconds": "ms",
}  # fmt: skip
_POLAR = {
    "ascending": "asc", "asc": "asc", "increasing": "asc", "descending": "desc",
    "desc": "desc", "decreasing": "desc", "min": "min", "minimum": "min", "smallest": "min",
    "lowest": "min", "least": "min", "fewest": "min", "cheapest": "min", "max": "max",
    "maximum": "max", "largest": "max", "biggest": "max", "highest": "max", "most": "max",
    "before": "before", "after": "after", "above": "above", "below": "below",
    "increase": "increase", "decrease": "decrease", "encrypt": "encrypt",
    "decrypt": "decrypt", "encode": "encode", "decode": "decode", "compress": "compress",
    "decompress": "decompress", "import": "import", "export": "export", "upload": "upload",
    "download": "download", "buy": "buy", "sell": "sell", "enable": "enable",
    "disable": "disable", "install": "install", "uninstall": "uninstall", "open": "open",
    "close": "close", "true": "true", "false": "false", "add": "add", "remove": "remove",
    "delete": "remove", "worse": "worse", "worst": "worst", "pros": "pros", "cons": "cons",
    "advantages": "pros",
    "disadvantages": "cons", "benefits": "pros", "drawbacks": "cons",
}  # fmt: skip

# Capitalised words that are not names: function words and the verbs and nouns prompts
# usually open with. A first word outside this list counts as an entity (errs to "disagree").
_STOPWORDS = frozenset(
    """
    a an the and or but if then else so as at by for from in into of off on onto out over
    to up with within about above after again against all also am any are be because been
    being below between both can could did do does doing down during each few further had
    has have having he her here hers herself him himself his how i i'm i've i'd i'll is it
    it's its itself just let let's me more most my myself no nor not now only other our
    ours ourselves own same she should some such than that that's their theirs them
    themselves these they this those through too under until very was we were what what's
    when where which while who whom why will would you your yours yourself yourselves
    hey hi hello please thanks thank okay ok yes sure well now also still however
    therefore given suppose imagine assume there here
    summarize summarise summary give write compose explain tell show list describe create
    generate make translate convert compare find calculate compute help draft rewrite
    rephrase fix refund cancel sort reverse check send book is are was were can could would
    should do
    does did will shall may might must have has how what why when where which who whose
    whats hows wheres whos is's name define implement build design outline provide suggest
    recommend review analyze analyse evaluate identify determine estimate count add remove
    delete update change edit format parse read open close run start stop set get put use
    using need want looking trying try i'd i'm i've my our we let's quick brief short
    simple detailed step steps way ways best better good great new old first last next
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# -- patterns -----------------------------------------------------------------------------

_FENCED = re.compile(r"```.*?(?:```|$)", re.S)
_QUOTED = re.compile(
    r"`([^`\n]+)`"
    r"|\"([^\"\n]+)\""
    r"|“([^”\n]+)”"
    r"|(?<![\w'])'([^'\n]+)'(?![\w'])"
)
_QUOTE_MARKS = re.compile(r"[`\"\u201c']")
_DIGIT = re.compile(r"\d")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Languages whose names are not words: replaced by a word the token loop knows.
_SYMBOL_LANGUAGES = {"c++": "cplusplus", "c#": "csharp", "f#": "fsharp"}
_SYMBOL_LANGUAGE = re.compile(r"(?<![\w+#])(c\+\+|c#|f#)(?![\w+#])", re.I)
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = re.compile(
    r"\b(?P<iso_y>\d{4})[-/](?P<iso_m>\d{1,2})[-/](?P<iso_d>\d{1,2})\b"
    r"|\b(?P<num_a>\d{1,2})/(?P<num_b>\d{1,2})/(?P<num_y>\d{2,4})\b"
    rf"|\b(?P<md_m>{_MONTH})\.?\s+(?P<md_d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<md_y>\d{{4}})\b)?"
    rf"|\b(?P<dm_d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dm_m>{_MONTH})\b\.?"
    r"(?:,?\s+(?P<dm_y>\d{4})\b)?"
    rf"|\b(?P<my_m>{_MONTH})\.?,?\s+(?P<my_y>\d{{4}})\b",
    re.I,
)
_QUARTER = re.compile(
    r"\b[Qq]([1-4])\b|\b(first|second|third|fourth|1st|2nd|3rd|4th)[\s-]+quarter\b", re.I
)
_QUARTER_NUMBER = {"first": "1", "second": "2", "third": "3", "fourth": "4"}
_NOT_FILES = {"e.g", "i.e", "a.m", "p.m"}
_FILE = re.compile(r"(?<![\w.@/-])[\w-]+(?:\.[\w-]+)*\.[A-Za-z][A-Za-z0-9]{0,5}\b")
_ORDINAL_DIGITS = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.I)
_VERSION = re.compile(r"\b[vV](\d+(?:\.\d+)*)\b")
_HEX = re.compile(r"\b(?:0x)?(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,}\b")
_MIXED_ID = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*\b")
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)*(?!\w)")
# Words, and any other mark but a hyphen ("twenty-one"): a mark ends a number in words.
_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|[^\sA-Za-z-]")
_BLANKS = re.compile(r"\s+")


def _number(text: str) -> str:
    """Canonical text of a number: no thousands commas, no trailing zeros."""
    plain = text.replace(",", "")
    if plain.count(".") > 1:
        return plain  # a version: 1.2.3
    try:
        return format(Decimal(plain).normalize(), "f")
    except InvalidOperation:
        return plain


def _cut(pattern: re.Pattern[str], text: str, found: list[str], group: int = 0) -> str:
    """Collect ``pattern``'s matches (or one group of them) and blank them out of ``text``."""

    def take(match: re.Match[str]) -> str:
        found.append(match.group(group))
        return " "

    return pattern.sub(take, text)


def _quotes(text: str, found: list[str]) -> str:
    def take(match: re.Match[str]) -> str:
        found.append(next(group for group in match.groups() if group))
        return " "

    return _QUOTED.sub(take, text)


def _quarters(text: str, found: list[str]) -> str:
    def take(match: re.Match[str]) -> str:
        digit, word = match.groups()
        found.append("q" + (digit or _QUARTER_NUMBER.get(word.lower(), word[:1])))
        return " "

    return _QUARTER.sub(take, text)


def _dates(text: str, found: list[tuple[int, int, int]]) -> str:
    def take(m: re.Match[str]) -> str:
        g = m.groupdict()
        if g["iso_y"]:
            found.append((int(g["iso_y"]), int(g["iso_m"]), int(g["iso_d"])))
        elif g["num_y"]:
            found.append((int(g["num_y"]), -int(g["num_a"]), -int(g["num_b"])))  # m/d or d/m
        elif g["md_m"]:
            found.append((int(g["md_y"] or 0), _MONTHS[g["md_m"].lower()], int(g["md_d"])))
        elif g["dm_m"]:
            found.append((int(g["dm_y"] or 0), _MONTHS[g["dm_m"].lower()], int(g["dm_d"])))
        else:
            found.append((int(g["my_y"]), _MONTHS[g["my_m"].lower()], 0))
        return " "

    return _DATE.sub(take, text)


class _NumberWords:
    """Reads numbers written in words: "three", "twenty-one", "one hundred and five"."""

    __slots__ = ("found", "words")

    def __init__(self, found: list[str]) -> None:
        self.found = found
        self.words: list[str] = []

    def feed(self, word: str) -> bool:
        """Take ``word`` if it is part of a number; "and" only continues one."""
        if word == "and":
            if self.words and self.words[-1] in _SCALES:
                return True
            self.flush()
            return False
        if not (word in _UNITS or word in _SCALES or word in _ORDINALS):
            self.flush()
            return False
        if self.words and word not in _SCALES:
            last = self.words[-1]
            # "three four" is two numbers; "twenty one" and "hundred five" are one.
            tens_then_unit = last in _UNITS and _UNITS[last] % 10 == 0 and _UNITS[last] >= 20
            small = _UNITS.get(word, _ORDINALS.get(word, 0)) < 10
            if last not in _SCALES and not (tens_then_unit and small):
                self.flush()
        self.words.append(word)
        if word in _ORDINALS:
            self.flush()
        return True

    def flush(self) -> None:
        if self.words:
            self.found.append(str(_words_to_number(self.words)))
            self.words = []


def signature(text: str) -> Signature:
    """Extract what :func:`agree` compares from one prompt."""
    # Each pass runs only when the marks it needs are in the text: most prompts have no
    # quotes, URLs or digits, and skipping their passes is most of agree()'s speed.
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    quotes: list[str] = []
    if "```" in text:
        text = _cut(_FENCED, text, quotes)
    if _QUOTE_MARKS.search(text):
        text = _quotes(text, quotes)
    quoted = sorted(_BLANKS.sub(" ", q).strip().casefold() for q in quotes)

    ids: list[str] = []
    if "://" in text or "www." in text:
        text = _cut(_URL, text, ids)
    if "@" in text:
        text = _cut(_EMAIL, text, ids)
    if "+" in text or "#" in text:
        text = _SYMBOL_LANGUAGE.sub(lambda m: f" {_SYMBOL_LANGUAGES[m.group(1).lower()]} ", text)
    has_digits = _DIGIT.search(text) is not None
    dates: list[tuple[int, int, int]] = []
    if has_digits:
        text = _dates(text, dates)
    quarters: list[str] = []
    if has_digits or "uarter" in text:
        text = _quarters(text, quarters)
    if "." in text:
        files: list[str] = []
        text = _cut(_FILE, text, files)
        ids += [f for f in files if f.lower() not in _NOT_FILES]
    numbers: list[str] = []
    if has_digits:
        text = _cut(_ORDINAL_DIGITS, text, numbers, 1)
        text = _cut(_VERSION, text, numbers, 1)
        text = _cut(_HEX, text, ids)
        text = _cut(_MIXED_ID, text, ids)
        text = _cut(_NUMBER, text, numbers)

    negations = 0
    relative_days: set[str] = set()
    languages: list[str] = []
    units: list[str] = []
    polar: set[str] = set()
    entities: set[str] = set()
    words: set[str] = set()
    number_words = _NumberWords(numbers)
    sequence: list[str] = []  # words and "" for marks, to find what a "to" joins
    previous = ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if not token[0].isalpha():
            number_words.flush()
            previous = ""
            sequence.append("")
            continue
        lower = token.lower()
        words.add(lower)
        if lower not in _ARTICLES:
            sequence.append(lower)
        if (lower == "one" and previous in _ONE_AS_PRONOUN_AFTER) or not number_words.feed(lower):
            if lower in _NEGATIONS or lower.endswith("n't"):
                negations += 1
            elif lower in _RELATIVE_DAYS:
                relative_days.add(lower)
            elif lower in _LANGUAGES:
                languages.append(_LANGUAGES[lower])
            elif lower in _UNIT_WORDS:
                units.append(_UNIT_WORDS[lower])
            elif lower in _POLAR:
                polar.add(_POLAR[lower])
            elif token[0].isupper() and lower not in _STOPWORDS:
                entities.add(lower)
        previous = lower
    number_words.flush()

    exact = (
        tuple(sorted(_number(n) for n in numbers)),
        tuple(sorted(quarters)),
        tuple(sorted(dates)),
        tuple(sorted({i.lower().lstrip("#").rstrip(".,;:!?") for i in ids})),
        tuple(quoted),
        negations,
        tuple(sorted(relative_days)),
        tuple(dict.fromkeys(languages)),
        tuple(dict.fromkeys(units)),
        tuple(sorted(polar)),
    )
    return Signature(exact, frozenset(entities), frozenset(words), _directions(sequence))


def _directions(sequence: list[str]) -> frozenset[tuple[str, str]]:
    found = set()
    for i in range(1, len(sequence) - 1):
        if sequence[i] in _DIRECTION_MARKERS:
            left, right = sequence[i - 1], sequence[i + 1]
            if left and right and left not in _STOPWORDS and right not in _STOPWORDS:
                found.add((left, right))
    return frozenset(found)


def _words_to_number(words: list[str]) -> int:
    total = current = 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _ORDINALS:
            value = _ORDINALS[word]
            current = current * value if value >= 100 and current else current + value
        elif word in _SCALES:
            scale = _SCALES[word]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
    return total + current
