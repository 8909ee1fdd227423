"""End to end: a provisioned simulated terminal takes a payment, uploads it, the backend accepts it.

The firmware runs on the simulated board exactly as copied by provisioning, with its key, its
configuration and clock; only the peripherals are the firmware's own fakes (caisse_terminal.sim)
and the network is the board's simulated Wi-Fi (simnet, through the host).
"""

from __future__ import annotations

from caisse_provisioning.device import ANSWER_MARK, Board, serial_transport
from caisse_provisioning.errors import DeviceError
from tests.provisioning.helpers import DEVICE_TERMINAL, run_provision, settings_for

CARD_UID = "04a1b2c3"

PAY_ON_DEVICE = DEVICE_TERMINAL + """
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


PAY_WITH_CODE_ON_DEVICE = """
import binascii, json, time
import board, simnet
from machine import I2C, Pin
from caisse_terminal import config, sim
from caisse_terminal.hal import Card
from caisse_terminal.storage import FileStorage
from caisse_terminal.terminal import Terminal
from drivers.atecc608 import ATECC608

class Clock:
    def now(self):
        return int(time.time())
    def set(self, unix_s):
        pass
    def ticks_ms(self):
        return time.ticks_ms()

storage = FileStorage('/data')
settings = json.loads(storage.read('provision.json'))
se = ATECC608(I2C(board.I2C_ID, scl=Pin(board.I2C_SCL), sda=Pin(board.I2C_SDA), freq=board.I2C_FREQ_HZ),
              board.ADDR_ATECC608)
signer, inline = config.load_signer(storage, se)
keypad, reader, screen = sim.QueueKeypad(), sim.FieldReader(), sim.ScreenLog()
terminal = Terminal(storage=storage, display=screen, keypad=keypad, reader=reader, indicator=sim.Beeper(),
                    clock=Clock(), signer=signer, inline_signer=inline, code_mac=config.load_code_mac(storage, se),
                    transport=simnet.SimHttpTransport(settings['backend_url']))
first = terminal.sync_now()
screens = []
for code in ('9999', CODE):
    keypad.press('50V')  # the code threshold, and a basic card's ceiling
    terminal.poll_keys()
    reader.card = Card(binascii.unhexlify(UID))
    terminal.poll_card()
    reader.card = None
    terminal.poll_card()
    screens.append(screen.lines[0])
    keypad.press(code + 'V')
    terminal.poll_keys()
    screens.append(screen.lines[0])
    keypad.press('X')
    terminal.poll_keys()
second = terminal.sync_now()
print(MARK + json.dumps({'first_error': first.error, 'screens': screens, 'accepted': second.accepted,
                         'error': second.error}))
"""


def test_a_provisioned_chip_terminal_checks_a_member_code_with_the_key_the_backend_derived(
        make_board, backend, vendor_id):
    from sqlmodel import select

    from caisse.cards import member_codes
    from caisse.models import TransactionRecord
    from caisse_common import protocol
    from tests.provisioning.simboard.launcher import Hardware

    with backend.admin() as client:
        household = client.post("/v1/admin/households", json={"name": "Famille Roux", "members": 2, "zone": "Nord"}).json()
        assert client.post("/v1/admin/cards", json={"household_id": household["id"], "uid": CARD_UID}).status_code == 201
        assert client.post(f"/v1/admin/households/{household['id']}/credits", json={"amount_cents": 10000}).status_code == 201
    with backend.session() as session:
        member_codes.set_code(session, household_id=household["id"], code="2468")
        session.commit()
    board = make_board(Hardware(secure_element="factory"))
    run_provision(settings_for(backend.url, backend.token), board.port, vendor_id, hardware_selftest=False)

    device = Board(serial_transport(board.port), board.port)
    device.start()
    script = (PAY_WITH_CODE_ON_DEVICE.replace("UID", repr(CARD_UID)).replace("MARK", repr(ANSWER_MARK))
              .replace("CODE", repr("2468")))
    try:
        result = device.ask(script, doing="un paiement avec code", timeout_s=120)
    except DeviceError as error:
        raise AssertionError(error.traceback) from error
    finally:
        device.finish()

    assert result["first_error"] is None and result["error"] is None
    assert result["screens"] == ["Code PIN ?", "Code erroné", "Code PIN ?", "Paiement accepté"]
    assert result["accepted"] == 1
    with backend.session() as session:
        stored = session.execute(select(TransactionRecord)).scalar_one()
    assert stored.amount_cents == 5000 and stored.flags == protocol.FLAG_PIN_VERIFIED
