"""Seed data of the demo caisse (`caisse demo`): vendors, households, allowances.

Plain constants and one deterministic generator, so the demo stays readable and a re-run with the
same seed builds the same caisse. Names shown to a person are in French.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

ZONE_CENTRE = "Centre – Les Arceaux"
ZONE_MOSSON = "Mosson – La Paillade"
MARKET_ARCEAUX = "Marché des Arceaux"
MARKET_PAILLADE = "Marché de la Paillade"


@dataclass(frozen=True, slots=True)
class DemoVendor:
    name: str
    kind: str  # one of caisse.models.VendorKind
    market: str | None
    zone: str
    iban: str | None = None


VENDORS: tuple[DemoVendor, ...] = (
    DemoVendor("Les Jardins de Lavérune", "producer", MARKET_ARCEAUX, ZONE_CENTRE),
    DemoVendor("Fromagerie du Pic Saint-Loup", "producer", MARKET_ARCEAUX, ZONE_CENTRE),
    DemoVendor("Le Fournil paysan de Grabels", "bakery", MARKET_ARCEAUX, ZONE_CENTRE),
    DemoVendor("Vergers de la vallée de l'Hérault", "producer", MARKET_ARCEAUX, ZONE_CENTRE),
    DemoVendor("Miellerie des Cévennes", "producer", MARKET_ARCEAUX, ZONE_CENTRE),
    DemoVendor("Maraîchage des Terres de Mosson", "producer", MARKET_PAILLADE, ZONE_MOSSON),
    DemoVendor("Chèvrerie du Mas de Bel-Air", "producer", MARKET_PAILLADE, ZONE_MOSSON),
    DemoVendor("Volailles et œufs du Mas Rouge", "producer", MARKET_PAILLADE, ZONE_MOSSON),
    DemoVendor("Légumineuses et céréales du Lauragais", "producer", MARKET_PAILLADE, ZONE_MOSSON),
    DemoVendor("Boucherie paysanne du Larzac", "producer", MARKET_PAILLADE, ZONE_MOSSON),
    DemoVendor("Supermarché coopératif La Panière", "cooperative", None, ZONE_MOSSON,
               iban="FR7630006000011234567890189"),
    DemoVendor("Épicerie solidaire Le Petit Panier", "epicerie", None, ZONE_CENTRE,
               iban="FR7610107001011234567890129"),
)

FIRST_NAMES = (
    "Nadia", "Sophie", "Karim", "Isabelle", "Mamadou", "Claire", "Youssef", "Martine", "Thierry",
    "Fatima", "Julien", "Aïcha", "Nathalie", "Mehdi", "Chantal", "Olivier", "Samira", "Pascal",
    "Élodie", "Rachid", "Sylvie", "Moussa", "Camille", "Hélène", "Bruno", "Leïla", "Jean-Pierre",
    "Amina", "Laurent", "Inès", "Mathieu", "Khadija", "Sandrine", "Ibrahima", "Lucie", "Farid",
)
SURNAMES = (
    "Martin", "Bernard", "Benali", "Dubois", "Diallo", "Moreau", "Haddad", "Laurent", "Garcia",
    "Roux", "Fournier", "Nguyen", "Girard", "Bonnet", "Mansouri", "Dupont", "Lambert", "Traoré",
    "Fontaine", "Rousseau", "Ferreira", "Vincent", "Mercier", "Belkacem", "Blanc", "Guérin",
    "Lopez", "Boyer", "Chevalier", "Kaya", "Gauthier", "Perrin", "Ouedraogo", "Robin", "Clément",
    "Morin", "Sanchez", "Henry", "Mathieu", "Ait Ali", "Masson", "Da Silva", "Lefèvre", "Faure",
    "Bouzid", "Michel", "Camara", "Arnaud", "Rey", "Ziani", "Aubert", "Barbier", "Cherif", "Colin",
    "Brun", "Marchand", "Hamidi", "Vidal", "Sow", "Pons",
)
HOUSEHOLD_SIZES = (1, 2, 3, 4, 5, 6)
HOUSEHOLD_SIZE_WEIGHTS = (30, 25, 18, 15, 8, 4)
HOUSEHOLD_COUNT = 60
FOUR_BYTE_UID_EVERY = 12  # a few older MIFARE Classic cards with 4-byte UIDs

ALLOWANCE_FIRST_MEMBER_CENTS = 150_00
ALLOWANCE_EXTRA_MEMBER_CENTS = 75_00


@dataclass(frozen=True, slots=True)
class DemoHousehold:
    name: str
    members: int
    zone: str
    card_uid: bytes

    @property
    def allowance_cents(self) -> int:
        return ALLOWANCE_FIRST_MEMBER_CENTS + ALLOWANCE_EXTRA_MEMBER_CENTS * (self.members - 1)


def card_uid(rng: random.Random, index: int) -> bytes:
    """A 7-byte NXP UID (manufacturer byte 0x04), or for every twelfth card a 4-byte one."""
    if index % FOUR_BYTE_UID_EVERY == FOUR_BYTE_UID_EVERY - 1:
        return bytes([0x08]) + rng.randbytes(3)  # 0x08: random-ID MIFARE Classic style
    return bytes([0x04]) + rng.randbytes(6)


def households(rng: random.Random) -> list[DemoHousehold]:
    """HOUSEHOLD_COUNT households, half in each neighbourhood, distinct names and card UIDs."""
    surnames = rng.sample(SURNAMES, HOUSEHOLD_COUNT)
    result = []
    for index, surname in enumerate(surnames):
        members = rng.choices(HOUSEHOLD_SIZES, HOUSEHOLD_SIZE_WEIGHTS)[0]
        zone = ZONE_CENTRE if index % 2 == 0 else ZONE_MOSSON
        result.append(DemoHousehold(f"{rng.choice(FIRST_NAMES)} {surname}", members, zone, card_uid(rng, index)))
    assert len({h.card_uid for h in result}) == len(result), "card UIDs collide; change the seed"
    return result
