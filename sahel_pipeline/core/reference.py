"""Reference lists the validation and the source adapters share: ACLED's event taxonomy and country names."""

from __future__ import annotations

import re

# ACLED codebook (2019 onwards): event type -> its sub-event types.
ACLED_TAXONOMY: dict[str, frozenset[str]] = {
    "Battles": frozenset(
        {"Armed clash", "Government regains territory", "Non-state actor overtakes territory"}
    ),
    "Explosions/Remote violence": frozenset(
        {
            "Chemical weapon",
            "Air/drone strike",
            "Suicide bomb",
            "Shelling/artillery/missile attack",
            "Remote explosive/landmine/IED",
            "Grenade",
        }
    ),
    "Violence against civilians": frozenset(
        {"Sexual violence", "Attack", "Abduction/forced disappearance"}
    ),
    "Protests": frozenset(
        {"Peaceful protest", "Protest with intervention", "Excessive force against protesters"}
    ),
    "Riots": frozenset({"Violent demonstration", "Mob violence"}),
    "Strategic developments": frozenset(
        {
            "Agreement",
            "Arrests",
            "Change to group/activity",
            "Disrupted weapons use",
            "Headquarters or base established",
            "Looting/property destruction",
            "Non-violent transfer of territory",
            "Other",
        }
    ),
}
EVENT_TYPES: frozenset[str] = frozenset(ACLED_TAXONOMY)
VIOLENT_EVENT_TYPES: frozenset[str] = frozenset(
    {"Battles", "Explosions/Remote violence", "Violence against civilians"}
)

# UCDP GED type_of_violence -> (ACLED event type, sub-event type).
UCDP_VIOLENCE_TYPES: dict[str, tuple[str, str]] = {
    "1": ("Battles", "Armed clash"),  # state-based
    "2": ("Battles", "Armed clash"),  # non-state
    "3": ("Violence against civilians", "Attack"),  # one-sided
}

# Country names as ACLED writes them; UCDP names are mapped onto these.
ACLED_COUNTRIES: frozenset[str] = frozenset(
    """
Afghanistan|Akrotiri and Dhekelia|Albania|Algeria|American Samoa|Andorra|Angola|Anguilla|Antarctica|
Antigua and Barbuda|Argentina|Armenia|Aruba|Australia|Austria|Azerbaijan|Bahamas|Bahrain|Bangladesh|
Barbados|Belarus|Belgium|Belize|Benin|Bermuda|Bhutan|Bolivia|Bosnia and Herzegovina|Botswana|Brazil|
British Indian Ocean Territory|British Virgin Islands|Brunei|Bulgaria|Burkina Faso|Burundi|Cambodia|
Cameroon|Canada|Cape Verde|Caribbean Netherlands|Cayman Islands|Central African Republic|Chad|Chile|
China|Christmas Island|Cocos (Keeling) Islands|Colombia|Comoros|Cook Islands|Costa Rica|Croatia|Cuba|
Curacao|Cyprus|Czech Republic|Democratic Republic of Congo|Denmark|Djibouti|Dominica|
Dominican Republic|East Timor|Ecuador|Egypt|El Salvador|Equatorial Guinea|Eritrea|Estonia|eSwatini|
Ethiopia|Falkland Islands|Faroe Islands|Fiji|Finland|France|French Guiana|French Polynesia|Gabon|
Gambia|Georgia|Germany|Ghana|Gibraltar|Greece|Greenland|Grenada|Guadeloupe|Guam|Guatemala|Guernsey|
Guinea|Guinea-Bissau|Guyana|Haiti|Heard Island and McDonald Islands|Honduras|Hungary|Iceland|India|
Indonesia|Iran|Iraq|Ireland|Isle of Man|Israel|Italy|Ivory Coast|Jamaica|Japan|Jersey|Jordan|
Kazakhstan|Kenya|Kiribati|Kosovo|Kuwait|Kyrgyzstan|Laos|Latvia|Lebanon|Lesotho|Liberia|Libya|
Liechtenstein|Lithuania|Luxembourg|Madagascar|Malawi|Malaysia|Maldives|Mali|Malta|Marshall Islands|
Martinique|Mauritania|Mauritius|Mayotte|Mexico|Micronesia|Moldova|Monaco|Mongolia|Montenegro|
Montserrat|Morocco|Mozambique|Myanmar|Namibia|Nauru|Nepal|Netherlands|New Caledonia|New Zealand|
Nicaragua|Niger|Nigeria|Niue|Norfolk Island|North Korea|North Macedonia|Northern Mariana Islands|
Norway|Oman|Pakistan|Palau|Palestine|Panama|Papua New Guinea|Paraguay|Peru|Philippines|
Pitcairn|Poland|Portugal|Puerto Rico|Qatar|Republic of Congo|Reunion|Romania|Russia|Rwanda|
Saint Helena, Ascension and Tristan da Cunha|Saint Kitts and Nevis|Saint Lucia|
Saint Pierre and Miquelon|Saint Vincent and the Grenadines|Saint-Barthelemy|Saint-Martin|Samoa|
San Marino|Sao Tome and Principe|Saudi Arabia|Senegal|Serbia|Seychelles|Sierra Leone|Singapore|
Sint Maarten|Slovakia|Slovenia|Solomon Islands|Somalia|South Africa|
South Georgia and the South Sandwich Islands|South Korea|South Sudan|Spain|Sri Lanka|Sudan|Suriname|
Sweden|Switzerland|Syria|Taiwan|Tajikistan|Tanzania|Thailand|Togo|Tokelau|Tonga|
Trinidad and Tobago|Tunisia|Turkey|Turkmenistan|Turks and Caicos Islands|Tuvalu|Uganda|Ukraine|
United Arab Emirates|United Kingdom|United States|Uruguay|Uzbekistan|Vanuatu|Vatican City|Venezuela|
Vietnam|Virgin Islands, U.S.|Wallis and Futuna|Western Sahara|Yemen|Zambia|Zimbabwe
""".replace("\n", "").split("|")
)

