"""The grader's words in the student's language: one catalogue per language (`labkit/i18n/<lang>.yaml`).

English is the source (the graded tests' docstrings and messages); a catalogue maps each graded
test to its requirement line and the common feedback phrases to their translation. The language is
`LABKIT_LANG` (`ru`, `en`), else the locale (`LC_ALL`, `LC_MESSAGES`, `LANG` starting with `ru`).
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ENGLISH = "en"
LANGUAGES = (ENGLISH, "ru")
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
THOUSANDS = re.compile(r"(?<=\d)[,\u00a0\u202f ](?=\d{3}(?!\d))")  # 1,000 and 1 000 are 1000
FRAME_EXPECTED = re.compile(r"(?m)^(\s*)expected ")
FRAME_GOT = re.compile(r"; got ")


def language(environ: dict | None = None) -> str:
    """The language the grader speaks: LABKIT_LANG, else the locale; English unless it is Russian."""
    environ = os.environ if environ is None else environ
    for variable in ("LABKIT_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = (environ.get(variable) or "").strip().lower()
        if value:
            return next((lang for lang in LANGUAGES if value.startswith(lang)), ENGLISH)
    return ENGLISH


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict:
    """{"words": {...}, "requirements": {lab: {test: line}}, "feedback": {english: translation}}."""
    if lang == ENGLISH:
        return {"words": {}, "requirements": {}, "feedback": {}}
    data = yaml.safe_load((HERE / f"{lang}.yaml").read_text(encoding="utf-8")) or {}
    return {key: data.get(key) or {} for key in ("words", "requirements", "feedback")}


def word(english: str, lang: str) -> str:
    """A word of the grader's frame (PASS, TOTAL, ...) in `lang`."""
    return catalogue(lang)["words"].get(english, english)


def sayer(lang: str):
    """word() bound to a language: say("TOTAL")."""
    return lambda english: word(english, lang)


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """(test function, parameter id) of a pytest node id or a bare test name."""
    name = nodeid.rsplit("::", 1)[-1]
    match = re.fullmatch(r"(.+?)\[(.*)\]", name)
    return (match[1], match[2]) if match else (name, "")


def translated_requirement(lab: str, test: str, lang: str) -> str | None:
    """The catalogue's requirement line of a graded test (None: not translated)."""
    return (catalogue(lang)["requirements"].get(lab) or {}).get(test)


def requirement(lab: str, nodeid: str, english: str, lang: str) -> str:
    """A graded item's requirement line in `lang`, its parameter (e.g. "redis") appended."""
    test, param = split_nodeid(nodeid)
    line = (translated_requirement(lab, test, lang) or english).strip()
    return f"{line} [{param}]" if param and not line.endswith(f"[{param}]") else line


def feedback(text: str, lang: str) -> str:
    """A feedback message in `lang`: its frame ("expected …; got …") and the catalogue's phrases."""
    if lang == ENGLISH or not text:
        return text
    text = FRAME_EXPECTED.sub(lambda m: f"{m[1]}{word('expected', lang)}: ", text)
    text = FRAME_GOT.sub(f"; {word('got', lang)}: ", text)
    phrases = catalogue(lang)["feedback"]
    for english in sorted(phrases, key=len, reverse=True):
        text = text.replace(english, phrases[english].strip())
    return text


def numbers(text: str) -> list[str]:
    """The numbers of a text ("0,5" is 0.5, "1,000" and "1 000" are 1000): a translation keeps every threshold."""
    return sorted(n.replace(",", ".") for n in NUMBER.findall(THOUSANDS.sub("", text)))


def problems(requirements, lang: str) -> list[str]:
    """Graded tests the catalogue lacks, or whose translation states other numbers than the English."""
    found: dict[tuple[str, str], str] = {}
    for r in requirements:
        line = translated_requirement(r.lab, r.test, lang)
        english = r.text.removesuffix(f" [{r.param}]") if r.param else r.text
        if line is None:
            found[r.lab, r.test] = f"{r.lab}: {r.test}: no {lang} line for {english!r}"
        elif numbers(line) != numbers(english):
            found[r.lab, r.test] = f"{r.lab}: {r.test}: the numbers differ: {english!r} vs {line.strip()!r}"
    return [found[key] for key in sorted(found)]
