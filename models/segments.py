"""How many SMS parts a text needs: GSM-7 and UCS-2 length rules of the Retarus contract (PROVIDERS.md 1.4).

GSM-7 (`Encoding.STANDARD`) counts septets: a character of the GSM 03.38 basic table is one septet, a
character of its extension table (``^ { } \\ [ ~ ] | €`` and form feed) is two (escape + code). One SMS holds
160 septets; a multipart SMS holds 153 per part (the rest is the concatenation header). UCS-2
(`Encoding.UTF16`) counts UTF-16 code units, so a character outside the Basic Multilingual Plane (most
emoji) is two: 70 per single SMS, 67 per part.

Parts are counted the way the contract documents them, ``ceil(length / per_part)``. Real SMSCs never split
an escape pair or a surrogate pair across two parts, which can add one part when such a pair sits exactly
on a boundary; the contract says nothing about it, so this module does not guess.

`segments_for` adds what the provider does with characters outside GSM-7 under `invalidCharacters`.
"""

from __future__ import annotations

import math

from models.enums import Encoding, InvalidCharacters

#: Septets in a single GSM-7 SMS, and per part of a multipart one.
GSM7_SINGLE_SEPTETS = 160
GSM7_PART_SEPTETS = 153
#: UTF-16 code units in a single UCS-2 SMS, and per part of a multipart one.
UCS2_SINGLE_UNITS = 70
UCS2_PART_UNITS = 67
#: The contract's largest maxParts.
MAX_PARTS = 20
#: Every character costs at least one septet or one UTF-16 unit, so a longer text needs more than
#: MAX_PARTS parts under any encoding: the request schema refuses it before counting anything.
MAX_TEXT_CHARS = MAX_PARTS * GSM7_PART_SEPTETS

#: GSM 03.38 default alphabet (one septet each). ESC (0x1B) is left out: it only introduces the
#: extension table and is not a character a text can carry.
GSM7_BASIC_CHARS = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 default extension table (two septets each: escape + code).
GSM7_EXTENSION_CHARS = frozenset("^{}\\[~]|€\f")

#: ASSUMPTION: Retarus does not document what it does with non-GSM characters under STANDARD when
#: invalidCharacters is not sent (an account default applies). Counting as TO_UTF16 gives the most
#: parts any accepting policy would bill, so a maxParts check never lets a text through that the
#: provider would truncate. Change it here if the account default is known.
UNSET_INVALID_CHARACTERS_COUNTS_AS = InvalidCharacters.TO_UTF16


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the GSM-7 basic or extension table."""
    return first_non_gsm7(text) is None


def first_non_gsm7(text: str) -> str | None:
    """The first character of `text` that GSM-7 cannot carry, or None when there is none."""
    for char in text:
        if char not in GSM7_BASIC_CHARS and char not in GSM7_EXTENSION_CHARS:
            return char
    return None


def gsm7_length(text: str) -> int:
    """Length of `text` in GSM-7 septets; raises ValueError if a character is not in GSM-7."""
    offending = first_non_gsm7(text)
    if offending is not None:
        raise ValueError(f"text contains a character outside GSM-7: {describe_char(offending)}")
    return _septets(text)


def ucs2_length(text: str) -> int:
    """Length of `text` in UTF-16 code units (a character outside the BMP counts 2)."""
    # surrogatepass: a lone surrogate still occupies one code unit instead of failing the count.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def parts_for_length(length: int, *, single: int, per_part: int) -> int:
    """Parts needed for `length` units when one SMS holds `single` and each multipart part `per_part`."""
    if length <= 0:
        return 0
    if length <= single:
        return 1
    return math.ceil(length / per_part)


def count_segments(text: str, encoding: Encoding) -> int:
    """SMS parts `text` needs in `encoding`. Under STANDARD the text must be GSM-7 (else ValueError)."""
    if encoding is Encoding.UTF16:
        return parts_for_length(ucs2_length(text), single=UCS2_SINGLE_UNITS, per_part=UCS2_PART_UNITS)
    return parts_for_length(gsm7_length(text), single=GSM7_SINGLE_SEPTETS, per_part=GSM7_PART_SEPTETS)


def segments_for(text: str, encoding: Encoding, invalid_characters: InvalidCharacters | None = None) -> int:
    """SMS parts the provider would bill for `text` under the job's encoding and invalidCharacters.

    - UTF-16: UCS-2 rules.
    - STANDARD, text is GSM-7: GSM-7 rules.
    - STANDARD with other characters: TO_UTF16 switches to UCS-2 rules; REPLACE and TRANSLITERATE keep
      GSM-7 rules with each such character counted as one septet; REFUSE raises ValueError naming the
      first such character. None counts as `UNSET_INVALID_CHARACTERS_COUNTS_AS`.
    """
    if encoding is Encoding.UTF16:
        return count_segments(text, Encoding.UTF16)
    offending = first_non_gsm7(text)
    if offending is None:
        return count_segments(text, Encoding.STANDARD)
    policy = invalid_characters or UNSET_INVALID_CHARACTERS_COUNTS_AS
    if policy is InvalidCharacters.REFUSE:
        raise ValueError(
            f"text contains characters outside GSM-7: first {describe_char(offending)} "
            "(invalidCharacters=REFUSE)"
        )
    if policy is InvalidCharacters.TO_UTF16:
        return count_segments(text, Encoding.UTF16)
    # REPLACE (a blank) and TRANSLITERATE (a look-alike) put one GSM character in place of each.
    return parts_for_length(_septets(text), single=GSM7_SINGLE_SEPTETS, per_part=GSM7_PART_SEPTETS)


def describe_char(char: str) -> str:
    """`'ж' (U+0436)`: a character named so that invisible ones are still recognisable."""
    return f"{char!r} (U+{ord(char):04X})"


def _septets(text: str) -> int:
    """GSM-7 septets, counting any character outside the extension table as one."""
    return sum(2 if char in GSM7_EXTENSION_CHARS else 1 for char in text)
