"""What goes wrong in generated text, one detector per fault, each a small pure function over
text already written (and the outline): the writer's streaming guard and the document review
call the same ones, so what the review reports is what the writer prevents.

- *talk*: a sentence about the writing rather than the subject ("This section will cover …",
  "I hope this helps"), or the request echoed back ("I will ask for section 1 of this text");
- *boundary*: the start of something that belongs elsewhere: a heading, "Section 3" /
  "In section 3", another section's title on its own line or run into its text after a colon;
- *repeat*: a sentence said before in the document, or one so like an earlier one that most of
  its word pairs are that sentence's (a loop that changes a word or two each time), a long
  run of words said before, or a sentence opening as two earlier ones did;
- *garbled*: words glued into one ("Baking-A-Simple-Guide-This-Is-The-Key-To_Baking…",
  "ThisIsWhatWeWantToBe…"): a small model's text coming apart;
- *title*: a section that opens by repeating its own title (or another's, as a heading);
  *quote*: one wrapped in quotation marks;
- in an outline: titles alike, and titles or main points about the writing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FAULTS = ("talk", "boundary", "repeat", "garbled", "title", "quote")
LOOP_WORDS = 12  # a run of this many words said before is a loop, even inside a sentence
REPEAT_MIN_WORDS = 4  # shorter sentences ("Water daily.") may recur in good prose
NEAR_MIN_WORDS = 6  # a sentence this long may be a near-repeat of an earlier one ...
NEAR_SHARE = 0.6  # ... when this share of its word pairs were that one's
TITLE_LIKENESS = 0.7  # titles sharing this share of their words are one title twice
OPENING_WORDS = 4  # sentences (of NEAR_MIN_WORDS or more) opening with the same words ...
OPENING_CHARACTERS = 8  # ... (in Chinese, characters) ...
OPENINGS_SAID = 2  # ... this many times before are a loop ("This is what makes …" again)
STEM_WORDS = 3  # sentences of one section (of NEAR_MIN_WORDS or more) opening with the same
STEMS_SAID = 3  # ... three words this many times before in it are a loop ("This special
# bicycle was …", "… is …", "… has …": a bicycle guide of this stop's, eight times in a row)
HEADING_TITLE_WORDS = 3  # another section's title this long, then a colon, is its heading
# words glued by hyphens, underscores or capitals into one this many ("what-you-see-is-what-you-
# get" and "twenty-two-and-a-half-year-old" are seven; a bread guide's "Sour-Doodle-Recipe:-A-
# Guide-A-Key-In-The-World-Of-…", eighteen)
GLUED_WORDS = 8

QUOTES = "\"'“”‘’«»「」『』"
_LEAD = re.compile(rf"^[\s{QUOTES}*_#>\-–—•·]+")
_WORDS = re.compile(r"[\w\u3400-\u9fff]+", re.UNICODE)
_CJK_CHAR = re.compile(r"[\u3400-\u9fff]")
# a sentence ends at . ! ? (and their Chinese forms) with what closes it, or at a line break;
# not at the full stop of an initial or a title ("A.C. Clarke", "e.g.", "Dr."), nor inside a
# number or a word ("3.5", "example.com")
_SHORT = ("[A-Za-z]", "Mr", "Mrs", "Ms", "Dr", "St", "Prof")
_INNER_DOT = "(?:" + "|".join(rf"(?<=\b{a})" for a in _SHORT) + r")\."
_END_DOT = "".join(rf"(?<!\b{a})" for a in _SHORT) + r"\."
# marks of an end followed by a letter or digit ("3.5", "e.g", "piece.:" is an end) end nothing
SENTENCE_BODY = rf"(?:[^.!?。！？\n]|{_INNER_DOT}|[.!?…]+(?=[\"'”’)\]」』]*[^\W_]))*"
SENTENCE_END = rf"(?:{_END_DOT}|[!?。！？…])[.!?。！？…]*[\"'”’)\]」』]*"
_SENTENCE = re.compile(rf"{SENTENCE_BODY}(?:{SENTENCE_END}|\n+|$)")

_DOC = (r"(?:section|paragraph|chapter|essay|article|guide|text|document|post|report|"
        r"outline|instruction|request|prompt|story|tale|poem)")
# the text talking about itself, its plan or the request
_ABOUT_TEXT = [
    rf"\b(?:this|the\s+(?:next|following|previous|last|first|above|current|final)|next|"
    rf"previous|following|above|below|each|every)\s+{_DOC}s?\b",
    r"\b(?:section|paragraph|chapter)\s+(?:\d+|one|two|three|four|five|six|seven|eight|nine|"
    r"ten)\b",
    # a bread guide's sections of this round, each item "… - This topic talks about …"
    r"\bthis topic (?:talks|will (?:be )?(?:talk|discuss|shar|explain|cover|tell)\w*|is going to "
    r"(?:talk|be|cover|tell)|has (?:lots|plenty|a lot) (?:of |more )?(?:ideas|topics|information)|"
    r"provides|covers|explains|is about|has been (?:very |really )?interesting)\b",
    # a quiz on the text after an essay of this round: "What do the text have in common?
    # Provide only 1 answer for each of these questions: … What type of writing is this?"
    r"^what (?:do|does) (?:the|this) text\b", r"\bwhat (?:type|kind) of (?:writing|text) is this\b",
    r"\b(?:answer|provide)\b.{0,40}\b(?:these|the following) questions\b",
    # ... "This has been very interesting, but now …", "Coming soon: Recipe for …"
    r"^this has been (?:very |really )?interesting\b", r"^coming soon:",
    rf"\b(?:in|of|for)\s+(?:my|your)\s+{_DOC}\b",
    r"\bthis (?:particular )?piece\b(?! of)",
    r"^this is (?:a|an|my|the|our) (?:short |quick |brief |simple )?(?:guide|essay|article|"
    r"text|post|report|list|plan|outline|section|paragraph)\b",
    r"^(?:the|this is the) (?:first|second|third|fourth|fifth|next|last|final) (?:point|part)"
    r"\b(?! of)",
    r"\bmy (?:plan|outline)\b(?! (?:was|is|had|for (?:the|a) (?!text|essay|guide)))",
    r"\b(?:\d+|one|two|three|four|five|a few|some) more (?:points?|parts?|sections?|tips?)\b",
    r"^here (?:they|it) (?:are|is)\b", r"^here(?:'s| is| are) (?:the|some|my) (?:\w+ )?points\b",
    r"\bwriting (?:instruction|plan|prompt)s?\b",
    r"\bplain prose\b", r"\bmy (?:own )?(?:paragraphs?|sentences|writing)\b",
    r"\b(?:sending|send) you\b",
    r"\b(?:i|we) (?:have|want|need|am going) to tell you\b",
    r"^you(?:'re| are) (?:absolutely |quite |so )?(?:right|correct)\b",
    r"\bglad you (?:brought|asked)\b",
    r"\byou(?:'ve| have) (?:already )?(?:told|asked|given|shown) (?:us|me)\b",
    r"\bhere(?:'s| is) (?:a|an|the|my) (?:\w+ )?(?:version|continuation|rewrite|example of how)\b",
    r"\bthe (?:section|paragraph|chapter)s?\b(?! of)",
    r"\b(?:what|which) (?:section|paragraph|chapter)s?\b",
    r"\bin the (?:first|second|third|final|last|next) part\b(?! of)",
    r"\bhere(?:'s| is| are)\s+(?:the|a|an|my|your|some)\s+(?:\w+\s+){0,2}"
    r"(?:section|paragraph|essay|article|guide|text|version|draft|report|response|sample|"
    r"answer|outline|plan|piece(?! of))s?\b",
    r"\bwhat (?:i|we)(?:'ve| have)? (?:prepared|written|done) so far\b",
    r"\bthe (?:report|essay|article|guide|document|post|text|story|tutorial|newsletter) "
    r"(?:will |should |then |is going to )*(?:cover|begin|start|end|conclude|discuss|provide|"
    r"explore|include|describe|focus|look at|move)s?\b",
    # a coffee guide's: "… the guide is going to have all kinds of ways", "The most important
    # part of the whole article is …", "A great first step in the plan of a brewing guide"
    r"\bthe (?:essay|article|guide|tutorial|newsletter) is going to have\b(?! to\b)",
    r"\bthe (?:whole|entire) (?:essay|article|blog post|tutorial|newsletter)\b",
    # the writer's prompt heads the outline "Plan:"; `make demo`'s sections began "The plan: 1.
    # To keep your vegetable garden, …", "The plan: First of all, …"
    r"^(?:the |my |our )?plan:",
    # a lighthouse story's outline: "This is the main point that you need" as a title
    r"^this is the main point\b",
    r"\bthe plan (?:of|for) (?:a|an|the|this|my) (?:[\w-]+ )?(?:essay|article|guide|section|"
    r"chapter|outline)\b",
    r"\b(?:your|my) (?:\w+ )?(?:response|answer|reply)\b",
    r"\b(?:an|the) (?:earlier|previous|last) (?:answer|response|reply)\b", r"^question:",
    r"\bquotation marks\b", r"\bwriting task\b", r"\bmy readers\b",
    r"\b(?:this|my|the) blog post\b", r"\b(?:on|in) this blog\b",
    r"\bmy (?:\d{4} )?(?:article|essay)\b",  # "The planning process for my 2019 article"
    r"^your (?:plan|outline|request|instructions?) (?:is|are|was|looks?) (?:well|very|really|"
    r"so|clear|great|excellent|good|perfect)\b",
    r"\bi(?:'ll| will) (?:respond|reply|answer)\b",
    r"\bi(?:'ll| will) provide (?:this|the|my|a|an) (?:plan|outline|response|answer|text)\b",
    r"\b(?:i|we)(?:'ll| will|'d| would) be (?:happy|glad) to\b",
    r"\bwhat i(?:'m| am) trying to say\b",
    r"\bas i (?:mentioned|said|wrote) (?:before|earlier|above)\b",
    r"\bi (?:was|have been|am|'ve been|'m) (?:told|asked) to (?:write|talk) about\b",
    r"\b(?:i'd|i would) like to (?:talk|write) about\b",
    r"\bof the (?:instruction|request|prompt|plan|outline)\b",
    r"\b(?:you|i) (?:cannot|can't|must not|may not) write\b",
    r"\b(?:\d+|two|three|four|five) (?:paragraphs|sentences)\b",
    r"\bthe writing (?:is|was|will)\b", r"\bthe subject of the writing\b",
    r"\bhow to write (?:a|an|the|your) (?:report|essay|article|guide|story|post|newsletter)\b",
    r"^p\.\s?s\.", r"\bmarkdown (?:divider|format(?:ting)?)\b",
    r"\bparts? of (?:a|the|my|this) (?:[\w-]+ )?response\b",
    r"^(?:the|this|my) (?:text|response) (?:should|must|will|needs to)\b",
    r"^here(?:'s| is) how (?:it|this|they) (?:can|could|should|will) be (?:organi[sz]ed|"
    r"structured|written|laid out)\b",
    r"\bword (?:count|limit)\b", r"\b\d+\s+words\b",
    rf"\b\d[\d,]*-word {_DOC}s?\b", r"\((?:section|paragraph)s?\)",
    r"\badd (?:a|another|one more) (?:section|paragraph|chapter)\b",
    r"\byou are an? (?:excellent|great|good|skilled) writer\b", r"\bwriting assistant\b",
    r"\banswer to your questions?\b", r"\bhere(?:'s| is) the answer\b",
    r"\bthe answer i(?:'ve| have| am)\b",
    r"(?:本|这一|这个|下一|上一|每一?)(?:节|段|章|篇)",
    r"第[一二三四五六七八九十百\d]+(?:节|段|章)",
    r"本文", r"以下是", r"写作(?:指令|要求|任务)", r"大纲", r"字数", r"写一篇",
    r"[\d一二三四五六七八九十百千]+字的",
]
# the writer talking to the person who asked
_TO_ASKER = [
    r"\b(?:i|we)(?:'ll|'m|'ve|'d| will| would| am| have| shall| can)?\s+(?:(?:now|also|then|"
    r"next|first|already|just|start|begin|going to)\s+)?(?:write|written|writing|cover|discuss|"
    r"describe|outline|"
    r"elaborate|summari[sz]e|delve|excited)\b",
    r"\b(?:i|we) (?:tried|wanted|aimed|hoped) to (?:capture|convey|add|show|write|include|"
    r"highlight|make sure|make it)\b",
    r"\b(?:i|we) asked for\b",
    r"\b(?:i(?:'ll| will|'m going to| am going to| am|'m)|let me) (?:now |just |also )?(?:tell|"
    r"show|give|telling|showing|giving) you\b",
    # "I'm going to talk a little bit more about …", "I'll be talking about this in the future"
    r"\b(?:i|we)(?:'ll| will|'m going to| am going to|'re going to| are going to|'ll be| will be"
    r")\s+(?:just |now |also )?talk(?:ing)? (?:a little |a bit |a little bit )?(?:more )?about\b",
    # a guitar guide's of this round: "This is what I'm asking for: You have to …", "I hope you
    # can understand how important …"
    r"^this is (?:what|everything|all) (?:i|we)(?:'m| am|'re| are) asking (?:for|you)\b",
    r"\bi hope (?:that )?you (?:can |will |'ll )?understand (?:how|why|what|that|this|me)\b",
    r"\b(?:i|we)(?:'ll| will|'m going to| am going to) (?:now |just |also )?share (?:it|this|"
    r"something) with (?:you|everyone|everybody)\b",
    rf"\b(?:i|we) (?:will|can|could|'ll)(?: do is)? help you (?:create|write|make) (?:a|an|the|"
    rf"your) {_DOC}\b",
    r"\blet me\b", r"\bhope (?:this|that|it)\b(?: \w+)? (?:helps|helped|inspires|inspired|was|is|"
    r"has)\b", r"\bfeel free\b",
    r"\b(?:happy|glad|ready|here) to (?:help|assist|guide you)\b", r"\bwould you like me to\b",
    r"\bi(?:'m| am) going to help you\b",
    r"\bhelp you with\b", r"\bhow (?:can|may) i (?:help|assist)\b", r"\bassist you\b",
    r"\bas an ai\b", r"\bplease (?:go ahead|share)\b",
    r"\b(?:i|we)(?:'m| am|'re| are) (?:so |really |very )?glad (?:that )?(?:you|i could|we "
    r"could|to have)\b", r"\byou(?:'re| are) absolutely right\b", r"\byour writing\b",
    r"\byou(?:'d| would) like me to\b",
    r"\b(?:i|we)(?:'m| am|'re| are|'ll be| will be) (?:always )?here for you\b",
    r"\blanguage model\b", r"\byou (?:asked|requested|wanted)\b",
    r"\byour (?:request|instruction|prompt)\b", r"\bas requested\b", r"\bthank you for\b",
    r"\bplease (?:let|note)\b", r"^(?:sure|certainly|of course|okay|absolutely|yes)\b[,!.]",
    r"\b(?:i|we)(?:'ll| will| can) make (?:it|this) (?:shorter|longer)\b",
    r"^the next (?:one )?is to\b",
    r"我(?:将|会|来|已经|已)(?:为您|为你|给您|给你)?(?:写|撰写|完成|继续)",
    r"希望(?:这|以上|本文|对您|对你)",
    r"如有(?:需要|问题|疑问)", r"请(?:告诉|让)我", r"[您你]的(?:要求|请求)",
]
_META = re.compile("|".join(f"(?:{p})" for p in _ABOUT_TEXT + _TO_ASKER), re.IGNORECASE)
# a heading restated with another in brackets, a line of its own: the plan listed instead of
# written ("How to Water Your Garden: (Draining Your Garden)", make demo, this round)
# (a word's hyphens only between its letters, a spaced dash between words: each way of reading
# a line is one, so that "Baking-A-Simple-Guide-This-Is-The-Key-…" cannot take the matcher
# exponential time, as it did, hanging a job)
_TITLE_WORD = r"[A-Z0-9][\w'’]*(?:-[\w'’]+)*"
_TITLE_WORDS = rf"{_TITLE_WORD}(?:(?:[ ,&/]+|\s+[-–]\s+)(?:{_TITLE_WORD}|a|an|and|as|at|by|for|" \
    r"from|in|of|on|or|the|to|with|your|our|my)\b)*"
_HEADING_LIST = re.compile(rf"^(?:\d{{1,3}}[.)]\s+)?{_TITLE_WORDS}\s*[:,]+"
                           rf"(?:\s*\({_TITLE_WORDS}\))+[\s.]*$")
_ASKER = re.compile("|".join(f"(?:{p})" for p in _TO_ASKER), re.IGNORECASE)

# a line that starts something else: a heading, a rule, "Section 3", "第三节", "In section 3"
_HEADING = re.compile(
    r"^\s*(?:#{1,6}\s|\*\*[^*\n]{1,80}\*\*\s*$|(?:\*\s*){3,}$|(?:-\s*){3,}$|(?:_\s*){3,}$|"
    r"title\s+\d+\b|(?:in\s+)?(?:section|part|chapter|paragraph)\s+(?:title\s+)?"
    r"(?:\d+|[ivx]+\b|one|two|three|four|five|six|seven|eight|nine|ten)\b|第[一二三四五六七八九十\d]+"
    r"(?:节|部分|章|段))", re.IGNORECASE)
_NUMBERED = re.compile(r"^\s*(?:\d+[.):]|[ivx]+[.)])\s*", re.IGNORECASE)
_LIST_NUMBER_ENDS = re.compile(r"\n[ \t]*\d{1,3}[.)]$")  # a line so far only its list number
_STEP = re.compile(r"^(?:step|part|point)\s+\d+\s*[:.)-]\s*", re.IGNORECASE)  # "Step 1: …"
_CODE = re.compile(r"`[^`]*`?")  # inline code, which may glue words as it likes
_GLUE = re.compile(r"[-_]+|(?<=[a-z'’])(?=[A-Z])")  # where glued words meet
# addresses, paths and code: no words glued ("my-best-bread.com", "a_b_c()")
_NOT_PROSE = re.compile(r"://|^\W*www\.|[/\\@=<>#]|\(\)|\.(?:com|org|net|io|html?|py|md|txt)\b",
                        re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Fault:
    """One fault in a text: what kind (one of ``FAULTS``), where it starts (a character
    offset: the review's, where the sentence starts; the guard's, where the text before it
    ends, so that a cut there takes the space before it too), and that sentence."""

    kind: str
    start: int
    text: str


def normal_words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, punctuation dropped; each Chinese character a
    word, as LongBench-Write counts them."""
    words = _WORDS.findall(text.lower())
    if not _CJK_CHAR.search(text):
        return words
    out: list[str] = []
    for word in words:
        out += _CJK_CHAR.findall(word) if _CJK_CHAR.search(word) else [word]
    return out


