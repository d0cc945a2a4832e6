"""A small, strict subset of Exchange's OPATH filter syntax: what `New-ManagementScope -RecipientRestrictionFilter`
takes in the simulator.

Supported: `Property -eq 'value'` (single or double quotes) for RecipientTypeDetails, PrimarySmtpAddress and
CustomAttribute1..CustomAttribute15, combined with `-and` / `-or` (`-and` binds tighter) and parentheses.
Comparisons are case-insensitive, as Exchange's string comparisons are. Everything else (other properties,
`-ne`, `-like`, `-not`, unquoted values, script blocks) is refused with a message naming the problem, so a test
never relies on a filter the simulator would read differently from Exchange. The syntax and the filterable
properties are Exchange's:
https://learn.microsoft.com/powershell/module/exchange/new-managementscope
https://learn.microsoft.com/powershell/exchange/recipientfilter-properties
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

CUSTOM_ATTRIBUTES = tuple(f"CustomAttribute{n}" for n in range(1, 16))
PROPERTIES = ("RecipientTypeDetails", "PrimarySmtpAddress", *CUSTOM_ATTRIBUTES)
# RecipientTypeDetails values the simulator's directory can hold, plus Exchange's other common mailbox types (a
# filter naming them is valid and simply matches nothing here).
RECIPIENT_TYPES = ("UserMailbox", "RoomMailbox", "EquipmentMailbox", "SharedMailbox")
_CANONICAL = {p.lower(): p for p in PROPERTIES}
_TOKEN = re.compile(
    r"""\s*(?:(?P<paren>[()])|(?P<op>-[A-Za-z]+)|'(?P<sq>(?:[^']|'')*)'|"(?P<dq>[^"]*)"|(?P<word>[^\s()'"]+))"""
)

Predicate = Callable[[Mapping[str, str]], bool]


class FilterError(ValueError):
    """The filter is not valid OPATH, or uses something outside the simulator's subset."""


@dataclass(frozen=True)
class Token:
    kind: str  # "(", ")", "op", "value", "word"
    text: str


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN.match(text, pos)
        if found is None or found.end() == pos:
            raise FilterError(f"Invalid filter syntax near position {pos}: {text[pos:pos + 20]!r}")
        pos = found.end()
        if found.group("paren"):
            out.append(Token(found.group("paren"), found.group("paren")))
        elif found.group("op"):
            out.append(Token("op", found.group("op").lower()))
        elif found.group("sq") is not None:
            out.append(Token("value", found.group("sq").replace("''", "'")))
        elif found.group("dq") is not None:
            out.append(Token("value", found.group("dq")))
        else:
            out.append(Token("word", found.group("word")))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise FilterError(f"Invalid filter syntax: {self.text!r} ends too early")
        self.at += 1
        return token

    def parse(self) -> Predicate:
        if not self.tokens:
            raise FilterError("The recipient filter is empty")
        predicate = self.disjunction()
        rest = self.peek()
        if rest is not None:
            raise FilterError(f"Invalid filter syntax: unexpected {rest.text!r} in {self.text!r}")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while (token := self.peek()) is not None and token.kind == "op" and token.text == "-or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda attrs: any(p(attrs) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.term()]
        while (token := self.peek()) is not None and token.kind == "op" and token.text == "-and":
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda attrs: all(p(attrs) for p in parts))

    def term(self) -> Predicate:
        token = self.take()
        if token.kind == "(":
            inner = self.disjunction()
            if self.take().kind != ")":
                raise FilterError(f"Invalid filter syntax: missing ')' in {self.text!r}")
            return inner
        if token.kind == "op":
            raise FilterError(f"The operator {token.text!r} is not supported by the simulator's OPATH subset "
                              "(supported: -eq, -and, -or, parentheses)")
        if token.kind != "word":
            raise FilterError(f"Invalid filter syntax: expected a property name, found {token.text!r}")
        prop = _CANONICAL.get(token.text.lower())
        if prop is None:
            raise FilterError(f"The property {token.text!r} is not supported by the simulator's OPATH subset "
                              f"(supported: {', '.join(PROPERTIES[:3])}, CustomAttribute1..CustomAttribute15)")
        operator = self.take()
        if operator.kind != "op" or operator.text != "-eq":
            raise FilterError(f"The operator {operator.text!r} is not supported by the simulator's OPATH subset "
                              "(supported: -eq)")
        value = self.take()
        if value.kind != "value":
            raise FilterError(f"Invalid filter syntax: the value for {prop} must be quoted, found {value.text!r}")
        wanted = value.text
        if prop == "RecipientTypeDetails" and wanted.lower() not in (t.lower() for t in RECIPIENT_TYPES):
            raise FilterError(f"{wanted!r} is not a valid RecipientTypeDetails value (valid here: "
                              f"{', '.join(RECIPIENT_TYPES)})")
        lowered = wanted.lower()
        return lambda attrs: str(attrs.get(prop) or "").lower() == lowered


def compile_filter(text: str) -> Predicate:
    """Parse `text` into a predicate over a recipient's attributes (keys as in PROPERTIES); FilterError if not
    supported."""
    if not isinstance(text, str):
        raise FilterError("The recipient filter must be a string")
    return _Parser(text).parse()
