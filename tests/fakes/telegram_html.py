"""Telegram's HTML parse_mode, checked the way the Bot API does (error texts included).

Returns the plain text and the entities, offsets and lengths in UTF-16 code units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EntityParseError", "parse_html", "utf16_len"]

_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic",
    "u": "underline", "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
    "del": "strikethrough", "a": "text_link", "code": "code", "pre": "pre",
    "tg-spoiler": "spoiler", "span": "spoiler", "blockquote": "blockquote",
}  # fmt: skip
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTR_NAME = re.compile(r"[^\s=>\"']+")


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; the message follows the Bot API's wording."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _Open:
    tag: str
    offset: int
    attrs: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    parser = _Parser(text)
    parser.run()
    return "".join(parser.out), sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.out: list[str] = []
        self.length = 0
        self.stack: list[_Open] = []
        self.entities: list[dict[str, Any]] = []

    def byte_offset(self, index: int) -> int:
        return len(self.text[:index].encode("utf-8"))

    def emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.length += utf16_len(chunk)

    def run(self) -> None:
        text = self.text
        while self.pos < len(text):
            nxt = min(
                (i for i in (text.find("<", self.pos), text.find("&", self.pos)) if i >= 0),
                default=-1,
            )
            if nxt < 0:
                self.emit(text[self.pos :])
                break
            self.emit(text[self.pos : nxt])
            self.pos = nxt
            if text[nxt] == "&":
                self.entity()
            elif text.startswith("</", nxt):
                self.end_tag()
            else:
                self.start_tag()
        if self.stack:
            raise EntityParseError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"'
            )

    def entity(self) -> None:
        match = _ENTITY.match(self.text, self.pos)
        if match is None:
            raise EntityParseError(f'Unescaped "&" at byte offset {self.byte_offset(self.pos)}')
        self.emit(_decode(match, self.byte_offset(self.pos)))
        self.pos = match.end()

    def start_tag(self) -> None:
        begin = self.pos
        match = _NAME.match(self.text, begin + 1)
        name = match.group(0).lower() if match else ""
        if name not in _TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {self.byte_offset(begin)}'
            )
        assert match is not None
        self.pos = match.end()
        attrs = self.attributes(begin)
        opened = _Open(name, self.length, attrs)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(begin)}'
            )
        language = attrs.get("class", "")
        if (
            name == "code"
            and language.startswith("language-")
            and self.stack
            and self.stack[-1].tag == "pre"
        ):
            self.stack[-1].extra["language"] = language.removeprefix("language-")
            opened.extra["merged"] = True
        self.stack.append(opened)

    def attributes(self, begin: int) -> dict[str, str]:
        text, attrs = self.text, dict[str, str]()
        while True:
            while self.pos < len(text) and text[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(text):
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {self.byte_offset(begin)}"
                )
            if text[self.pos] == ">":
                self.pos += 1
                return attrs
            match = _ATTR_NAME.match(text, self.pos)
            if match is None:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {self.byte_offset(begin)}"
                )
            key, self.pos = match.group(0).lower(), match.end()
            attrs[key] = self.attribute_value(begin) if text.startswith("=", self.pos) else ""

    def attribute_value(self, begin: int) -> str:
        text = self.text
        self.pos += 1
        if self.pos < len(text) and text[self.pos] in "\"'":
            quote = text[self.pos]
            end = text.find(quote, self.pos + 1)
            if end < 0:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {self.byte_offset(begin)}"
                )
            raw, self.pos = text[self.pos + 1 : end], end + 1
        else:
            match = re.compile(r"[^\s>]*").match(text, self.pos)
            assert match is not None
            raw, self.pos = match.group(0), match.end()
        return _unescape(raw, self.byte_offset(begin))

    def end_tag(self) -> None:
        begin = self.pos
        end = self.text.find(">", begin)
        if end < 0:
            raise EntityParseError(f"Unclosed end tag at byte offset {self.byte_offset(begin)}")
        name = self.text[begin + 2 : end].strip().lower()
        if not self.stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {self.byte_offset(begin)}")
        top = self.stack.pop()
        if name != top.tag:
            raise EntityParseError(
                f"Unmatched end tag at byte offset {self.byte_offset(begin)}, "
                f'expected "</{top.tag}>", found "</{name}>"'
            )
        self.pos = end + 1
        self.close(top)

    def close(self, opened: _Open) -> None:
        length = self.length - opened.offset
        if length == 0 or opened.extra.get("merged"):
            return
        kind = _TAGS[opened.tag]
        entity: dict[str, Any] = {"type": kind, "offset": opened.offset, "length": length}
        if kind == "text_link":
            if not opened.attrs.get("href"):
                return
            entity["url"] = opened.attrs["href"]
        elif kind == "pre" and "language" in opened.extra:
            entity["language"] = opened.extra["language"]
        elif kind == "blockquote" and "expandable" in opened.attrs:
            entity["type"] = "expandable_blockquote"
        self.entities.append(entity)


def _decode(match: re.Match[str], byte_offset: int) -> str:
    named, decimal, hexa = match.groups()
    if named:
        return _NAMED[named]
    code = int(decimal) if decimal else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise EntityParseError(f"Invalid numeric HTML entity at byte offset {byte_offset}")
    return chr(code)


def _unescape(raw: str, byte_offset: int) -> str:
    parts, pos = [], 0
    for amp in re.finditer("&", raw):
        if amp.start() < pos:
            continue
        match = _ENTITY.match(raw, amp.start())
        if match is None:
            raise EntityParseError(
                f'Unescaped "&" in an attribute of the tag at byte offset {byte_offset}'
            )
        parts += [raw[pos : amp.start()], _decode(match, byte_offset)]
        pos = match.end()
    return "".join([*parts, raw[pos:]])