def sentences(text: str) -> list[tuple[int, str]]:
    """Each sentence of ``text`` with its offset; a line break ends one too; blank ones left
    out."""
    return [(m.start(), m.group()) for m in _SENTENCE.finditer(text) if m.group().strip()]


def _bare(sentence: str) -> str:
    """A sentence without the marks around its start (quotes, bullets, emphasis)."""
    return _LEAD.sub("", sentence).strip()


def is_talk(sentence: str) -> bool:
    """Whether ``sentence`` talks about the writing, or to the person who asked, instead of
    about the subject."""
    bare = _STEP.sub("", _bare(sentence).replace("’", "'"))
    return bool(_META.search(bare) or _HEADING_LIST.match(bare))


def glued(chunk: str) -> int:
    """How many words ``chunk`` (no spaces in it) glues into one (0 for an address, a path or
    code); the stops and colons inside it divide it first ("Recipe:-A-Guide-…")."""
    if _NOT_PROSE.search(chunk):
        return 0
    chunk = chunk.strip(".,;:!?\"'()[]*")
    return max(sum(1 for part in _GLUE.split(piece) if _LETTER.search(part))
               for piece in re.split(r"[.:]", chunk))


def is_garbled(text: str, *, streaming: bool = False) -> bool:
    """Whether ``text`` (a sentence) glues ``GLUED_WORDS`` or more words into one, inline code
    aside. ``streaming``: ``text`` is the start of one, whose last chunk may grow into an
    address ("…-every-day" + ".com"): that one counts at twice as many."""
    chunks = _CODE.sub(" ", text).split()
    if streaming and chunks and not text[-1].isspace():
        growing = chunks.pop()
        if glued(growing) >= 2 * GLUED_WORDS:
            return True
    return any(glued(chunk) >= GLUED_WORDS for chunk in chunks)


