"""PN532 driver against the simulated PN532 and its virtual cards, in MicroPython."""

from tests.firmware.drivers.mp import mp, raises

SETUP = """
from i2c_bus import FakeI2C
from pn532_sim import PN532Sim, Ntag424, BasicCard
from drivers.pn532 import PN532, Nack, FrameError, PN532Timeout, ApplicationError, CardGone
from drivers.nfc_reader import NfcReader
from caisse_terminal.hal import CardRemoved
sim = PN532Sim()
bus = FakeI2C((0x24, sim))
clock = [0]
def ticks():
    clock[0] += 1
    return clock[0]
pn = PN532(bus, timeout_ms=50, sleep_ms=lambda ms: None, ticks_ms=ticks)
reader = NfcReader(pn)
PICC = "EF963FF7828658A599F3041510671E88"
CMAC = "94EED9EE65337086"
URL = ("caisse.example/c?picc_data=" + PICC + "&cmac=" + CMAC).encode()
UID = b"\\x04\\x11\\x22\\x33\\x44\\x55\\x66"
"""


def test_get_firmware_version_is_framed_with_len_lcs_and_dcs():
    out = mp(SETUP + "print(bus.log[0][2].hex(), pn.version, sim.bad_frames)")
    # 00 00 FF, LEN 2, LCS FE, TFI D4, cmd 02, DCS 2A, postamble 00 (UM0701-02 6.2.1.1)
    assert out.split() == ["0000ff02fed4022a00", "(1,", "6)", "0"]


def test_init_configures_the_sam_and_finite_retries():
    out = mp(SETUP + "print([(hex(c), p.hex()) for c, p in sim.received])")
    assert "('0x14', '011401')" in out
    assert "('0x32', '05ff0101')" in out


def test_an_ntag_424_tap_gives_its_uid_and_sun_message():
    out = mp(
        SETUP
        + """
sim.field.append(Ntag424(UID, URL))
card = reader.poll()
assert card.uid == UID
print(card.auth.hex().upper())
print(len(sim.field[0].apdus), sim.field[0].apdus[0].hex(), sim.field[0].apdus[1].hex())
"""
    )
    auth, apdus = out.splitlines()
    assert auth == "EF963FF7828658A599F3041510671E88" + "94EED9EE65337086"
    count, select_app, select_file = apdus.split()
    assert int(count) >= 4  # select app, select file, read NLEN, read the message
    assert select_app == "00a4040007d276000085010100"
    assert select_file == "00a4000c02e104"


def test_a_card_left_on_the_reader_is_read_once_and_read_again_after_it_left():
    out = mp(
        SETUP
        + """
urls = [URL, URL.replace(b"cmac=94EE", b"cmac=0000")]
card = Ntag424(UID, urls)
sim.field.append(card)
first = reader.poll()
sent = len(card.apdus)
second = reader.poll()
print(second is first, len(card.apdus) == sent, sim.target)
sim.field.remove(card)
print(reader.poll())
sim.field.append(card)
print(reader.poll().auth.hex()[-16:], card.reads)
"""
    )
    assert out.split() == ["True", "True", "None", "None", "0000d9ee65337086", "2"]


def test_the_short_sun_parameter_names_are_understood():
    out = mp(
        SETUP
        + """
sim.field.append(Ntag424(UID, ("x.fr/?e=" + PICC + "&c=" + CMAC).encode()))
print(reader.poll().auth.hex().upper())
"""
    )
    assert out.strip() == PICC_CMAC


PICC_CMAC = "EF963FF7828658A599F3041510671E88" + "94EED9EE65337086"


def test_a_basic_card_gives_its_uid_only_and_an_empty_field_gives_none():
    out = mp(
        SETUP
        + """
print(reader.poll())
sim.field.append(BasicCard(b"\\x01\\x02\\x03\\x04"))
card = reader.poll()
print(card.uid.hex(), card.auth)
"""
    )
    assert out.split() == ["None", "01020304", "None"]


def test_a_card_pulled_away_at_any_apdu_is_a_clean_card_removed():
    for leave_after in (0, 1, 2, 3):
        out = mp(
            SETUP
            + f"""
sim.field.append(Ntag424(UID, URL, leave_after={leave_after}))
{raises("reader.poll()", "CardRemoved")}
print("then", reader.poll(), sim.target)
"""
        )
        assert "raised CardRemoved" in out
        assert "then None None" in out


def test_in_data_exchange_reports_a_silent_target_as_card_gone():
    out = mp(
        SETUP
        + """
sim.field.append(Ntag424(UID, URL, leave_after=0))
pn.list_passive_target()
"""
        + raises("pn.data_exchange(b'\\x00\\xa4\\x04\\x00')", "CardGone")
    )
    assert "raised CardGone" in out


def test_a_nack_from_the_pn532_raises_nack_and_the_driver_recovers():
    out = mp(
        SETUP
        + "sim.faults.append('nack')\n"
        + raises("pn.firmware_version()", "Nack")
        + "print(pn.firmware_version()[0])"
    )
    assert "raised Nack" in out
    assert out.split()[-1] == "50"  # 0x32


def test_a_wrong_checksum_is_answered_with_nack_and_the_resent_frame_is_used():
    out = mp(
        SETUP
        + """
sim.faults.append('bad_dcs')
print(pn.firmware_version()[0], [w[2].hex() for w in bus.log if w[0] == 'w'][-1])
"""
    )
    assert out.split() == ["50", "0000ffff0000"]  # the host's NACK asked for the frame again


def test_a_checksum_wrong_twice_raises_frame_error():
    out = mp(SETUP + "sim.faults.append('bad_dcs2')\n" + raises("pn.firmware_version()", "FrameError"))
    assert "bad DCS" in out


def test_a_truncated_response_is_asked_again_then_read_whole():
    out = mp(SETUP + "sim.faults.append('truncate')\nprint(pn.firmware_version())")
    assert out.strip() == "(50, 1, 6, 7)"


def test_a_response_longer_than_the_read_is_a_frame_error_not_garbage():
    out = mp(SETUP + raises("pn.call(0x02, capacity=1)", "FrameError"))
    assert "truncated frame" in out


def test_a_pn532_that_never_answers_times_out_and_the_host_aborts_with_ack():
    out = mp(
        SETUP
        + "sim.faults.append('silent')\n"
        + raises("pn.firmware_version()", "PN532Timeout")
        + "print([w[2].hex() for w in bus.log if w[0] == 'w'][-1])"
    )
    assert "raised PN532Timeout" in out
    assert out.split()[-1] == "0000ff00ff00"


def test_a_slow_pn532_is_waited_for():
    out = mp(SETUP + "sim.faults.append('slow')\nprint(pn.firmware_version()[0])")
    assert out.strip() == "50"


def test_the_application_error_frame_raises_application_error():
    out = mp(SETUP + "sim.faults.append('error')\n" + raises("pn.sam_configuration()", "ApplicationError"))
    assert "raised ApplicationError" in out


def test_init_raises_with_the_bus_address_when_nothing_answers():
    out = mp(
        "from i2c_bus import FakeI2C\nfrom drivers.pn532 import PN532\n"
        + raises("PN532(FakeI2C(), timeout_ms=5)", "OSError")
    )
    assert "0x24" in out


def test_a_chip_that_is_not_a_pn532_is_refused():
    out = mp(
        "from i2c_bus import FakeI2C\nfrom pn532_sim import PN532Sim\nfrom drivers.pn532 import PN532\n"
        + raises("PN532(FakeI2C((0x24, PN532Sim(ic=0x07))))", "OSError")
    )
    assert "not a PN532" in out
