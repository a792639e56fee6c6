"""Training profiles: the built-in generator and loaders for external persona files."""

from training.data.external import load_profiles, parse_record
from training.data.persona import split_persona
from training.data.profiles import (
    OTHER,
    Profile,
    Trait,
    as_trait,
    generate_profiles,
    split_profiles,
    write_profiles,
)

__all__ = [
    "OTHER",
    "Profile",
    "Trait",
    "as_trait",
    "generate_profiles",
    "load_profiles",
    "parse_record",
    "split_persona",
    "split_profiles",
    "write_profiles",
]
