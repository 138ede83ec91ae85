"""Personal data out of review texts, and keyed pseudonyms for member ids.

Review texts leave the stream when the learning loop writes them to disk as training
samples. Those files outlive retention policies, get copied to training machines and
shared, so they must not carry anything that lets someone contact a member or pay with
their money: contact data, payment data, identity numbers. ``mask_text`` replaces such
spans with a placeholder token per kind, and ``pseudonymize`` turns a member id into an
HMAC-SHA256 pseudonym that stays stable under one key and cannot be reversed without it.

Masked (kind: placeholder):

- ``email`` ``<EMAIL>``: ``name@host.tld``;
- ``url`` ``<URL>``: ``http(s)://...``, ``www....``, and bare domains with a path
  (``shop.example.com/u/123``); a URL ends at whitespace or at any non-ASCII character,
  so Chinese text around it survives, and trailing punctuation stays outside;
- ``phone`` ``<PHONE>``: North American (``+1 (555) 123-4567``, ``555-123-4567``,
  ``555.123.4567``), Chinese mobile (``13812345678``, ``138-1234-5678``,
  ``+86 138 1234 5678``), Chinese landline (``010-12345678``, ``(0755)12345678``),
  other ``+CC ...`` international numbers of 8-15 digits;
- ``card`` ``<CARD>``: 13-19 digit runs that pass the Luhn check, and numbers grouped
  like a card (4-4-4-4[-1..3], 4-6-4/5) whatever their check digit;
- ``id_number`` ``<ID>``: Chinese resident ids (17 digits with a plausible birth date,
  then a digit or X; any 17 digits then X) and US SSNs (``123-45-6789``);
- ``ip`` ``<IP>``: IPv4 addresses (not ``v1.2.3.4``);
- ``wechat`` ``<HANDLE>``: a WeChat id after 微信/微信号/V信/VX/wx/WeChat (6-20
  characters starting with a letter, WeChat's own rule), and ``wxid_...`` ids;
- ``qq`` ``<NUMBER>``: a QQ number (5-12 digits) after QQ/QQ号/QQ群; digits, so
  ``<NUMBER>`` like other long numbers;
- ``handle`` ``<HANDLE>``: ``@username`` (ASCII or Chinese, at most 30 characters; a
  Chinese handle runs to the next space or punctuation); never the ``@`` of an email,
  but an ``@`` glued to a word that is no email (``price@Walmart``) counts as a handle;
- ``long_number`` ``<NUMBER>``: any other run of 7 or more digits (order numbers, QQ
  numbers without a keyword, compact dates such as 19900307), also inside a code
  (``SN12345678`` gives ``SN<NUMBER>``), unless it follows a currency sign.

Not masked, on purpose, since the models learn from them: prices (``$1,299.99``,
``¥299``, ``299元``), percentages, product and model codes (``WH-1000XM4``,
``RTX 4090``), dates and times (``2024-03-15``, ``2024年3月15日``, ``10:30``),
quantities, ratings (``5/5``), years, versions (``v2.1.3``), and numbers of up to six
digits. Out of scope: personal names, street addresses and US 7-digit local numbers
(``555-1234``); no pattern tells them from ordinary words and numbers without a model,
and a wrong guess costs the text its meaning.

Matching runs on an NFKC-normalized copy, so full-width digits, ``＠`` and ``：`` are
seen as ASCII (``１３８１２３４５６７８`` is a phone). Offsets map back to the original,
so the output keeps the non-PII text exactly as it was (full-width ``￥1,099`` stays
full-width); only masked spans change. All detectors run on one pass and overlapping
spans resolve earliest-then-longest, ties going to the more specific kind (URL and email
before handle, ID and card before phone, everything before long_number). Passes repeat
until nothing more is found (a mask can change what its neighbor's boundary check sees;
at most 8 passes, in practice one or two), which makes ``mask`` idempotent. The
expressions anchor each repeated run at its start, so masking stays linear in the text's
length.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["PLACEHOLDERS", "Masked", "mask", "mask_text", "pseudonymize"]

PLACEHOLDERS: dict[str, str] = {
    "email": "<EMAIL>",
    "url": "<URL>",
    "phone": "<PHONE>",
    "card": "<CARD>",
    "id_number": "<ID>",
    "ip": "<IP>",
    "wechat": "<HANDLE>",
    "qq": "<NUMBER>",
    "handle": "<HANDLE>",
    "long_number": "<NUMBER>",
}

# Same start and length: the kind listed first wins.
_KIND_ORDER = (
    "url",
    "email",
    "id_number",
    "card",
    "phone",
    "ip",
    "wechat",
    "qq",
    "handle",
    "long_number",
)
_PRIORITY = {kind: rank for rank, kind in enumerate(_KIND_ORDER)}

_MAX_PASSES = 8
_PSEUDONYM_HEX = 24


@dataclass(frozen=True)
class Masked:
    """A masked text and how many spans of each kind were masked (kinds with none left out)."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


