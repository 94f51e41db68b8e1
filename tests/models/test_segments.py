"""SMS part counting: GSM-7 septets (extension characters count two), UCS-2 code units, invalidCharacters."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.enums import Encoding, InvalidCharacters
from models.segments import (
    GSM7_BASIC_CHARS,
    GSM7_EXTENSION_CHARS,
    count_segments,
    gsm7_length,
    is_gsm7,
    segments_for,
    ucs2_length,
)

BASIC = "".join(sorted(GSM7_BASIC_CHARS))
EXTENSION = "".join(sorted(GSM7_EXTENSION_CHARS))
#: Characters GSM-7 cannot carry: Cyrillic, CJK, an emoji outside the BMP, ESC, a combining accent, ç
#: (only the capital Ç is in the table).
NON_GSM = "жЖ中\U0001f600\x1b\u0301ç"

basic_texts = st.text(alphabet=BASIC, max_size=700)
gsm_texts = st.text(alphabet=BASIC + EXTENSION, max_size=700)
# Any Unicode text without lone surrogates (a str Python can encode).
unicode_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
mixed_texts = st.text(alphabet=st.sampled_from(BASIC + EXTENSION + NON_GSM), min_size=1, max_size=400)


def expected_parts(length: int, single: int, per_part: int) -> int:
    if length == 0:
        return 0
    return 1 if length <= single else math.ceil(length / per_part)


@settings(max_examples=100)
@given(basic_texts)
def test_basic_gsm_text_of_n_septets_needs_one_part_up_to_160_then_one_per_153(text: str) -> None:
    n = len(text)
    assert gsm7_length(text) == n
    assert count_segments(text, Encoding.STANDARD) == (0 if n == 0 else 1 if n <= 160 else math.ceil(n / 153))


@settings(max_examples=100)
@given(gsm_texts)
def test_extension_characters_count_two_septets(text: str) -> None:
    extension_count = sum(char in GSM7_EXTENSION_CHARS for char in text)
    septets = len(text) + extension_count
    assert gsm7_length(text) == septets
    assert count_segments(text, Encoding.STANDARD) == expected_parts(septets, 160, 153)


@settings(max_examples=100)
@given(unicode_texts)
def test_ucs2_counts_utf16_code_units_70_single_67_per_part(text: str) -> None:
    units = sum(2 if ord(char) > 0xFFFF else 1 for char in text)
    assert ucs2_length(text) == units
    assert count_segments(text, Encoding.UTF16) == expected_parts(units, 70, 67)


@settings(max_examples=100)
@given(gsm_texts, st.sampled_from(BASIC + EXTENSION))
def test_adding_a_character_never_needs_fewer_parts(text: str, char: str) -> None:
    for encoding in Encoding:
        assert count_segments(text + char, encoding) >= count_segments(text, encoding)


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("", Encoding.STANDARD, 0),
        ("", Encoding.UTF16, 0),
        ("a" * 160, Encoding.STANDARD, 1),
        ("a" * 161, Encoding.STANDARD, 2),
        ("a" * 306, Encoding.STANDARD, 2),
        ("a" * 307, Encoding.STANDARD, 3),
        ("€" * 80, Encoding.STANDARD, 1),  # 160 septets
        ("€" * 81, Encoding.STANDARD, 2),  # 162 septets
        ("a" * 159 + "[", Encoding.STANDARD, 2),  # the bracket takes septets 160 and 161
        ("a" * 3060, Encoding.STANDARD, 20),
        ("a" * 3061, Encoding.STANDARD, 21),
        ("ж" * 70, Encoding.UTF16, 1),
        ("ж" * 71, Encoding.UTF16, 2),
        ("ж" * 134, Encoding.UTF16, 2),
        ("ж" * 135, Encoding.UTF16, 3),
        ("\U0001f600" * 35, Encoding.UTF16, 1),  # 70 code units
        ("\U0001f600" * 36, Encoding.UTF16, 2),  # 72 code units
        ("a" * 160, Encoding.UTF16, 3),  # the same text costs more parts in UCS-2
    ],
)
def test_part_counts_at_the_boundaries(text: str, encoding: Encoding, parts: int) -> None:
    assert count_segments(text, encoding) == parts


def test_gsm7_tables_hold_the_documented_characters() -> None:
    assert len(GSM7_BASIC_CHARS) == 127  # 128 code points minus the escape
    assert set("^{}\\[~]|€\f") == GSM7_EXTENSION_CHARS
    assert is_gsm7("Hello @home: 100£ ÄÖÜäöüß è é ΔΩ\n\r{€}")
    for char in NON_GSM:
        assert not is_gsm7(f"abc{char}def")


def test_standard_count_refuses_a_character_gsm7_cannot_carry() -> None:
    with pytest.raises(ValueError, match="U\\+0436"):
        count_segments("privet ж", Encoding.STANDARD)
    with pytest.raises(ValueError):
        gsm7_length("\U0001f600")


@settings(max_examples=100)
@given(gsm_texts, st.sampled_from([None, *InvalidCharacters]))
def test_gsm_text_under_standard_is_billed_by_gsm7_rules_whatever_the_policy(
    text: str, policy: InvalidCharacters | None
) -> None:
    assert segments_for(text, Encoding.STANDARD, policy) == count_segments(text, Encoding.STANDARD)


@settings(max_examples=100)
@given(mixed_texts, st.sampled_from([None, *InvalidCharacters]))
def test_utf16_encoding_is_billed_by_ucs2_rules_whatever_the_policy(
    text: str, policy: InvalidCharacters | None
) -> None:
    assert segments_for(text, Encoding.UTF16, policy) == count_segments(text, Encoding.UTF16)


@settings(max_examples=100)
@given(mixed_texts.filter(lambda text: not is_gsm7(text)))
def test_non_gsm_text_under_standard_follows_invalid_characters(text: str) -> None:
    ucs2_parts = count_segments(text, Encoding.UTF16)
    # Each invalid character becomes one GSM character; extension characters stay two septets.
    replaced_septets = sum(2 if char in GSM7_EXTENSION_CHARS else 1 for char in text)
    gsm_parts = expected_parts(replaced_septets, 160, 153)

    assert segments_for(text, Encoding.STANDARD, InvalidCharacters.TO_UTF16) == ucs2_parts
    assert segments_for(text, Encoding.STANDARD, InvalidCharacters.REPLACE) == gsm_parts
    assert segments_for(text, Encoding.STANDARD, InvalidCharacters.TRANSLITERATE) == gsm_parts
    # Not sent: counted as the most any accepting policy would bill.
    assert segments_for(text, Encoding.STANDARD, None) == ucs2_parts
    with pytest.raises(ValueError, match=r"invalidCharacters=REFUSE"):
        segments_for(text, Encoding.STANDARD, InvalidCharacters.REFUSE)


def test_refuse_names_only_the_first_offending_character() -> None:
    text = "Dear customer, your code is 1234 ж and 中"
    with pytest.raises(ValueError) as info:
        segments_for(text, Encoding.STANDARD, InvalidCharacters.REFUSE)
    message = str(info.value)
    assert message.startswith("text contains characters outside GSM-7: ")
    assert "'ж' (U+0436)" in message
    assert "中" not in message
    assert "1234" not in message  # the text itself stays out of the error


def test_an_emoji_switches_a_160_character_text_to_three_ucs2_parts() -> None:
    text = "a" * 159 + "\U0001f600"  # 161 code units
    assert segments_for(text, Encoding.STANDARD, InvalidCharacters.TO_UTF16) == 3
    assert segments_for(text, Encoding.STANDARD, InvalidCharacters.REPLACE) == 1


def test_empty_text_is_zero_parts_under_every_policy() -> None:
    for encoding in Encoding:
        for policy in [None, *InvalidCharacters]:
            assert segments_for("", encoding, policy) == 0
