"""Band roles and sensor profiles.

A profile maps band roles (blue, green, red, nir, swir1, swir2) to 1-based band
numbers and says how raw values scale to reflectance (0–1). ``auto`` reads roles from
the band descriptions (``B02``/``B03``/``B04``/``B08``/``B11``/``B12``, ``blue``,
``nir`` ...) and otherwise assumes GF's 4-band order blue, green, red, nir.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from swc_rs.errors import InputError, RasterInputError

ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")

#: Band description → role. Sentinel-2 names, Landsat TM/ETM+/OLI words and plain words.
_DESCRIPTION_ROLES = {
    "blue": "blue", "b": "blue", "b02": "blue", "b2": "blue", "coastal_blue": None,
    "green": "green", "g": "green", "b03": "green", "b3": "green",
    "red": "red", "r": "red", "b04": "red", "b4": "red",
    "nir": "nir", "b08": "nir", "b8": "nir", "near_infrared": "nir", "near-infrared": "nir",
    "nir08": "nir",
    "swir1": "swir1", "swir_1": "swir1", "swir16": "swir1", "b11": "swir1",
    "swir2": "swir2", "swir_2": "swir2", "swir22": "swir2", "b12": "swir2",
}

#: Sentinel-2 band names that are not one of our roles (red edge, narrow NIR ...).
_IGNORED = {"b01", "b05", "b06", "b07", "b8a", "b09", "b10", "coastal", "aerosol", "cirrus", "pan"}


@dataclass(frozen=True)
class SensorProfile:
    """How to read one sensor's bands.

    name : str
        gf, s2, landsat or rgb (or "custom" from --bands).
    bands : dict[str, int]
        Role → 1-based band index in the file.
    scale : float | None
        Raw value × scale = reflectance; ``None`` picks by dtype (uint8 1/255,
        uint16/int16 1/10000, float: 1 when values look like reflectance, else 1/10000).
    """

    name: str
    bands: dict[str, int] = field(default_factory=dict)
    scale: float | None = None

    def has(self, role: str) -> bool:
        return role in self.bands

    @property
    def required(self) -> tuple[str, ...]:
        return ("blue", "green", "red")


PROFILES = {
    "gf": SensorProfile("gf", {"blue": 1, "green": 2, "red": 3, "nir": 4}),
    # Sentinel-2 L1C/L2A as a 10-band stack B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12 (OSCD order).
    "s2": SensorProfile(
        "s2", {"blue": 1, "green": 2, "red": 3, "nir": 7, "swir1": 9, "swir2": 10}
    ),
    # Landsat TM/ETM+ 1,2,3,4,5,7 or OLI 2–7 as a 6-band stack.
    "landsat": SensorProfile(
        "landsat", {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}
    ),
    "rgb": SensorProfile("rgb", {"red": 1, "green": 2, "blue": 3}),
}


def parse_band_map(text: str) -> dict[str, int]:
    """Parse ``--bands blue=1,green=2,red=3,nir=4``.

    Raises
    ------
    InputError
        Unknown role, non-integer or non-positive band number.
    """
    mapping: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, number = item.partition("=")
        role = role.strip().lower()
        if not sep or role not in ROLES:
            raise InputError(
                f"--bands item {item!r} is not ROLE=N with ROLE in {', '.join(ROLES)}",
                fix="write e.g. --bands blue=1,green=2,red=3,nir=4",
            )
        try:
            value = int(number)
        except ValueError:
            value = 0
        if value < 1:
            raise InputError(f"--bands {role}={number!r}: band numbers start at 1", fix="use 1-based band numbers")
        mapping[role] = value
    return mapping


def roles_from_descriptions(descriptions: tuple[str | None, ...]) -> dict[str, int]:
    """Roles found in band descriptions; empty when they say nothing useful."""
    roles: dict[str, int] = {}
    for index, text in enumerate(descriptions, start=1):
        if not text:
            continue
        key = re.sub(r"[\s]+", "_", text.strip().lower())
        key = re.sub(r"^(band_?)", "b", key) if re.match(r"^band_?\d", key) else key
        if key in _IGNORED:
            continue
        role = _DESCRIPTION_ROLES.get(key)
        if role is None:
            for word, candidate in (("swir", None), ("nir", "nir"), ("blue", "blue"), ("green", "green"), ("red", "red")):
                if word in key and candidate and "edge" not in key:
                    role = candidate
                    break
        if role and role not in roles:
            roles[role] = index
    return roles


def resolve_profile(
    sensor: str,
    descriptions: tuple[str | None, ...],
    count: int,
    *,
    band_map: dict[str, int] | None = None,
    path: object = None,
) -> SensorProfile:
    """Pick the band roles for a raster.

    Parameters
    ----------
    sensor
        ``auto``, ``gf``, ``s2``, ``landsat`` or ``rgb``.
    descriptions
        The raster's band descriptions.
    count
        Number of bands in the raster.
    band_map
        Explicit roles from ``--bands``; they win over everything else.

    Raises
    ------
    RasterInputError
        Too few bands for the sensor, a role pointing past the last band, or no
        blue/green/red bands.
    """
    if sensor not in ("auto", *PROFILES):
        raise InputError(
            f"--sensor {sensor!r} is not known", fix=f"use auto, {', '.join(PROFILES)}"
        )
    if band_map:
        profile = SensorProfile("custom", dict(band_map))
    elif sensor != "auto":
        profile = PROFILES[sensor]
    else:
        found = roles_from_descriptions(descriptions)
        if {"blue", "green", "red"} <= set(found):
            name = "s2" if any((d or "").upper().startswith("B0") for d in descriptions) else (
                "landsat" if "swir1" in found else ("gf" if "nir" in found else "rgb")
            )
            profile = SensorProfile(name, found)
        elif count >= 4:
            profile = PROFILES["gf"]
        else:
            profile = PROFILES["rgb"]
    top = max(profile.bands.values())
    if top > count:
        raise RasterInputError(
            f"has {count} band(s) but the {profile.name} profile needs band {top} "
            f"({', '.join(f'{r}={b}' for r, b in profile.bands.items())})",
            path=path,
            fix="give the full multi-band image, pick another --sensor, or map bands with --bands ROLE=N",
        )
    missing = [r for r in profile.required if r not in profile.bands]
    if missing:
        raise RasterInputError(
            f"no {', '.join(missing)} band could be identified",
            path=path,
            fix="map the bands explicitly, e.g. --bands blue=1,green=2,red=3,nir=4",
        )
    return profile


def reflectance_scale(dtype: str, sample_max: float | None = None) -> float:
    """Factor from raw values to 0–1 reflectance for a data type."""
    if dtype == "uint8":
        return 1.0 / 255.0
    if dtype in ("uint16", "int16", "uint32", "int32"):
        return 1.0 / 10000.0
    if sample_max is not None and sample_max <= 2.0:
        return 1.0
    return 1.0 / 10000.0
