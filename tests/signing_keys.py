"""SSH keys for tests, made with ssh-keygen in a temp folder, and the
allowed_signers file that names them."""

import pathlib
import subprocess


def make(folder: pathlib.Path, names, allowed=None, options=None) -> pathlib.Path:
    """A key per name in `folder` (`folder/NAME`, `folder/NAME.pub`) and
    `folder/allowed_signers` listing those in `allowed` (default: all), with
    `options[name]` (such as namespaces="...") if given."""
    options = options or {}
    folder.mkdir(exist_ok=True)
    for name in names:
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', name,
                        '-f', str(folder / name)], check=True)
    path = folder / 'allowed_signers'
    path.write_text(''.join(
        f'{name} {options[name] + " " if name in options else ""}'
        f'{" ".join((folder / f"{name}.pub").read_text().split()[:2])}\n'
        for name in (names if allowed is None else allowed)))
    return path
