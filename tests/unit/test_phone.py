"""normalize_phone against the plain phonenumbers recipe it replaced (parse, is_valid_number, format as E.164).

crmsync.models.phones builds the PhoneNumber of an international or national value without phonenumbers.parse
when it can follow parse's steps, and checks validity with is_valid_number's rule over the same metadata. These
differential tests compare each piece, and normalize_phone as a whole, with phonenumbers itself: over phonenumbers'
example numbers of every region, non-geographic country code and number type, in E.164, international and national
format, mutated (a digit changed, added or dropped; a national prefix, a zero, brackets or the country code written
where people write them; an international dialling prefix), under several default regions; over random digit
strings with and without a "+"; and over PhoneNumbers around every example number."""

from collections.abc import Iterator
from random import Random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata

from crmsync.models.phones import _is_valid, _without_parse, normalize_phone

DEFAULT_REGIONS = (None, "US", "GB", "DE", "FR", "JP", "jp", "KW", "AR", "BR", "RU", "IT", "CA", "XX", "001")
SEPARATORS = ("", "", "", " ", " ", "-", ".", "(", ")", " - ")


def reference(value: str | None, region: str | None) -> str | None:
    """normalize_phone as it was: phonenumbers' documented recipe, no shortcut."""
    if not value or not value.strip():
        return None
    try:
        number = phonenumbers.parse(value, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164: str = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return e164


def parsed(value: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(value, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None


def _examples() -> Iterator[phonenumbers.PhoneNumber]:
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in PhoneNumberType.values():
            if kind != PhoneNumberType.UNKNOWN and (number := phonenumbers.example_number_for_type(region, kind)):
                yield number
    for country_code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        if number := phonenumbers.example_number_for_non_geo_entity(country_code):
            yield number


def _spaced(digits: str, rng: Random) -> str:
    return "".join(d + (rng.choice(SEPARATORS) if k < len(digits) - 1 else "") for k, d in enumerate(digits))


def _mutations(number: phonenumbers.PhoneNumber, rng: Random) -> Iterator[str]:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    country_code = number.country_code
    assert country_code is not None
    cc, nsn = str(country_code), e164[1 + len(str(country_code)) :]
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    prefix = (metadata.national_prefix if metadata else None) or "0"
    dialling = (metadata.preferred_international_prefix or metadata.international_prefix or "00") if metadata else "00"
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    i = rng.randrange(len(nsn))
    changed = f"{nsn[:i]}{rng.choice('0123456789')}{nsn[i + 1 :]}"
    # International
    yield e164
    yield phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    yield f"+{cc}{prefix}{nsn}"  # a national prefix written after the country code, as people do
    yield f"+{cc} ({prefix}){nsn}"
    yield f"+{cc}0{nsn}"
    yield f"+{cc}{changed}"  # one digit changed
    yield f"+{cc}{nsn}{rng.choice('0123456789')}"  # one too many
    yield f"+{cc}{nsn[:-1]}"  # one too few
    yield f"+{_spaced(cc + nsn, rng)}"
    yield f"+{cc} ({nsn[:3]}) {nsn[3:]}"
    # National
    yield national
    yield national.replace(" ", "-")
    yield _spaced(national.translate(str.maketrans("", "", " ().-")), rng)
    yield f"{prefix}{nsn}"
    yield f"({prefix}{nsn[:2]}) {nsn[2:]}"
    yield nsn
    yield changed
    yield f"{prefix}{changed}"
    yield f"{nsn}{rng.choice('0123456789')}"
    yield f"{prefix}{nsn[:-1]}"
    yield f"{cc}{nsn}"  # the country code without a plus
    yield f"{cc} {prefix}{nsn}"
    yield f"{dialling}{cc}{nsn}"  # from abroad, as dialled
    yield f"{dialling} {cc} {_spaced(nsn, rng)}"
    yield f"0{nsn}"
    yield f"00{nsn}"


def _random_digits(rng: Random, plus: bool) -> str:
    digits = [rng.choice("0123456789") for _ in range(rng.randint(1, 21))]
    if plus:
        digits[0] = rng.choice("123456789")
    before, after = rng.choice(SEPARATORS) * rng.randint(0, 2), rng.choice(SEPARATORS) * rng.randint(0, 2)
    return ("+" if plus else "") + before + _spaced("".join(digits), rng) + after


def phone_inputs(
    seed: int, regions_per_value: int, random_values: int, share: float = 1.0
) -> list[tuple[str, str | None]]:
    """(raw value, default region) pairs: the mutations of every example number (or of a random `share` of them)
    under `regions_per_value` default regions (its own among them), and `random_values` random digit strings (half of
    them with a "+") under random regions."""
    rng = Random(seed)  # noqa: S311 - test data, not secrets
    pairs = []
    for number in _examples():
        if rng.random() >= share:
            continue
        own = phonenumbers.region_code_for_number(number)
        regions = [own, *rng.sample(DEFAULT_REGIONS, regions_per_value - 1)]
        pairs += [(value, region) for value in _mutations(number, rng) for region in regions]
    regions = [*DEFAULT_REGIONS, *sorted(phonenumbers.SUPPORTED_REGIONS)]
    pairs += [(_random_digits(rng, k % 2 == 0), rng.choice(regions)) for k in range(random_values)]
    return pairs


def test_normalize_phone_is_the_plain_recipe() -> None:
    # A third of the examples each run (a different third per seed); bench/README.md gives a full run's size.
    pairs = phone_inputs(seed=20261121, regions_per_value=2, random_values=2000, share=1 / 3)
    assert len(pairs) > 20_000
    differ = [
        (v, r, got, want) for v, r in pairs if (got := normalize_phone.__wrapped__(v, r)) != (want := reference(v, r))
    ]
    assert differ == []


def test_the_shortcuts_build_what_parse_returns() -> None:
    pairs = phone_inputs(seed=20261122, regions_per_value=2, random_values=2000, share=1 / 3)
    built = [(v, r, number) for v, r in pairs if (number := _without_parse(v, r.upper() if r else None)) is not None]
    assert [(v, r, number) for v, r, number in built if number != parsed(v, r)] == []
    # Taken often enough to matter, with and without a "+".
    assert sum(v.startswith("+") for v, _, _ in built) > len(pairs) // 8
    assert sum(not v.startswith("+") for v, _, _ in built) > len(pairs) // 8


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("+14155550123", None),
        ("+81 80 1234 5678", "US"),
        ("+44 20 7946 0958", "GB"),
        ("+1 (415) 964-6594", "US"),
        ("+7 912 345-67-89", "RU"),
        ("+800 1234 5678", None),
        ("(415) 964-6594", "US"),
        ("415.964.6594", "US"),
        ("03-1234-5678", "JP"),
        ("090-1234-5678", "JP"),
        ("0151 12345678", "DE"),
        ("06 12 34 56 78", "FR"),
        ("51234567", "KW"),
        ("06 6982 0000", "IT"),  # Italian leading zero
    ],
)
def test_the_shortcuts_take_the_common_shapes(value: str, region: str | None) -> None:
    built = _without_parse(value, region)
    assert built is not None
    assert built == phonenumbers.parse(value, region)


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("+39 06 6982 0000", "IT"),  # Italian leading zero after "+"
        ("+54 9 11 1234 5678", "AR"),  # Argentina's national prefix pattern matches anything
        ("+44 (0) 20 7946 0958", "GB"),  # a national prefix after the country code
        ("+999 1234", None),  # no such country calling code
        ("+1 2", "US"),  # too short
        ("+7 812 123-45-67", "RU"),  # starts with Russia's national prefix, 8 (parse keeps it: St Petersburg)
        ("1 415 964 6594", "US"),  # the country code in front of a national number
        ("011 44 20 7946 0958", "US"),  # an international dialling prefix
        ("0612345678", None),  # no default region
        ("0612345678", "XX"),
        ("12", "US"),
        ("415-964-6594 ext. 12", "US"),
        ("1-800-FLOWERS", "US"),
    ],
)
def test_parse_decides_whenever_it_could_differ(value: str, region: str | None) -> None:
    assert _without_parse(value, region) is None
    assert normalize_phone.__wrapped__(value, region) == reference(value, region)


