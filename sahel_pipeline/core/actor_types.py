"""The actor-type vocabulary: ACLED's actor types (its `inter` codes) and the types the pipeline gives groups.

Plain Python, no Polars: the model workers import it with the models (`ModelConfig.alerted_types`).
"""

from __future__ import annotations

# ACLED's eight actor types, in the order of their inter codes 1-8. Older exports write the code, newer ones the words
# ("State forces", ..., "External/Other forces"); both are read into these words.
INTER_TYPES: tuple[str, ...] = (
    "state forces",
    "rebel group",
    "political militia",
    "identity militia",
    "rioters",
    "protesters",
    "civilians",
    "external forces",
)
# ACLED names armed men it cannot identify "Unidentified Armed Group (Country)" and codes them political militia:
# a type of their own, so that analysts can tell an unnamed perpetrator from a named militia.
UNIDENTIFIED_ARMED_GROUP = "unidentified armed group"
UNKNOWN = "unknown"  # no code, no alias-table type, no name pattern: not alerted unless listed
GROUP_TYPES: tuple[str, ...] = (*INTER_TYPES, UNIDENTIFIED_ARMED_GROUP, UNKNOWN)

# Types whose groups are alerted by default: the armed ones. Protesters and rioters are counted in the country-level
# `demonstrations` indicator; civilians (victims, and participants such as women, students or miners) never are.
ARMED_TYPES: tuple[str, ...] = (
    "state forces",
    "rebel group",
    "political militia",
    "identity militia",
    "external forces",
    UNIDENTIFIED_ARMED_GROUP,
)

# Every text that names a type in an inter column (lower-cased), codes and words.
INTER_READINGS: dict[str, str] = {
    **{str(code): word for code, word in enumerate(INTER_TYPES, start=1)},
    **{word: word for word in INTER_TYPES},
    "external/other forces": "external forces",
}
NO_ACTOR_CODE = "0"  # inter2 of an event without a second actor


def check_types(types: list[str] | tuple[str, ...], what: str) -> tuple[str, ...]:
    """The types as given, or a ValueError naming the ones that are not in the vocabulary."""
    wrong = [t for t in types if t not in GROUP_TYPES]
    if wrong:
        raise ValueError(
            f"{what}: unknown actor type(s) {', '.join(map(repr, wrong))}; the types are {', '.join(GROUP_TYPES)}"
        )
    return tuple(types)
