"""Phone numbers in E.164: phonenumbers' parse, is_valid_number and E.164 format, with shortcuts that give the same
answers for a fraction of the work. Conversion normalises a phone for nearly every order, and phonenumbers is pure
Python: about 23 µs a phone, more than json.loads of a whole WooCommerce order.

- Parsing. For the two shapes people and shops write, "+44 20 7946 0958" and "(415) 964-6594" (ASCII digits with
  spaces, hyphens, dots or brackets), phonenumbers.parse reads nothing but the digits once it has found no extension,
  phone-context or second number (none can be made of those characters). `_international` and `_national` then
  follow parse's own steps on the digits, and hand every case they do not follow (a dialling prefix, a country code
  written in front of a national number, a national prefix after a "+" country code, lengths parse refuses) back to
  parse itself. The national prefix and carrier code are stripped by phonenumbers' own helper.
- Validity. is_valid_number's rule over the same metadata (`_is_valid`), with each region's patterns compiled once
  and a shared country code's region not worked out twice.

tests/unit/test_phone.py compares normalize_phone, the PhoneNumber of each shortcut and the validity rule with
phonenumbers itself, over every region's example numbers in E.164, international and national format, mutated, under
several default regions. phonenumbers is imported on first use: ingest, the writer and the API never parse a phone
(~16 ms of cold start)."""

import re
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberDesc


# Cached per (raw value, default region): one order's webhooks (created, paid, fulfilled...) repeat its phone.
@lru_cache(maxsize=4096)
def normalize_phone(value: str | None, region: str | None) -> str | None:
    """E.164 form of a phone number, or None when it cannot be parsed or is not a valid number.

    Never raises: a bad phone is a data-quality warning, not a reason to drop the whole record.
    """
    if not value or not value.strip():
        return None
    phonenumbers = _library().phonenumbers
    region = region.upper() if region else None
    number = _without_parse(value, region)
    if number is None:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            return None
    if not _is_valid(number):
        return None
    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164


def _without_parse(value: str, region: str | None) -> "PhoneNumber | None":
    """The PhoneNumber phonenumbers.parse(value, region) returns, when a shortcut can tell (`region` upper-case)."""
    if _INTERNATIONAL.fullmatch(value) is not None:
        return _international(value.translate(_SEPARATORS)[1:], region)
    if _NATIONAL.fullmatch(value) is not None and _library().national:
        return _national(value.translate(_SEPARATORS), region)
    return None


# ASCII digits with a few spaces, hyphens, dots or brackets between them: with a "+" and a country code that does not
# start with 0 ("+44 20 7946 0958", "+1 (415) 964-6594"), or without ("(415) 964-6594", "03-1234-5678"); 3 to 20
# digits (parse alone decides on fewer), well under parse's 250 characters.
_INTERNATIONAL = re.compile(r"\+[ ().-]{0,4}[1-9](?:[ ().-]{0,4}[0-9]){2,19}[ ().-]{0,4}", re.ASCII)
_NATIONAL = re.compile(r"[ ().-]{0,4}[0-9](?:[ ().-]{0,4}[0-9]){2,19}[ ().-]{0,4}", re.ASCII)
_SEPARATORS = str.maketrans("", "", " ().-")
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' bounds on a national significant number's digits


class _Library:
    """phonenumbers, loaded once, with the parse helpers `_national` follows parse with (national is False when this
    phonenumbers lacks them: then parse decides alone)."""

    def __init__(self) -> None:
        import phonenumbers
        from phonenumbers import phonenumberutil

        # Keep the metadata's compiled patterns rather than asking re's bounded cache on every match (a tenth of a
        # parse); the patterns, and so the results, are the same.
        phonenumbers.enable_pattern_cache()
        self.phonenumbers: ModuleType = phonenumbers
        helpers = ("_maybe_strip_national_prefix_carrier_code", "_test_number_length")
        self.national = all(hasattr(phonenumberutil, name) for name in helpers)
        self.strip_national_prefix: Any = getattr(phonenumberutil, helpers[0], None)
        self.test_number_length: Any = getattr(phonenumberutil, helpers[1], None)
        result = phonenumbers.ValidationResult
        self.not_kept = (result.TOO_SHORT, result.IS_POSSIBLE_LOCAL_ONLY, result.INVALID_LENGTH)


_LOADED: list[_Library] = []


def _library() -> _Library:
    if not _LOADED:
        _LOADED.append(_Library())
    return _LOADED[0]


def _international(digits: str, region: str | None) -> "PhoneNumber | None":
    """The PhoneNumber `phonenumbers.parse("+" + digits, region)` returns, or None when parse should decide.

    After a "+", parse takes the country calling code (the first 1 to 3 digits that name one) and keeps the rest as
    the national number, except that it may strip a national prefix (when the country's national_prefix_for_parsing
    pattern matches at the start) and marks leading zeros: those cases, and lengths parse refuses, are parse's."""
    phonenumbers = _library().phonenumbers
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None  # parse retries an unknown country code in other ways
    national = digits[size:]
    if not _MIN_NSN <= len(national) <= _MAX_NSN or national[0] == "0":
        return None
    # The metadata parse strips a national prefix with: its default region's, when that is the number's own region.
    number_region = phonenumbers.region_code_for_country_code(country_code)
    if number_region != region:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, number_region)
    else:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(number_region, None)
    national_prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    if national_prefix and _pattern(national_prefix).match(national):
        return None
    number: PhoneNumber = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return number