# UCDP GED names (after dropping a historical name in brackets) that ACLED spells differently.
UCDP_COUNTRY_NAMES: dict[str, str] = {
    "DR Congo": "Democratic Republic of Congo",
    "Congo": "Republic of Congo",
    "Bosnia-Herzegovina": "Bosnia and Herzegovina",
    "Macedonia, FYR": "North Macedonia",
    "Kingdom of eSwatini": "eSwatini",
    "United States of America": "United States",
    "Cote D'Ivoire": "Ivory Coast",
    "Côte d'Ivoire": "Ivory Coast",
    "Timor-Leste": "East Timor",
}

_BRACKETED = re.compile(r"\s*\(.*\)\s*$")


def acled_country_name(ucdp_name: str) -> str:
    """ACLED's spelling of a UCDP GED country name, e.g. 'DR Congo (Zaire)' -> 'Democratic Republic of Congo'."""
    bare = _BRACKETED.sub("", ucdp_name).strip()
    return UCDP_COUNTRY_NAMES.get(bare, bare)


def _file_name_keys() -> dict[str, str]:
    """Lower-case tokens a file name may use for a country: its full name, or its first word when unambiguous."""
    keys: dict[str, str] = {}
    first_words: dict[str, list[str]] = {}
    for country in ACLED_COUNTRIES:
        normalised = re.sub(r"[^a-z]+", "_", country.lower()).strip("_")
        keys[normalised] = country
        first_words.setdefault(normalised.split("_")[0], []).append(country)
    for word, countries in first_words.items():
        if len(countries) == 1 and len(word) >= 4:
            keys.setdefault(word, countries[0])
    return keys


_COUNTRY_KEYS = _file_name_keys()


def country_from_file_name(name: str) -> str | None:
    """The single country a file name names ('acled_burkina_1997-2023.csv' -> 'Burkina Faso'), else None."""
    stem = "_" + re.sub(r"[^a-z]+", "_", name.lower()) + "_"
    keys = [key for key in _COUNTRY_KEYS if f"_{key}_" in stem]
    # 'guinea_bissau' also contains 'guinea', 'south_sudan' contains 'sudan': the longer name wins.
    keys = [k for k in keys if not any(k != other and f"_{k}_" in f"_{other}_" for other in keys)]
    found = {_COUNTRY_KEYS[k] for k in keys}
    return found.pop() if len(found) == 1 else None
