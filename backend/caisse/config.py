"""The one settings object. Every environment variable is read here (prefix CAISSE_), nowhere else."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from caisse.models import AllowanceKind, UnspentPolicy

# The Latin character set every SEPA bank must accept (EPC guidelines): anything else may be
# refused or garbled by a bank on the way, so names and texts are transliterated to it. Here, since
# the settings check the caisse's own name against it; caisse.settlement.sepa writes every name through it.
_OUTSIDE_SEPA = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]+")
_SPACES = re.compile(r" {2,}")
MAX_NAME_CHARS = 70  # Max70Text: a creditor's or debtor's name


def sepa_text(value: str, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """`value` in the SEPA character set: letters transliterated (text_unidecode, as sepaxml does),
    `&` written "et" (the caisse is French), anything else outside the set dropped, spaces
    squeezed; "" when nothing is left (a name of emoji only)."""
    from text_unidecode import unidecode

    text = unidecode(value.replace("&", " et "))
    text = _SPACES.sub(" ", _OUTSIDE_SEPA.sub(" ", text)).strip()
    return text[:max_chars].rstrip()


class MeansKind(enum.StrEnum):
    """How a household's means are recorded (caisse.members.means), and what the indicative scale reads."""
    QUARTILE = "quartile"  # an income quartile of the territory (the sortition questionnaire's bands)
    INCOME = "income"  # a monthly income


class LeavingBalance(enum.StrEnum):
    """A departed household's unspent balance, once the terminals' offline age has passed."""
    FUND = "fund"  # back to the allowance fund
    KEEP = "keep"  # left on its account, for staff to settle by hand (the ledger shows it)