def numbers_to_validate(seed: int, per_example: int) -> list[phonenumbers.PhoneNumber]:
    """PhoneNumbers around every example number: its own, and `per_example` others sharing 0 to all of its leading
    digits, with random lengths from 2 to 17 digits, some with Italian leading zeros, and some under a country
    calling code no region has."""
    rng = Random(seed)  # noqa: S311 - test data, not secrets
    numbers = []
    for example in _examples():
        numbers.append(example)
        nsn = phonenumbers.national_significant_number(example)
        for _ in range(per_example):
            keep = nsn[: rng.randint(0, len(nsn))]
            digits = keep + "".join(rng.choice("0123456789") for _ in range(max(0, rng.randint(2, 17) - len(keep))))
            digits = digits.lstrip("0") or "1"
            number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int(digits))
            if rng.random() < 0.1:
                number.italian_leading_zero = True
                number.number_of_leading_zeros = rng.choice((None, 1, 2))
            if rng.random() < 0.02:
                number.country_code = rng.choice((0, 999, 2000))
            numbers.append(number)
    return numbers


def test_validity_is_phonenumbers_own() -> None:
    numbers = numbers_to_validate(seed=20261121, per_example=8)
    assert len(numbers) > 10_000
    assert sum(map(phonenumbers.is_valid_number, numbers)) > len(numbers) // 10  # valid and invalid both tried
    assert [n for n in numbers if _is_valid(n) != phonenumbers.is_valid_number(n)] == []
