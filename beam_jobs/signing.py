"""SSH signatures over text, the way git signs commits: `ssh-keygen -Y`.

The only module that runs ssh-keygen. A statement goes in on stdin; the
signature, the allowed signers and the revoked keys go in as files, in a
temporary folder removed afterwards. Every failure is a SignatureError whose
sentence says what failed and what to do next.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Optional

from beam_jobs import refusals

NAMESPACE = 'beam-jobs'   # signatures for beam-jobs are worthless to anything else
# A release machine's signature of a gate decision: its key, listed in
# allowed_signers with namespaces="beam-jobs-gate", can sign nothing else.
GATE_NAMESPACE = 'beam-jobs-gate'


class SignatureError(refusals.Refused):
    """A statement that could not be signed, or a signature that does not verify."""


def _ssh_keygen() -> str:
    path = shutil.which('ssh-keygen')
    if path is None:
        raise SignatureError('ssh-keygen is not installed on this machine: install '
                             'OpenSSH 8.2 or later (Debian: apt-get install openssh-client).')
    return path


def _run(args: list[str], text: str) -> subprocess.CompletedProcess:
    return subprocess.run([_ssh_keygen(), *args], input=text.encode(),
                          capture_output=True, timeout=60, check=False)


def sign(text: str, key: str, namespace: str = NAMESPACE) -> str:
    """The armored signature of `text` by `key`: a private key file, or a
    public key file whose private half the ssh-agent holds."""
    if not key:
        raise SignatureError('No signing key: set `signing_key` (a key file, or the public '
                             'key of one in your ssh-agent) under [tool.beam-jobs] or '
                             'BEAM_JOBS_SIGNING_KEY.')
    key = os.path.expanduser(key)
    if not os.path.isfile(key) or not os.access(key, os.R_OK):
        raise SignatureError(f'The signing key {key} is missing or unreadable: check '
                             'the `signing_key` setting.')
    result = _run(['-Y', 'sign', '-q', '-n', namespace, '-f', key], text)
    if result.returncode != 0:
        raise SignatureError(f'ssh-keygen could not sign with {key} '
                             f'({_first_line(result.stderr)}): check the key and, '
                             'for a public key, that the ssh-agent holds it.')
    return result.stdout.decode()


def signer(text: str, signature: str, allowed_signers: str,
           revoked_keys: Optional[str] = None, namespace: str = NAMESPACE) -> str:
    """The principal of `allowed_signers` whose key made `signature` over
    `text`; SignatureError naming what failed otherwise."""
    if not signature:
        raise SignatureError('it has no signature')
    with tempfile.TemporaryDirectory(prefix='beam-jobs-sig-') as folder:
        sig_file = os.path.join(folder, 'statement.sig')
        with open(sig_file, 'w') as handle:
            handle.write(signature)
        checked = _run(['-Y', 'check-novalidate', '-n', namespace, '-s', sig_file], text)
        if checked.returncode != 0:
            raise SignatureError('its signature does not match the record')
        found = _run(['-Y', 'find-principals', '-s', sig_file, '-f', allowed_signers], '')
        if found.returncode != 0:
            raise SignatureError('it is signed by a key not in allowed_signers')
        principal = found.stdout.decode().split()[0]
        verify = ['-Y', 'verify', '-n', namespace, '-s', sig_file, '-f', allowed_signers,
                  '-I', principal]
        verified = _run(verify, text)
        if verified.returncode != 0:   # e.g. a key allowed for another namespace only
            raise SignatureError(f'its signature by {principal} does not verify '
                                 f'({_reason(verified.stderr)})')
        # Checked apart, so that a revoked key is named as such; a revocation
        # list that cannot be read lets nothing pass.
        if revoked_keys:
            if not os.access(revoked_keys, os.R_OK):
                raise SignatureError(f'revoked_keys {revoked_keys} cannot be read, so no '
                                     'key can be trusted: check the `revoked_keys` setting')
            if _run([*verify, '-r', revoked_keys], text).returncode != 0:
                raise SignatureError(f'it is signed by {principal}\'s revoked key')
        return principal


def _first_line(stderr: bytes) -> str:
    lines = stderr.decode(errors='replace').strip().splitlines()
    return lines[0] if lines else 'no message'


def _reason(stderr: bytes) -> str:
    """What ssh-keygen says beyond "Could not verify signature."."""
    lines = [line for line in stderr.decode(errors='replace').strip().splitlines()
             if line.strip() != 'Could not verify signature.']
    return '; '.join(lines) or 'no reason given'
