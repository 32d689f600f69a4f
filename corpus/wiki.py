"""Plain prose from a MediaWiki XML dump: article selection, a small wiki-markup filter, sentence splitting.

The filter keeps paragraph text and drops everything that is not prose: templates, tables, references,
files, categories, headings, lists, HTML comments and tags. It is meant for a pre-training corpus, not
for rendering: a sentence that loses a templated number is acceptable, leftover markup is not.
"""
import html
import re
import xml.etree.ElementTree as ElementTree

# Link targets with one of these prefixes are not running text (files, categories, other wikis).
NON_TEXT_LINK = re.compile(r"^\s*:?\s*(file|image|media|category|wikipedia|wp|template|help|portal|special|"
                           r"wikt|wiktionary|commons|[a-z]{2,3}(-[a-z]+)?)\s*:", re.IGNORECASE)
DROPPED_ELEMENTS = re.compile(r"<(ref|gallery|math|timeline|score|imagemap|syntaxhighlight|source|pre|chem|hiero|"
                              r"graph|mapframe|noinclude)\b[^>]*?(/>|>.*?</\1\s*>)", re.IGNORECASE | re.DOTALL)
INNERMOST_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
INNERMOST_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
EXTERNAL_LINK = re.compile(r"\[(?:https?:)?//[^\s\]]*\s*([^\]]*)\]")
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "vol", "fig",
                 "c", "ca", "approx", "gen", "col", "lt", "sgt", "rev", "mt", "ft", "inc", "ltd", "co", "u.s",
                 "u.k", "a.d", "b.c", "al", "op", "pp", "ed", "eds", "jan", "feb", "mar", "apr", "jun", "jul",
                 "aug", "sep", "sept", "oct", "nov", "dec"}
INITIALS = re.compile(r"([a-z]\.)*[a-z]")
SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
MIN_SENTENCE_WORDS = 3


def articles(xml_file):
    """``(title, wikitext)`` of every main-namespace, non-redirect page of a dump (file object or path)."""
    for _, element in ElementTree.iterparse(xml_file):
        if element.tag.rsplit("}", 1)[-1] != "page":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child for child in element}
        text = element.find("./{*}revision/{*}text")
        if (fields.get("ns") is not None and fields["ns"].text == "0" and "redirect" not in fields
                and text is not None and text.text and not text.text.lstrip().upper().startswith("#REDIRECT")):
            yield fields["title"].text, text.text
        element.clear()


def remove_nested(pattern, text):
    """Apply ``pattern`` (matching innermost pairs) until nothing changes, then drop unmatched openers/closers."""
    previous = None
    while previous != text:
        previous, text = text, pattern.sub("", text)
    return text


def replace_links(text):
    """``[[target|label]]`` -> label, ``[[target]]`` -> target; file/category/interwiki links vanish."""
    def link_text(match):
        inner = match.group(1)
        if NON_TEXT_LINK.match(inner):
            return ""
        return inner.rsplit("|", 1)[-1]

    previous = None
    while previous != text:
        previous, text = text, INNERMOST_LINK.sub(link_text, text)
    return text


def drop_tables(text):
    """Remove ``{| ... |}`` tables (nested) line by line."""
    kept, depth = [], 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("{|"):
            depth += 1
        elif depth and stripped.startswith("|}"):
            depth -= 1
        elif not depth:
            kept.append(line)
    return "\n".join(kept)


def strip_markup(wikitext):
    """Paragraphs of plain text (a list of strings) from an article's wikitext."""
    text = html.unescape(wikitext) if "&lt;" in wikitext else wikitext
    text = re.sub(r"<!--.*?(-->|$)", "", text, flags=re.DOTALL)
    text = DROPPED_ELEMENTS.sub("", text)
    text = re.sub(r"<ref\b[^>]*>", "", text, flags=re.IGNORECASE)
    text = remove_nested(INNERMOST_TEMPLATE, text)
    text = re.sub(r"\{\{|\}\}", "", text)
    text = drop_tables(text)
    text = replace_links(text)
    text = re.sub(r"\[\[|\]\]", "", text)
    text = EXTERNAL_LINK.sub(r"\1", text)
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"<[^<>]*>", "", text)
    text = re.sub(r"__[A-Z]+__", "", text)
    text = html.unescape(text).replace("\xa0", " ")
    # Consecutive prose lines form one paragraph; blank lines, headings, lists, indents, table rows,
    # leftover template parameters and file/category lines end it and are dropped.
    paragraphs, current = [], []
    for line in text.split("\n") + [""]:
        line = line.strip()
        if line and line[0] not in "=*#:;|!{}" and not line.startswith("----") and not NON_TEXT_LINK.match(line):
            current.append(line)
            continue
        if current:
            paragraph = re.sub(r"\(\s*[,;]?\s*\)", "", " ".join(current))
            paragraph = re.sub(r"\s+([,.;:])", r"\1", paragraph)
            paragraphs.append(re.sub(r"\s{2,}", " ", paragraph).strip())
            current = []
    return paragraphs


def split_sentences(paragraph):
    """Split after . ! ? followed by a capital, digit or quote, except after common abbreviations and initials."""
    sentences, start = [], 0
    for match in SENTENCE_END.finditer(paragraph):
        words = paragraph[start:match.start() + 1].split()
        last = words[-1].lstrip("(\"'[").rstrip(".").lower() if words else ""
        # "Dr.", "e.g.", initials such as "J." or "R.G." do not end a sentence.
        if paragraph[match.start()] == "." and (last in ABBREVIATIONS or INITIALS.fullmatch(last)):
            continue
        sentences.append(paragraph[start:match.end()].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if len(s.split()) >= MIN_SENTENCE_WORDS]


def article_sentences(wikitext):
    return [s for paragraph in strip_markup(wikitext) for s in split_sentences(paragraph)]