# Allowed only in development, so `make run` works on a fresh clone. Documented in docs/backend.md.
DEV_ADMIN_TOKEN = "dev-admin-token"
# The pain.001 versions sepaxml builds and ships an XSD for.
SepaSchema = Literal["pain.001.001.03", "pain.001.001.09", "pain.001.001.10", "pain.001.001.11"]
# Public card keys, allowed outside production only (docs/cards.md, "Keys"): a card personalized
# with them can be forged by anyone who reads this file.
DEV_CARD_MASTER_KEY_HEX = "00" * 16
DEV_CARD_META_KEY_HEX = "00" * 16
# An example account (the bank's published test IBAN): refused in production.
PLACEHOLDER_DEBTOR_IBAN = "FR7630006000011234567890189"
# Public member-code master, development only: with it anyone derives every terminal's code key.
DEV_MEMBER_CODE_MASTER_KEY_HEX = "00" * 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAISSE_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./caisse.db"
    admin_token: str = DEV_ADMIN_TOKEN

    # Limits sent to terminals and enforced by ingestion (docs/protocol.md).
    max_payment_cents: int = Field(default=15_000, gt=0)
    pin_threshold_cents: int = Field(default=5_000, ge=0)
    offline_max_age_s: int = Field(default=259_200, gt=0)
    void_window_s: int = Field(default=300, gt=0)
    sync_clock_window_s: int = Field(default=300, gt=0)
    # Basic (UID-only) cards can be cloned: a lower ceiling bounds what one clone takes per tap.
    basic_card_max_payment_cents: int = Field(default=5_000, gt=0)
    code_max_tries: int = Field(default=3, gt=0, le=255)  # wrong member codes before a terminal locks a card
    # Offline budget (sync v2, docs/ledger.md "Offline limits"): per household, per terminal and per
    # day, at most min(balance at sync x share, daily cap). The share in basis points (5000 = 50 %).
    offline_share_bp: int = Field(default=5_000, gt=0, le=10_000)
    offline_daily_cap_cents: int = Field(default=10_000, gt=0, lt=2**31)

    # Secure cards (NTAG 424 DNA, docs/cards.md): AN10922 master of the per-card file-read keys,
    # the SDM meta-read key shared by all cards, and the diversification input after the UID.
    card_master_key_hex: str = Field(default=DEV_CARD_MASTER_KEY_HEX, pattern=r"^[0-9a-fA-F]{32}$")
    card_meta_key_hex: str = Field(default=DEV_CARD_META_KEY_HEX, pattern=r"^[0-9a-fA-F]{32}$")
    card_key_application_id_hex: str = Field(default="", pattern=r"^([0-9a-fA-F]{2}){0,3}$")
    card_key_system_id_hex: str = Field(default="", pattern=r"^([0-9a-fA-F]{2}){0,21}$")
    # Member codes (docs/protocol.md, "Member-code verifiers"): each terminal's code key is derived
    # from this secret and its id, and written into its ATECC608 at provisioning.
    member_code_master_key_hex: str = Field(default=DEV_MEMBER_CODE_MASTER_KEY_HEX, pattern=r"^[0-9a-fA-F]{64}$")

    # Allowances (docs/settlement.md): the rule the citizens' committee chose.
    allowance_rule: AllowanceKind = AllowanceKind.FLAT
    allowance_flat_cents: int = Field(default=10_000, ge=0)  # Montpellier: 100 per household
    allowance_base_cents: int = Field(default=15_000, ge=0)  # Gironde: 150 ...
    allowance_per_extra_member_cents: int = Field(default=7_500, ge=0)  # ... + 75 per extra member
    allowance_pro_rata: bool = True  # a household joining mid-month gets the days left
    allowance_unspent: UnspentPolicy = UnspentPolicy.CARRY_OVER
    allowance_carry_over_cap_cents: int = Field(default=5_000, ge=0)

    # Contributions and the fund (docs/settlement.md). Percentages in basis points (5000 = 50 %).
    contribution_minimum_cents: int = Field(default=0, ge=0)
    # Suggested contribution by monthly income: [[income up to, in cents, suggested cents], ...]
    contribution_brackets: list[tuple[int, int]] = [(100_000, 1_000), (200_000, 3_000), (350_000, 6_000)]
    contribution_above_brackets_cents: int = Field(default=10_000, ge=0)
    # How a household's means are recorded (caisse.members.means): an income quartile of the territory (the
    # sortition questionnaire's 4 bands) or a monthly income; the indicative scale reads the same one.
    means_kind: MeansKind = MeansKind.QUARTILE
    # Indicative contribution per income quartile, lowest first: [q1, q2, q3, q4] in cents.
    contribution_by_quartile_cents: list[Annotated[int, Field(ge=0)]] = Field(default=[1_000, 2_500, 5_000, 8_000], min_length=4, max_length=4)
    # The State tops up contributions (Montpellier, phase 2: 50 %); 0 when no partner matches.
    matching_basis_points: int = Field(default=5_000, ge=0, le=100_000)
    platform_fee_basis_points: int = Field(default=0, ge=0, le=10_000)

    # Settlement: who pays the vendors, from which account, and where the files go.
    settlement_requires_approval: bool = False  # True: a second person (treasurer) approves
    settlement_dir: str = "./settlements"
    settlement_timezone: str = "Europe/Paris"
    sepa_schema: SepaSchema = "pain.001.001.03"  # the version the caisse's bank accepts, unless listed below
    # pain.001 version per bank of the caisse: BIC (11 letters, or its first 8) -> version (caisse.settlement.sepa)
    sepa_schema_by_bank: dict[str, SepaSchema] = {}
    debtor_name: str = "Caisse alimentaire commune"
    debtor_iban: str = PLACEHOLDER_DEBTOR_IBAN
    debtor_bic: str = "AGRIFRPPXXX"

    # Nothing waits forever (docs/operations.md): records held for review, cards flagged as possibly
    # cloned, households and vendor payables below zero, waiting longer than this, are listed by
    # `caisse verify` and on the console's home page.
    overdue_after_days: int = Field(default=7, ge=0, le=3650)

    # Personal data (docs/guide/adhesion.md): names and contacts of former members are erased this
    # many months after their end date (volunteers never drawn: after their draw was created).
    retention_months: int = Field(default=24, ge=1, le=1200)
    # What happens to a departed household's unspent balance once the terminals' offline age has
    # passed (caisse.members.service).
    leaving_balance: LeavingBalance = LeavingBalance.FUND

    # Web console (docs/console.md). Cookies are marked Secure outside development.
    console_session_lifetime_s: int = Field(default=43_200, gt=0)  # a working day, then sign in again
    console_login_max_failures: int = Field(default=5, gt=0)  # per e-mail address, within the window
    console_login_window_s: int = Field(default=900, gt=0)

    @model_validator(mode="after")
    def _refuse_unsafe_settings(self) -> Settings:
        """Every setting that would be a hole in production, each named, in French, all at once."""
        problems = []
        if self.environment != "development" and self.admin_token in ("", DEV_ADMIN_TOKEN):
            problems.append(f"CAISSE_ADMIN_TOKEN doit être un secret propre à la caisse quand"
                            f" CAISSE_ENVIRONMENT={self.environment} (pas la valeur de développement)")
        elif len(self.admin_token) < 8:
            problems.append("CAISSE_ADMIN_TOKEN doit compter au moins 8 caractères")
        if self.environment == "production":
            if self.database_url.startswith("sqlite"):
                problems.append("CAISSE_DATABASE_URL doit désigner PostgreSQL en production"
                                " (postgresql+psycopg://...), pas SQLite")
            if self.debtor_iban.replace(" ", "").upper() == PLACEHOLDER_DEBTOR_IBAN:
                problems.append("CAISSE_DEBTOR_IBAN doit être l'IBAN du compte de la caisse : la valeur d'exemple"
                                " enverrait les virements depuis un compte qui n'est pas le sien")
            for name, value, public in (("CARD_MASTER_KEY_HEX", self.card_master_key_hex, DEV_CARD_MASTER_KEY_HEX),
                                        ("CARD_META_KEY_HEX", self.card_meta_key_hex, DEV_CARD_META_KEY_HEX),
                                        ("MEMBER_CODE_MASTER_KEY_HEX", self.member_code_master_key_hex,
                                         DEV_MEMBER_CODE_MASTER_KEY_HEX)):
                if value.lower() == public:
                    problems.append(f"CAISSE_{name} doit être une clé propre à la caisse en production")
        if problems:
            raise ValueError(" ; ".join(problems))
        return self

    @field_validator("debtor_name")
    @classmethod
    def _debtor_name_in_sepa_characters(cls, name: str) -> str:
        """The caisse's name goes in every SEPA file as typed: refused (with the form the bank would
        read) unless it is in the SEPA character set already, so nothing is changed behind one's back."""
        sent = sepa_text(name)
        if sent != name or not sent:
            raise ValueError(f"CAISSE_DEBTOR_NAME doit s'écrire dans le jeu de caractères SEPA (lettres sans accents,"
                             f" chiffres, / - ? : ( ) . , ' +) : par exemple « {sent} »")
        return name

    def terminal_limits(self, sync_version: int = 1) -> dict[str, int]:
        """The `limits` of a sync answer (docs/protocol.md): v1's six, or v2's with the offline
        budget and `limits_version`, an identifier of these values (not of the settings object)."""
        limits = {
            "max_payment_cents": self.max_payment_cents,
            "pin_threshold_cents": self.pin_threshold_cents,
            "offline_max_age_s": self.offline_max_age_s,
            "void_window_s": self.void_window_s,
            "basic_card_max_payment_cents": self.basic_card_max_payment_cents,
            "code_max_tries": self.code_max_tries,
        }
        if sync_version >= 2:
            limits |= {"offline_share_bp": self.offline_share_bp, "offline_daily_cap_cents": self.offline_daily_cap_cents}
            limits["limits_version"] = limits_version(limits)
        return limits


def limits_version(limits: dict[str, int]) -> int:
    """A u32 naming a set of limits: the first 4 bytes of SHA-256 of their canonical JSON (never 0).
    Restarting with the same values gives the same version; changing any value gives another."""
    digest = hashlib.sha256(json.dumps(limits, sort_keys=True, separators=(",", ":")).encode()).digest()
    return int.from_bytes(digest[:4], "big") or 1


def settings_problems(error: ValidationError) -> list[str]:
    """What is wrong with the environment, one French sentence per problem (for the command line)."""
    problems = []
    for item in error.errors():
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        where = ".".join(str(part) for part in item.get("loc", ()))
        if where:
            problems.append(f"réglage CAISSE_{where.upper()} invalide : {message}")
        else:
            problems.extend(message.split(" ; "))
    return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
