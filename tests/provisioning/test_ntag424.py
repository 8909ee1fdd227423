"""Host-side NTAG 424 DNA secure messaging, byte for byte against the NXP AN12196 worked examples."""

from __future__ import annotations

import pytest

from caisse_common.ntag424 import Ntag424, Ntag424Error, Session, change_key_data, crc32_nk, pad

h = bytes.fromhex

# AN12196 session after AuthenticateEV2First with key 0 (all zero).
TI = h("9D00C4DF")
ENC = h("1309C877509E5A215007FF0ED19CA564")
MAC = h("4C6626F5E72EA694202139295C7A7FC7")
# AN12196 session of the ChangeKey examples.
CK_TI, CK_ENC, CK_MAC = h("7614281A"), h("4CF3CB41A22583A61E89B158D252FC53"), h("5529860B2FC5FB6154B7F28361D30BF9")
# AN12196 WriteData example: an NDEF URL with e= and c= placeholders, 128 bytes.
NDEF_TEMPLATE = (b"\x00\x51\xd1\x01\x4d\x55\x04" + b"choose.url.com/ntag424?e=" + b"0" * 32 + b"&c=" + b"0" * 16).ljust(128, b"\x00")
WRITE_ENCRYPTED = h(
    "421C73A27D827658AF481FDFF20A5025B559D0E3AA21E58D347F343CFFC768BFE596C706BC00F2176781D4B0242642A0"
    "FF5A42C461AAF894D9A1284B8C76BCFA658ACD40555D362E08DB15CF421B51283F9064BCBE20E96CAE545B407C9D651A"
    "3315B27373772E5DA2367D2064AE054AF996C6F1F669170FA88CE8C4E3A4A7BBBEF0FD971FF532C3A802AF745660F2B4"
)


class ScriptedCard:
    """Answers APDUs from a script and records what the host sent."""

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []

    def __call__(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.answers.pop(0)


def test_authenticate_ev2_first_gives_the_an12196_session_keys():
    card = ScriptedCard(h("A04C124213C186F22399D33AC2A30215 91AF"),
                        h("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663 9100"))
    tag = Ntag424(card, random_bytes=lambda n: h("13C5DB8A5930439FC3DEF9A4C675360F"))
    session = tag.authenticate(0, bytes(16))
    assert card.sent == [h("9071000002000000"),
                         h("90AF000020 35C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D 00")]
    assert (session.ti, session.enc_key, session.mac_key, session.counter) == (TI, ENC, MAC, 0)


def test_a_card_that_does_not_return_our_challenge_is_refused():
    card = ScriptedCard(h("A04C124213C186F22399D33AC2A30215 91AF"),
                        h("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663 9100"))
    tag = Ntag424(card, random_bytes=lambda n: bytes(16))
    with pytest.raises(Ntag424Error, match="RndA mismatch"):
        tag.authenticate(0, bytes(16))
    assert tag.session is None


def test_comm_mode_mac_get_file_settings():
    session = Session(0, h("7A21085E"), bytes(16), h("8248134A386E86EB7FAF54A52E536CB6"))
    assert session.wrap(0xF5, b"\x02", b"", full=False) == h("90F5000009026597A457C8CD442C00")
    settings = h("0040EEEE000100D1FE001F00004400004400002000006A0000")
    assert session.unwrap(0x00, settings + h("2A474282E7A47986"), full=False) == settings
    assert session.counter == 1


def test_comm_mode_full_write_data():
    session = Session(0, TI, ENC, MAC)
    assert session.iv(b"\xa5\x5a", 0) == h("D2CB7277A17841A06654A48188C1F8F5")
    apdu = session.wrap(0x8D, h("02000000800000"), NDEF_TEMPLATE, full=True)
    assert apdu == h("908D00009F02000000800000") + WRITE_ENCRYPTED + h("D1D9A8499661EBF3 00")
    session.unwrap(0x00, h("FC222E5F7A542452"), full=False)
    assert session.counter == 1


def test_change_file_settings_enabling_sdm():
    session = Session(0, TI, ENC, MAC, counter=1)
    apdu = session.wrap(0x5F, b"\x02", h("4000E0C1F121200000430000430000"), full=True)
    assert apdu == h("905F0000190261B6D97903566E84C3AE5274467E89EAD799B7C1A0EF7A0400")
    with pytest.raises(Ntag424Error, match="MAC is wrong"):
        session.unwrap(0x00, h("57BFF87B1241E93E"), full=False)  # one bit off
    assert session.counter == 1
    session.unwrap(0x00, h("57BFF87B1241E93D"), full=False)
    assert session.counter == 2


def test_change_key_of_another_key_xors_the_old_key_and_appends_the_crc():
    new_key = h("F3847D627727ED3BC9C4CC050489B966")
    assert crc32_nk(new_key) == h("789DFADC")
    data = change_key_data(2, 0, new_key, bytes(16), 1)
    assert pad(data) == h("F3847D627727ED3BC9C4CC050489B96601789DFADC8000000000000000000000")
    session = Session(0, CK_TI, CK_ENC, CK_MAC, counter=2)
    assert session.wrap(0xC4, b"\x02", data, full=True) == h(
        "90C4000029022CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC75D0CE20BCD1D06E600")
    session.unwrap(0x00, h("203BB55D1089D587"), full=False)
    assert session.counter == 3


def test_change_key_of_the_session_key_sends_the_new_key_and_ends_the_session():
    card = ScriptedCard(h("9100"))
    tag = Ntag424(card)
    tag.session = Session(0, CK_TI, CK_ENC, CK_MAC, counter=3)
    tag.change_key(0, h("5004BF991F408672B1EF00F08F9E8647"), version=1)
    assert card.sent == [h("90C400002900C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FDA6610234BDED643200")]
    assert tag.session is None


def test_a_refusal_names_the_status_and_ends_the_session():
    tag = Ntag424(ScriptedCard(h("919D")))
    tag.session = Session(0, TI, ENC, MAC)
    with pytest.raises(Ntag424Error, match="permission denied 919D") as caught:
        tag.get_file_settings(2)
    assert caught.value.status == 0x9D and tag.session is None
    with pytest.raises(ValueError):
        change_key_data(2, 0, bytes(16), None, 1)
