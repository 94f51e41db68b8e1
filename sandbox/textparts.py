"""SMS part counting for the sandbox: GSM-7 160/153 septets, otherwise UCS-2 70/67 code units.

Sendmode bills one credit per part and Retarus refuses non-GSM-7 text under `invalidCharacters=REFUSE`;
both need to know whether a text fits GSM-7 and how many parts it takes.
"""

from __future__ import annotations

import math

#: GSM 03.38 basic table: one septet each.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: two septets each (escape + code).
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE_SEPTETS, GSM7_PART_SEPTETS = 160, 153
UCS2_SINGLE_UNITS, UCS2_PART_UNITS = 70, 67


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def _parts(length: int, single: int, per_part: int) -> int:
    if length <= single:
        return 1
    return math.ceil(length / per_part)


def parts_needed(text: str, *, force_ucs2: bool = False) -> int:
    """Parts `text` takes: GSM-7 when every character fits it (and not forced), otherwise UCS-2."""
    if not force_ucs2 and is_gsm7(text):
        septets = sum(2 if char in GSM7_EXTENSION else 1 for char in text)
        return _parts(septets, GSM7_SINGLE_SEPTETS, GSM7_PART_SEPTETS)
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    return _parts(units, UCS2_SINGLE_UNITS, UCS2_PART_UNITS)
