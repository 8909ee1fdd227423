"""End to end: a provisioned simulated terminal takes a payment, uploads it, the backend accepts it.

The firmware runs on the simulated board exactly as copied by provisioning, with its key, its
configuration and clock; only the peripherals are the firmware's own fakes (caisse_terminal.sim)
and the network is the board's simulated Wi-Fi (simnet, through the host).
"""

from __future__ import annotations

from caisse_provisioning.device import ANSWER_MARK, Board, serial_transport
from caisse_provisioning.errors import DeviceError
from tests.provisioning.helpers import run_provision, settings_for

CARD_UID = "04a1b2c3"

PAY_ON_DEVICE = """
import binascii, json, time
import simnet
from caisse_terminal import sim
from caisse_terminal.hal import Card
from caisse_terminal.soft_signer import SoftwareSigner
from caisse_terminal.storage import FileStorage
from caisse_terminal.terminal import Terminal

class Clock:  # the RTC that provisioning set
    def now(self):
        return int(time.time())
    def set(self, unix_s):
        pass
    def ticks_ms(self):
        return time.ticks_ms()

storage = FileStorage('/data')
settings = json.loads(storage.read('provision.json'))
keypad, reader = sim.QueueKeypad(), sim.FieldReader()
terminal = Terminal(storage=storage, display=sim.ScreenLog(), keypad=keypad, reader=reader,
                    indicator=sim.Beeper(), clock=Clock(), signer=SoftwareSigner.load_or_create(storage),
                    transport=simnet.SimHttpTransport(settings['backend_url']))
first = terminal.sync_now()
keypad.press('12,50V')
terminal.poll_keys()
reader.card = Card(binascii.unhexlify(UID))
terminal.poll_card()
while terminal.background_sign():
    pass
second = terminal.sync_now()
print(MARK + json.dumps({'first_error': first.error, 'cards': first.cards, 'accepted': second.accepted,
                         'rejected': second.rejected, 'error': second.error, 'acked_seq': second.acked_seq}))
"""


def test_a_provisioned_terminal_takes_a_payment_that_the_backend_accepts(board, backend, vendor_id):
    with backend.admin() as client:
        household = client.post("/v1/admin/households", json={"name": "Famille Martin", "members": 3, "zone": "Nord"}).json()
        assert client.post("/v1/admin/cards", json={"household_id": household["id"], "uid": CARD_UID}).status_code == 201
        credit = client.post(f"/v1/admin/households/{household['id']}/credits", json={"amount_cents": 5000})
        assert credit.status_code == 201, credit.text
    summary = run_provision(settings_for(backend.url, backend.token), board.port, vendor_id)

    device = Board(serial_transport(board.port), board.port)
    device.start()
    script = PAY_ON_DEVICE.replace("UID", repr(CARD_UID)).replace("MARK", repr(ANSWER_MARK))
    try:
        result = device.ask(script, doing="un paiement", timeout_s=120)
    except DeviceError as error:
        raise AssertionError(error.traceback) from error
    finally:
        device.finish()

    assert result["first_error"] is None and result["cards"] >= 1
    assert (result["accepted"], result["rejected"], result["error"]) == (1, [], None)
    assert result["acked_seq"] == 1
    with backend.admin() as client:
        terminal = client.get(f"/v1/admin/terminals/{summary.terminal_id}").json()
        balance = client.get(f"/v1/admin/households/{household['id']}").json()["balance_cents"]
    assert terminal["acked_seq"] == 1
    assert balance == 5000 - 1250