def _title_words(title: str) -> list[str]:
    return normal_words(_NUMBERED.sub("", title))


def likeness(a: str, b: str) -> float:
    """How alike two titles are: the share of the shorter one's words that the other has."""
    wa, wb = set(_title_words(a)), set(_title_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


def is_heading(line: str) -> bool:
    """Whether ``line`` (or the start of one) is a heading or names a section: "## …",
    "Section 3", "In section 3", "第三节"."""
    return bool(_HEADING.match(line))


def is_boundary(line: str, titles: Iterable[str]) -> bool:
    """Whether ``line`` (the start of a line of a section) starts something else: a heading,
    "Section N", or one of the outline's ``titles`` as a line of its own."""
    if is_heading(line):
        return True
    bare = normal_words(_NUMBERED.sub("", _bare(line)))
    if not bare:
        return False
    for title in titles:
        words = _title_words(title)
        if words and len(bare) <= len(words) + 2 and bare[:len(words)] == words:
            return True
        if opens_as_heading(line, title):
            return True
    return False


def opens_as_heading(text: str, title: str) -> bool:
    """Whether ``text`` opens with ``title`` (of ``HEADING_TITLE_WORDS`` words or more) and a
    colon: a heading run into its text ("Starting a Vegetable Garden: Here's how …")."""
    words = _title_words(title)
    if len(words) < HEADING_TITLE_WORDS:
        return False
    pattern = r"\W*".join(re.escape(w) for w in words)
    return bool(re.match(rf"(?:\(?\d+[.):]\s*)?{pattern}\s*:", _bare(text).lower()))


def title_run_in(text: str, title: str) -> int:
    """The length of the heading ``text`` opens with where it is ``title`` run into the text
    after a colon ("1. Growing Your Own Vegetables: This is …"), list number and marks with
    it; 0 where it does not open so."""
    words = _title_words(title)
    if not words:
        return 0
    pattern = r"\W*".join(re.escape(w) for w in words)
    found = re.match(rf"(?:{_LEAD.pattern})?(?:\(?\d+[.):]\s*)?{pattern}\W*?:[ \t]*(?=\S)", text,
                     re.IGNORECASE)
    return found.end() if found else 0


def opens_with_title(text: str, title: str, whole: bool = True) -> bool:
    """Whether a section's ``text`` starts by repeating its ``title``: the title's words, then
    a break (a colon, a comma, a full stop, a dash, a line end) or, where ``text`` is
    ``whole`` (not the start of a stream), nothing more."""
    words = _title_words(title)
    if not words:
        return False
    end = r"\s*(?:[:.,!?\-–—\n\"”]|$)" if whole else r"\s*[:.,!?\-–—\n\"”]"
    pattern = r"\W*".join(re.escape(w) for w in words)
    return bool(re.match(rf"(?:\(?\d+[.):]\s*)?{pattern}{end}", _bare(text).lower()
                         if whole else _LEAD.sub("", text).lower()))


def opens_with_quote(text: str) -> bool:
    """Whether a section's text opens with a quotation mark."""
    stripped = text.lstrip()
    return bool(stripped) and stripped[0] in QUOTES


def sentence_key(sentence: str) -> tuple[str, ...] | None:
    """What makes two sentences the same one (their words), or None for one too short to
    count."""
    words = normal_words(sentence)
    return tuple(words) if len(words) >= REPEAT_MIN_WORDS else None


def stem(sentence: str) -> tuple[str, ...] | None:
    """A sentence's first ``STEM_WORDS`` words, or None for a short one or one in Chinese
    (whose words are characters)."""
    key = sentence_key(sentence)
    if not key or len(key) < NEAR_MIN_WORDS or _CJK_CHAR.match(key[0]):
        return None
    return key[:STEM_WORDS]


class Stems(Counter[tuple[str, ...]]):
    """How many sentences of a section opened with each stem (:func:`stem`)."""

    def add(self, sentence: str) -> None:
        if (said := stem(sentence)) is not None:
            self[said] += 1

    def loops(self, sentence: str) -> bool:
        """Whether ``sentence`` opens as ``STEMS_SAID`` sentences before it did."""
        said = stem(sentence)
        return said is not None and self[said] >= STEMS_SAID


def opening(words: Sequence[str]) -> tuple[str, ...]:
    """A sentence's first ``OPENING_WORDS`` words (``OPENING_CHARACTERS`` in Chinese)."""
    n = OPENING_CHARACTERS if words and _CJK_CHAR.match(words[0]) else OPENING_WORDS
    return tuple(words[:n])


def ngrams(words: Sequence[str], n: int = LOOP_WORDS) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class Memory:
    """What a document has said so far: its sentences (and, by word pair, which sentences
    had each pair) and its runs of ``LOOP_WORDS`` words, to tell a repeat from something
    new."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.sentences: set[tuple[str, ...]] = set()
        self.runs: set[tuple[str, ...]] = set()
        self.pairs: dict[tuple[str, ...], set[int]] = {}  # word pair -> the sentences with it
        self.openings: Counter[tuple[str, ...]] = Counter()  # sentences' first words
        self._said = 0  # sentences of NEAR_MIN_WORDS or more said so far
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        for _, sentence in sentences(text):
            key = sentence_key(sentence)
            if key:
                self.sentences.add(key)
            if key and len(key) >= NEAR_MIN_WORDS:
                for pair in ngrams(key, 2):
                    self.pairs.setdefault(pair, set()).add(self._said)
                self._said += 1
                self.openings[opening(key)] += 1
        self.runs |= ngrams(normal_words(text))

    def repeats(self, sentence: str, before: Sequence[str] = ()) -> bool:
        """Whether ``sentence`` (with the words ``before`` it in its section) repeats what
        was said: as a whole, nearly (``near``), by a run of ``LOOP_WORDS`` words, or by an
        opening said ``OPENINGS_SAID`` times."""
        key = sentence_key(sentence)
        return (bool(key and (key in self.sentences or self.near(key)))
                or self.repeats_run(sentence, before)
                or self.openings_said(sentence) >= OPENINGS_SAID)

    def openings_said(self, sentence: str) -> int:
        """How many sentences said so far opened as ``sentence`` does (0 for a short one)."""
        key = sentence_key(sentence)
        return self.openings[opening(key)] if key and len(key) >= NEAR_MIN_WORDS else 0

    def near(self, words: Sequence[str]) -> bool:
        """Whether a sentence of ``words`` is nearly one said before: ``NEAR_SHARE`` of its
        word pairs were one earlier sentence's ("He smiled at the light again and said" after
        "He smiled and said … a light again")."""
        if len(words) < NEAR_MIN_WORDS:
            return False
        own = ngrams(words, 2)
        shared = Counter(said for pair in own for said in self.pairs.get(pair, ()))
        return bool(shared) and max(shared.values()) >= NEAR_SHARE * len(own)

    def repeats_run(self, fragment: str, before: Sequence[str] = ()) -> bool:
        """Whether ``fragment`` (a sentence or the start of one, after the words ``before``)
        holds a run of ``LOOP_WORDS`` words said before."""
        words = [*before[-(LOOP_WORDS - 1):], *normal_words(fragment)]
        return any(run in self.runs for run in ngrams(words))

    def ends_in_run(self, words: Sequence[str], new: int = 2) -> bool:
        """Whether one of the runs of ``LOOP_WORDS`` words that end in the last ``new`` of
        ``words`` was said before (the check as words stream in, each once)."""
        n = len(words)
        return any(tuple(words[end - LOOP_WORDS:end]) in self.runs
                   for end in range(max(LOOP_WORDS, n - new + 1), n + 1))


def section_faults(text: str, index: int, titles: Sequence[str],
                   memory: Memory | None = None, *, boundaries: bool = True) -> list[Fault]:
    """Every fault of section ``index`` (from 1) of a document whose outline has ``titles``;
    ``memory`` holds what the sections before it said (it is added to as the text is read).
    Without ``boundaries`` (a one-pass document, with headings of its own) a heading is no
    fault."""
    memory = memory if memory is not None else Memory()
    faults: list[Fault] = []
    if opens_with_quote(text):
        faults.append(Fault("quote", 0, text.lstrip()[:80]))
    if opens_with_title(text, titles[index - 1]) or any(
            opens_as_heading(text, t) for i, t in enumerate(titles, 1) if i != index):
        faults.append(Fault("title", 0, sentences(text)[0][1].strip() if text.strip() else ""))
    others = [t for i, t in enumerate(titles, 1) if i != index]
    said: list[str] = []
    stems = Stems()
    for offset, sentence in sentences(text):
        kind = sentence_fault(sentence, boundaries and starts_line(text, offset), others,
                              memory, said, titles[index - 1]) or (
            "repeat" if stems.loops(sentence) else None)
        if kind:
            faults.append(Fault(kind, offset, sentence.strip()))
        memory.add(sentence)
        stems.add(sentence)
        said += normal_words(sentence)
    return faults


def starts_line(text: str, offset: int) -> bool:
    """Whether ``offset`` in ``text`` is at the start of a line other than the first, or just
    after the list number that starts one ("2. Planting and Care: …")."""
    before = _LIST_NUMBER_ENDS.sub("\n", text[:offset].rstrip(" \t"))
    return before.endswith("\n") and bool(before.strip())


def sentence_fault(sentence: str, at_line_start: bool, other_titles: Sequence[str],
                   memory: Memory, before: Sequence[str] = (), own_title: str = "") -> str | None:
    """The fault of one finished sentence, if it has one (in the order the review counts:
    boundary, garbled, talk, repeat). A line that opens with another section's title is a
    boundary, and so is one that opens with the section's ``own_title`` as a heading run into
    its text: the section starting over, or the plan listed ("2) How Public Libraries Matter: A
    History of Change: In a world …", an essay read at the end of a round)."""
    if at_line_start and (is_boundary(sentence, other_titles)
                          or bool(own_title) and opens_as_heading(sentence, own_title)):
        return "boundary"
    if is_garbled(sentence):
        return "garbled"
    if is_talk(sentence):
        return "talk"
    if memory.repeats(sentence, before):
        return "repeat"
    return None


@dataclass(frozen=True)
class OutlineProblem:
    """Something wrong with one section of an outline: a ``title`` alike to an earlier
    section's (``like`` its index, from 1), or ``talk``: a title or main point about the
    writing rather than the subject, or a placeholder."""

    index: int
    kind: str
    like: int | None = None

    def describe(self, titles: Sequence[str]) -> str:
        title = titles[self.index - 1]
        if self.kind == "title" and self.like is not None:
            return (f"section {self.index}'s title '{title}' is section {self.like}'s again "
                    f"('{titles[self.like - 1]}')")
        return f"section {self.index} ('{title}') is about the writing, not the subject"


# an outline's title about writing such a text: the instruction said back ("Every time you write
# a guide it's important", make demo); in prose, writing may be the subject
_WRITING_A_TEXT = re.compile(r"\b(?:write|writes|writing|wrote) (?:a|an|the|this|your|my) "
                             r"(?:[\w-]+ )?(?:guide|essay|article|blog|post|report|section|"
                             r"paragraph)s?\b", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\[[^\]]*\]|\{[^}]*\}|<[^>]*>|^\s*(?:(?:section|part|step|"
                          r"chapter|paragraph)\s*(?:title\s*)?|title\s*)\d*\s*$", re.IGNORECASE)


# a title that is the request itself ("Write a story about a lighthouse keeper who finds …") or
# names the answer's format ("How to write a JSON-formatted response"): a lighthouse story's
REQUEST_VERB = r"(?:please\s+)?(?:write|compose|create|draft|generate|give)"
_REQUEST_OPENING = re.compile(rf"^{REQUEST_VERB}\b", re.IGNORECASE)
_ANSWER_FORMAT = re.compile(r"\bjson[- ]format(?:ted)?\b", re.IGNORECASE)


def echoes(title: str, instruction: str) -> bool:
    """Whether ``title`` says the ``instruction`` back (a request with ``TITLE_LIKENESS`` of
    the instruction's words) or names the answer's format, JSON, that the instruction does
    not."""
    if _ANSWER_FORMAT.search(title) and not re.search(r"\bjson\b", instruction, re.IGNORECASE):
        return True
    asked = set(_title_words(instruction))
    said = asked & set(_title_words(title))
    return bool(_REQUEST_OPENING.match(title)) and bool(asked) and (
        len(said) >= TITLE_LIKENESS * len(asked))


# a title of no words but a list number or marks ("3", "4.", "—"; a year such as "1984" stays),
# or the answer's JSON from a string's closing quote on ("', 'content'", a lighthouse story's)
_UNTITLED = re.compile(r"^[\W_]*(?:\d{1,2}[\W_]*)?$|^\s*['\"]\s*[,:]")


def outline_problems(titles: Sequence[str], main_points: Sequence[str],
                     instruction: str = "") -> list[OutlineProblem]:
    """What is wrong with an outline: titles alike, a title about the writing (or the
    ``instruction`` said back), a main point that talks to the person who asked (a main point
    says what its section does, so "this section covers …" is its job), or a placeholder such
    as "[Section 1]"."""
    problems = []
    for i, (title, point) in enumerate(zip(titles, main_points, strict=True), 1):
        bare_title = _NUMBERED.sub("", title)
        like = next((j for j in range(1, i) if likeness(title, titles[j - 1]) >=
                     TITLE_LIKENESS), None)
        if like is not None:
            problems.append(OutlineProblem(i, "title", like))
        elif (_PLACEHOLDER.search(bare_title) or _PLACEHOLDER.search(point)
              or is_talk(bare_title) or _WRITING_A_TEXT.search(bare_title)
              or _ASKER.search(point) or _UNTITLED.match(bare_title)
              or instruction and echoes(bare_title, instruction)):
            problems.append(OutlineProblem(i, "talk"))
    return problems
