"""Protocol v1 vectors under the real MicroPython: codec, digests and P-256 signatures."""

import json

import pytest

from tests.firmware.mpy_runtime import ROOT, run

VECTORS = json.loads((ROOT / "tests/vectors/protocol_v1.json").read_text())
MOUNTS = {ROOT / "tests/vectors": "/vectors"}


@pytest.fixture(scope="module")
def micropython_results():
    code = """
import json, binascii
from caisse_terminal import p256, record
v = json.load(open('/vectors/protocol_v1.json'))
h = lambda b: binascii.hexlify(b).decode()
u = binascii.unhexlify
secret = u(v['terminal']['secret'])
out = {'public_key': h(p256.public_key(secret)), 'chain': [], 'tampered': []}
for r in v['chain']:
    raw = u(r['record'])
    rec = record.decode(raw)
    again = record.Record(rec.kind, rec.flags, rec.terminal_id, rec.seq, rec.time, rec.amount_cents,
                          rec.ref_seq, rec.card_uid, rec.card_auth, rec.prev_hash, rec.signature)
    out['chain'].append({'seq': rec.seq, 'kind': rec.kind, 'flags': rec.flags, 'amount': rec.amount_cents,
        'ref_seq': rec.ref_seq, 'uid': h(rec.card_uid), 'auth': h(rec.card_auth), 'prev': h(rec.prev_hash),
        'time': rec.time, 'encoded': h(again.encode()), 'digest': h(rec.digest()),
        'signature': h(p256.sign_digest(secret, rec.digest()))})
for t in v['tampered']:
    try:
        record.decode(u(t['record']))
        out['tampered'].append('decoded')
    except record.MalformedRecord as e:
        out['tampered'].append('malformed')
s = v['sync_auth']
out['sync_signature'] = h(p256.sign_digest(secret, u(s['digest'])))
print(json.dumps(out))
"""
    return json.loads(run(code, mounts=MOUNTS))


def test_public_key_from_the_vector_secret_matches(micropython_results):
    assert micropython_results["public_key"] == VECTORS["terminal"]["public_key"]


@pytest.mark.parametrize("index", range(len(VECTORS["chain"])))
def test_chain_record_decodes_encodes_digests_and_signs_identically(micropython_results, index):
    want = VECTORS["chain"][index]
    got = micropython_results["chain"][index]
    assert got["encoded"] == want["record"]
    assert got["digest"] == want["digest"]
    assert got["signature"] == want["signature"]
    assert (got["seq"], got["amount"], got["ref_seq"], got["uid"], got["flags"], got["time"]) == (
        want["seq"], want["amount_cents"], want["ref_seq"], want["card_uid"], want["flags"], want["time"])
    assert got["kind"] == {"payment": 1, "void": 2}[want["kind"]]
    assert (got["auth"], got["prev"]) == (want["card_auth"], want["prev_hash"])


def test_sync_request_signature_matches(micropython_results):
    assert micropython_results["sync_signature"] == VECTORS["sync_auth"]["signature"]


def test_tampered_records_that_are_malformed_are_refused_by_the_codec(micropython_results):
    for vector, got in zip(VECTORS["tampered"], micropython_results["tampered"]):
        assert got == ("malformed" if vector["reason"] == "malformed" else "decoded"), vector["name"]


def test_the_codec_pack_body_matches_the_backend_under_cpython():
    from caisse_common import protocol
    from caisse_terminal import record

    for r in VECTORS["chain"]:
        raw = bytes.fromhex(r["record"])
        backend = protocol.decode(raw)
        buf = bytearray(record.BODY_SIZE)
        record.pack_body(buf, int(backend.kind), backend.flags, backend.card_uid, backend.terminal_id,
                         backend.seq, backend.time, backend.amount_cents, backend.ref_seq,
                         backend.card_auth, backend.prev_hash)
        assert bytes(buf) == backend.body()
