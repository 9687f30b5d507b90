"""signing.py: ssh-keygen -Y over text, each failure one sentence."""

import pytest

from beam_jobs import signing
from tests import signing_keys


@pytest.fixture
def keys(tmp_path):
    allowed = signing_keys.make(tmp_path, ('alice', 'mallory'), allowed=('alice',))
    return tmp_path, str(allowed)


def test_a_signature_names_its_principal_and_nothing_else_passes(keys):
    folder, allowed = keys
    signature = signing.sign('approve x\n', str(folder / 'alice'))
    assert signing.signer('approve x\n', signature, allowed) == 'alice'
    failures = [
        (('approve y\n', signature, allowed), 'its signature does not match the record'),
        (('approve x\n', signing.sign('approve x\n', str(folder / 'mallory')), allowed),
         'it is signed by a key not in allowed_signers'),
        (('approve x\n', signature, allowed, str(folder / 'alice.pub')),
         "it is signed by alice's revoked key"),
        (('approve x\n', '', allowed), 'it has no signature'),
        (('approve x\n', signature, allowed, str(folder / 'gone')),
         'revoked_keys .* cannot be read, so no key can be trusted'),
    ]
    for args, sentence in failures:
        with pytest.raises(signing.SignatureError, match=sentence):
            signing.signer(*args)


def test_a_key_that_cannot_sign_and_a_missing_ssh_keygen_say_what_to_do(keys, monkeypatch):
    folder, _ = keys
    with pytest.raises(signing.SignatureError, match='is missing or unreadable'):
        signing.sign('x\n', str(folder / 'bob'))
    monkeypatch.setenv('PATH', str(folder))
    with pytest.raises(signing.SignatureError, match='ssh-keygen is not installed on this '
                       'machine: install OpenSSH 8.2 or later'):
        signing.sign('x\n', str(folder / 'alice'))


def test_a_key_allowed_for_gate_decisions_signs_no_approval(tmp_path):
    allowed = str(signing_keys.make(tmp_path, ('rel',),
                                    options={'rel': 'namespaces="beam-jobs-gate"'}))
    key = str(tmp_path / 'rel')
    decision = signing.sign('digest\n', key, signing.GATE_NAMESPACE)
    assert signing.signer('digest\n', decision, allowed,
                          namespace=signing.GATE_NAMESPACE) == 'rel'
    with pytest.raises(signing.SignatureError, match='its signature by rel does not verify '
                       r'\(.*not permitted for use in signature namespace "beam-jobs"'):
        signing.signer('approve x\n', signing.sign('approve x\n', key), allowed)