_URL_CHAR = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_URL = _compile(
    rf"(?i:https?://){_URL_CHAR}+"
    rf"|(?<![A-Za-z0-9.@/_-])(?i:www\.){_URL_CHAR}+"
    rf"|(?<![A-Za-z0-9.@/_-])(?:{_LABEL}\.)+[A-Za-z]{{2,24}}/{_URL_CHAR}*"
)
# The domain side of an email; the local part is walked back from the "@" (see _emails).
_EMAIL_DOMAIN = _compile(rf"@(?:{_LABEL}\.)+[A-Za-z]{{2,24}}")
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_NANP = _compile(
    r"(?<![0-9+])(?:\+?1[ .-]?)?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])"
    r"[0-9]{3}[ .-][0-9]{4}(?![0-9])"
    r"|(?<![0-9+])\+1[ .-]?[2-9][0-9]{2}[ .-]?[0-9]{3}[ .-]?[0-9]{4}(?![0-9])"
)
_CN_MOBILE = _compile(
    r"(?<![0-9])(?:(?:\+|00)86[ -]?|86[ -])?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])"
)
_CN_LANDLINE = _compile(r"(?<![0-9])(?:\(0[0-9]{2,3}\)|0[0-9]{2,3}-) ?[0-9]{7,8}(?![0-9])")
# Other countries; +1 and +86 have their own shapes above. Digits are counted afterwards.
_INTL = _compile(
    r"(?<![0-9A-Za-z+])\+(?!1|86)[1-9][0-9]{0,2}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6}"
)
_CARD_GROUPED = _compile(
    r"(?<![0-9])(?:[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{1,3})?"
    r"|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5})(?![0-9])"
)
_DIGIT_RUN_13_19 = _compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
_CN_ID = _compile(
    r"(?<![0-9])(?:[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
    r"(?:0[1-9]|[12][0-9]|3[01])[0-9]{4}(?![0-9])|[0-9]{17}[Xx](?![A-Za-z0-9]))"
)
_SSN = _compile(r"(?<![0-9])(?<![0-9]-)[0-9]{3}-[0-9]{2}-[0-9]{4}(?!-?[0-9])")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = _compile(rf"(?<![0-9A-Za-z.])(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9]|\.[0-9])")
_WECHAT = _compile(
    r"(?:(?P<cjk>微信|薇信|威信|[Vv]信)|(?<![A-Za-z])(?P<ascii>(?i:vx|wx|wechat|weixin)))"
    r"(?P<sep>[ \t]{0,3}(?:号码|号|(?i:id))?[ \t]{0,3}:?[ \t]{0,3})"
    r"(?P<id>[A-Za-z][A-Za-z0-9_-]{5,19})(?![A-Za-z0-9_-])"
)
_WXID = _compile(r"(?<![A-Za-z0-9_])(?i:wxid_)[A-Za-z0-9_-]{4,30}")
_QQ = _compile(
    r"(?<![A-Za-z])(?i:qq)[ \t]{0,3}(?:号码|号|群)?[ \t]{0,3}:?[ \t]{0,3}"
    r"(?P<id>[1-9][0-9]{4,11})(?![0-9])"
)
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HANDLE = _compile(rf"@[A-Za-z_{_HAN}][A-Za-z0-9_.{_HAN}\-]{{0,29}}")
_LONG_NUMBER = _compile(r"(?<![0-9])(?<![$¥€£])(?<![$¥€£] )[0-9]{7,}(?![0-9])")

_OPENER = {")": "(", "]": "["}
_Span = tuple[int, int, str]
_Finder = Callable[[str], Iterator[_Span]]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _plain(pattern: re.Pattern[str], kind: str) -> _Finder:
    def find(text: str) -> Iterator[_Span]:
        for m in pattern.finditer(text):
            yield m.start(), m.end(), kind

    return find


def _trailing(text: str, start: int, end: int) -> bool:
    """Whether the URL text[start:end] ends in punctuation of the sentence around it."""
    last = text[end - 1]
    if last in ".,;:!?'\"*":
        return True
    opener = _OPENER.get(last)
    return opener is not None and text.count(opener, start, end) < text.count(last, start, end)


def _urls(text: str) -> Iterator[_Span]:
    for m in _URL.finditer(text):
        start, end = m.start(), m.end()
        while end > start and _trailing(text, start, end):
            end -= 1
        if end - start > 4:
            yield start, end, "url"


