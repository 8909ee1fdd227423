"""Offline budget per household, per terminal and per day (docs/firmware.md, "Offline budget").

The attack: one household, two cards, five terminals that go offline after a sync. Each terminal
counted spend per card and granted the whole balance, so the household spent ten times it.
"""

import json
import sys

from caisse.db import session_factory
from caisse.fund import overdrafts
from caisse.settlement import statements
from tests.firmware.mpy_runtime import ROOT, run
from tests.firmware.test_end_to_end import SCENARIOS, AppTransport, backend_app, register

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

from caisse_terminal.soft_signer import SoftwareSigner  # noqa: E402

SHARE_BP, CAP_CENTS = 5000, 10000
BALANCE = 15000  # what backend_app credits the household


class Network:
    """The transport to the app, which can be cut."""

    def __init__(self, transport):
        self.transport = transport
        self.down = False

    def __call__(self, method, path, headers, body):
        if self.down:
            raise OSError("network unreachable")
        return self.transport(method, path, headers, body)


def test_one_household_two_cards_five_offline_terminals_approve_a_bounded_total(tmp_path):
    with backend_app(tmp_path, [(rig.ALICE, "basic"), (rig.BOB, "basic")],
                     offline_share_bp=SHARE_BP, offline_daily_cap_cents=CAP_CENTS) as (client, engine, _, vendor_id):
        stalls = []
        for n in range(5):
            signer = SoftwareSigner(bytes(31) + bytes([n + 1]))
            network = Network(AppTransport(client))
            r = rig.Rig(provisioned=False, transport=network, signer=signer)
            r.terminal.policy.terminal_id = register(client, vendor_id, signer.public_key())
            assert r.terminal.sync_now().error is None
            network.down = True
            stalls.append((r, network))
        approved = 0
        for r, _ in stalls:
            for _ in range(20):
                for uid in (rig.ALICE, rig.BOB):
                    if "Paiement accepté" in r.pay("10", uid):
                        approved += 1000
                    r.keys("V")
        per_terminal = min(BALANCE * SHARE_BP // 10000, CAP_CENTS)
        assert approved == 5 * (per_terminal // 1000 * 1000)  # 7 payments of 10 EUR each: 70 <= 75
        for r, network in stalls:
            network.down = False
            assert r.terminal.sync_now().error is None
        with session_factory(engine)() as session:
            assert statements.held_for_review(session) == []  # within the limits they received: owed to the vendors
            [overdraft] = overdrafts.overdrawn_households(session)
            assert overdraft.balance_cents == BALANCE - approved
        r, _ = stalls[-1]  # the last to sync got the balance after every upload
        assert r.pay("1", rig.ALICE) == "Solde | insuffisant"


BUDGET_UNDER_MICROPYTHON = """
import sys
sys.path.insert(0, '/scenarios')
import rig
from caisse_terminal import policy
# Two cards of one household (9), 100 EUR at sync; a budget of min(50 % x 100, 40) = 40 EUR a day.
cards = rig.entry(rig.ALICE, 0, 10000, household=9) + rig.entry(rig.BOB, 0, 10000, household=9)
limits = {'offline_share_bp': 5000, 'offline_daily_cap_cents': 4000}
r = rig.Rig(cards=cards, limits=limits)
out = []
def pay(amount, uid):
    out.append(r.pay(amount, uid))
    r.keys('V')
pay('25', rig.ALICE)
pay('20', rig.BOB)       # 45 > 40 across the household's cards
pay('15', rig.BOB)
r.tap(rig.ALICE)
out.append(r.display.text())
r.keys('V')
again = rig.Rig(files=r.files, now=rig.T0 + 600)   # a power cut: the day's spend is rebuilt from the log
out.append(again.pay('1', rig.ALICE))
again.keys('V')
tomorrow = rig.Rig(files=r.files, now=rig.T0 + 86400)
out.append(tomorrow.pay('30', rig.ALICE))   # a new day, a new budget: 60 EUR of balance left
tomorrow.keys('V')
out.append(tomorrow.pay('15', rig.BOB))
print(json.dumps(out))
""".replace("print(json", "import json\nprint(json")


def test_the_budget_is_per_household_survives_a_reboot_and_renews_each_day_under_micropython():
    screens = json.loads(run(BUDGET_UNDER_MICROPYTHON, mounts=SCENARIOS).strip().splitlines()[-1])
    assert screens == [
        "Paiement accepté | 25,00 EUR | Reste | 75,00 EUR",
        "Plafond du jour | atteint",
        "Paiement accepté | 15,00 EUR | Reste | 60,00 EUR",
        "Solde disponible | 60,00 EUR | Jour: 0,00 EUR",
        "Plafond du jour | atteint",
        "Paiement accepté | 30,00 EUR | Reste | 30,00 EUR",
        "Plafond du jour | atteint",
    ]
