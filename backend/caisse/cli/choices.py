"""French names of the closed sets the `caisse` command takes as option values.

Each maps the French name shown in `--help` to the stored code the services use; the codes (the
old English values) stay accepted, and case and accents are ignored (`volee` is `volée`).
Declare an option with `VENDOR_KIND.option(help=...)`.
"""

from __future__ import annotations

from caisse.models import AllowanceKind, BlockReason, CardType, ConventionStatus, Role, UnspentPolicy, VendorKind
from caisse_common.cli_french import Choices

VENDOR_KIND = Choices({
    "producteur": VendorKind.PRODUCER, "étal": VendorKind.MARKET_STALL, "commerce": VendorKind.SHOP,
    "épicerie": VendorKind.EPICERIE, "coopérative": VendorKind.COOPERATIVE, "boulangerie": VendorKind.BAKERY,
    "autre": VendorKind.OTHER,
})
ACCREDITATION_STATUS = Choices({"en_attente": ConventionStatus.PENDING, "conventionné": ConventionStatus.ACTIVE,
                                "suspendu": ConventionStatus.SUSPENDED, "terminé": ConventionStatus.ENDED})
CARD_TYPE = Choices({"simple": CardType.BASIC, "sécurisée": CardType.SECURE})
# What staff may give as a reason: replaced and flagged are set by the services themselves.
BLOCK_REASON = Choices({"perdue": BlockReason.LOST, "volée": BlockReason.STOLEN})
ROLE = Choices({"administration": Role.ADMIN, "coordination": Role.COORDINATOR, "trésorerie": Role.TREASURER,
                "comité": Role.COMMITTEE})
ALLOWANCE_RULE = Choices({"forfait": AllowanceKind.FLAT, "par_membre": AllowanceKind.PER_MEMBER,
                          "cotisation_moyenne": AllowanceKind.AVERAGE_CONTRIBUTION})
ALLOWANCE_UNSPENT = Choices({"conserver": UnspentPolicy.CARRY_OVER, "rendre": UnspentPolicy.EXPIRE})