def _emails(text: str) -> Iterator[_Span]:
    # A regex with the local part in front would retry every position of a long run of
    # local characters (quadratic); walking back from each "@", never past the previous
    # domain, reads each character once and never leaves a second address for a later pass.
    floor = 0
    for m in _EMAIL_DOMAIN.finditer(text):
        start = m.start()
        while start > floor and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        if start < m.start():
            yield start, m.end(), "email"
        floor = m.end()


def _intl_phones(text: str) -> Iterator[_Span]:
    for m in _INTL.finditer(text):
        end = m.end()
        if end < len(text) and text[end].isdigit():
            continue
        if 8 <= sum(ch.isdigit() for ch in m.group()) <= 15:
            yield m.start(), end, "phone"


def _card_runs(text: str) -> Iterator[_Span]:
    for m in _DIGIT_RUN_13_19.finditer(text):
        if _luhn(m.group()):
            yield m.start(), m.end(), "card"


def _wechat_ids(text: str) -> Iterator[_Span]:
    for m in _WECHAT.finditer(text):
        sep, ident, keyword = m.group("sep"), m.group("id"), (m.group("ascii") or "").lower()
        marked = bool(sep.strip())
        if keyword in ("vx", "wx"):
            ok = bool(sep)
        elif keyword:  # "wechat support": an English word, not an id
            ok = marked or any(ch.isdigit() or ch in "_-" for ch in ident)
        else:
            ok = True
        if ok:
            yield m.start("id"), m.end("id"), "wechat"
    for m in _WXID.finditer(text):
        yield m.start(), m.end(), "wechat"


def _qq_numbers(text: str) -> Iterator[_Span]:
    for m in _QQ.finditer(text):
        yield m.start("id"), m.end("id"), "qq"


def _handles(text: str) -> Iterator[_Span]:
    for m in _HANDLE.finditer(text):
        end = m.end()
        while text[end - 1] in ".-":
            end -= 1
        if end - m.start() > 1:
            yield m.start(), end, "handle"


_FINDERS: tuple[_Finder, ...] = (
    _urls,
    _emails,
    _plain(_CN_ID, "id_number"),
    _plain(_SSN, "id_number"),
    _plain(_CARD_GROUPED, "card"),
    _card_runs,
    _plain(_NANP, "phone"),
    _plain(_CN_MOBILE, "phone"),
    _plain(_CN_LANDLINE, "phone"),
    _intl_phones,
    _plain(_IPV4, "ip"),
    _wechat_ids,
    _qq_numbers,
    _handles,
    _plain(_LONG_NUMBER, "long_number"),
)


def _normalized(text: str) -> tuple[str, list[int] | None]:
    """NFKC copy of ``text`` and, when it differs, each of its characters' source index."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text, None
    parts: list[str] = []
    source: list[int] = []
    for i, ch in enumerate(text):
        norm = ch if ch.isascii() else unicodedata.normalize("NFKC", ch)
        parts.append(norm)
        source.extend([i] * len(norm))
    return "".join(parts), source


def _mask_once(text: str) -> tuple[str, dict[str, int]]:
    norm, source = _normalized(text)
    spans = [span for find in _FINDERS for span in find(norm)]
    if not spans:
        return text, {}
    spans.sort(key=lambda s: (s[0], -s[1], _PRIORITY[s[2]]))
    out: list[str] = []
    counts: dict[str, int] = {}
    pos = 0
    for start, end, kind in spans:
        if source is not None:
            start, end = source[start], source[end - 1] + 1
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append(PLACEHOLDERS[kind])
        counts[kind] = counts.get(kind, 0) + 1
        pos = end
    out.append(text[pos:])
    return "".join(out), counts


def mask_text(text: str) -> Masked:
    """Replace personal data in ``text`` with placeholders; see the module docstring."""
    counts: dict[str, int] = {}
    for _ in range(_MAX_PASSES):
        text, found = _mask_once(text)
        if not found:
            break
        for kind, n in found.items():
            counts[kind] = counts.get(kind, 0) + n
    return Masked(text, {kind: counts[kind] for kind in PLACEHOLDERS if counts.get(kind)})


def mask(text: str) -> str:
    """The masked text alone: ``mask_text(text).text``."""
    return mask_text(text).text


def pseudonymize(member_id: str, key: bytes) -> str:
    """``"m_"`` and the first 24 hex digits of HMAC-SHA256(key, member_id as UTF-8).

    Stable for one key, unlinkable across keys, not reversible without the key. Lone
    surrogates in ``member_id`` are encoded as they are (``surrogatepass``), not refused.
    """
    if not key:
        raise ValueError("pseudonymize needs a non-empty key")
    digest = hmac.new(key, member_id.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "m_" + digest.hexdigest()[:_PSEUDONYM_HEX]