def _national(digits: str, region: str | None) -> "PhoneNumber | None":
    """The PhoneNumber `phonenumbers.parse(digits, region)` returns for the digits of a national number, or None
    when parse should decide.

    Without a "+", parse needs a known default region; it reads an international dialling prefix (011 from the US)
    or the region's own country code written in front (1 415..., 49 30...) as the start of an international number:
    those cases are parse's. Otherwise the country code is the region's, and the national number the digits, less
    the national prefix and carrier code when what remains has a possible length; leading zeros are marked."""
    lib = _library()
    phonenumbers = lib.phonenumbers
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None
    dialling_prefix = metadata.international_prefix
    if _pattern(dialling_prefix if dialling_prefix is not None else "NonMatch").match(digits):
        return None
    country_code = metadata.country_code
    if digits.startswith(str(country_code)):
        return None
    _carrier, national, _stripped = lib.strip_national_prefix(digits, metadata)
    if lib.test_number_length(national, metadata) in lib.not_kept:
        national = digits
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    number: PhoneNumber = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    if len(national) > 1 and national[0] == "0":  # parse's _set_italian_leading_zeros_for_phone_number
        number.italian_leading_zero = True
        zeros = 1
        while zeros < len(national) - 1 and national[zeros] == "0":  # an all-zero number keeps its last zero
            zeros += 1
        if zeros != 1:
            number.number_of_leading_zeros = zeros
    return number


def _is_valid(number: "PhoneNumber") -> bool:
    """phonenumbers.is_valid_number(number): the number's region (the only one of its country calling code, else the
    first whose leading digits or number types fit it) must have a number type that fits it."""
    phonenumbers = _library().phonenumbers
    country_code = number.country_code
    if country_code is None:
        return False  # no regions, so no region: is_valid_number_for_region(number, None)
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return False
    national = phonenumbers.national_significant_number(number)
    if len(regions) == 1:
        return _is_valid_for_region(national, country_code, regions[0])
    for candidate in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(candidate.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if _pattern(metadata.leading_digits).match(national):
                return _is_valid_for_region(national, country_code, candidate)
        elif _has_type(national, metadata):
            return _is_valid_for_region(national, country_code, candidate, typed=metadata)
    return False


def _is_valid_for_region(
    national: str, country_code: int, region: str, *, typed: "PhoneMetadata | None" = None
) -> bool:
    """phonenumbers.is_valid_number_for_region (`typed`: metadata already known to give the number a type)."""
    phonenumbers = _library().phonenumbers
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(country_code, None)
        if metadata is None:
            return False
    else:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
        # country_code_for_valid_region(region) is this metadata's country code.
        if metadata is None or country_code != metadata.country_code:
            return False
    return metadata is typed or _has_type(national, metadata)


def _has_type(national: str, metadata: "PhoneMetadata") -> bool:
    """phonenumbers' _number_type_helper(national, metadata) != UNKNOWN: the general pattern fits, and so does one of
    the types (a mobile pattern counts unless the metadata says it is the fixed-line one). Which type fits does not
    matter here, so the commonest are tried first."""
    general, types = _descs(metadata)
    if not _fits(national, general):
        return False
    for desc in types:  # noqa: SIM110 - a loop, not any() over a generator: this runs for every phone
        if _fits(national, desc):
            return True
    return False


# (possible lengths, national number pattern) of a number description; None: it fits nothing.
_Desc = tuple[tuple[int, ...], "re.Pattern[str]"] | None
_DESCS: dict[int, tuple["PhoneMetadata", _Desc, tuple[_Desc, ...]]] = {}


def _descs(metadata: "PhoneMetadata") -> tuple[_Desc, tuple[_Desc, ...]]:
    """The metadata's general description and its typed ones (fixed line and mobile first; no mobile when
    same_mobile_and_fixed_line_pattern), compiled once per metadata object."""
    entry = _DESCS.get(id(metadata))
    if entry is None or entry[0] is not metadata:
        mobile = () if metadata.same_mobile_and_fixed_line_pattern else (metadata.mobile,)
        types = (
            metadata.fixed_line,
            *mobile,
            metadata.premium_rate,
            metadata.toll_free,
            metadata.shared_cost,
            metadata.voip,
            metadata.personal_number,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
        )
        entry = _DESCS[id(metadata)] = (metadata, _compiled(metadata.general_desc), tuple(map(_compiled, types)))
    return entry[1], entry[2]


def _compiled(desc: "PhoneNumberDesc | None") -> _Desc:
    if desc is None or not desc.national_number_pattern:
        return None  # phonenumbers: no description, or no pattern, fits nothing
    return tuple(desc.possible_length), _pattern(desc.national_number_pattern)


def _fits(national: str, desc: _Desc) -> bool:
    """phonenumbers' _is_number_matching_desc: a possible length (any, when none is listed) and the whole pattern."""
    if desc is None:
        return False
    lengths, pattern = desc
    if lengths and len(national) not in lengths:
        return False
    return pattern.fullmatch(national) is not None


_PATTERNS: dict[str, "re.Pattern[str]"] = {}  # compiled metadata patterns, as phonenumbers.enable_pattern_cache keeps


def _pattern(regex: str) -> "re.Pattern[str]":
    pattern = _PATTERNS.get(regex)
    if pattern is None:
        pattern = _PATTERNS[regex] = re.compile(regex)
    return pattern
