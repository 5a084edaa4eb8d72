"""``opsfleet keys create`` and ``opsfleet artifacts sign|upload|list|show|delete``.

``keys create`` and ``artifacts sign`` work offline (no Manager): the private key can stay
on an offline machine; only the signature travels with the upload.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.errors import UsageError
from opsfleet.client.output import table
from opsfleet.client.session import Session
from opsfleet.common.errors import InvalidArgument
from opsfleet.common.signing import check_target, create_key_pair, sha256_file, sign

KEYS_HELP = """\
Make an Ed25519 key pair for signing update packages: the private key is written to FILE
(mode 0600, PEM), the public key (base64) is printed and written to FILE.pub. Put the
public key in the daemons' update.trusted_keys; keep the private key offline, or give it to
the Manager (artifacts.signing_key_file) so that it signs uploads itself.

example:
  opsfleet keys create --out release.key
"""

SIGN_HELP = """\
Print the base64 signature of a package for one component and version (offline).

example:
  opsfleet artifacts sign filebeat-8.12.tar.gz --component agent:filebeat --version 8.12.0 --key release.key
"""

UPLOAD_HELP = """\
Upload a package (a single executable, .tar.gz or .zip) to the Manager (admin). Without
--signature the Manager signs it with its own key, if it has one.

examples:
  opsfleet artifacts upload filebeat-8.12.tar.gz --component agent:filebeat --version 8.12.0
  SIG=$(opsfleet artifacts sign fb.tar.gz --component agent:filebeat --version 8.12.0 --key release.key)
  opsfleet artifacts upload fb.tar.gz --component agent:filebeat --version 8.12.0 --signature "$SIG"
"""


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", type=Path, help="the package")
    p.add_argument("--component", required=True, help="daemon or agent:<id>")
    p.add_argument("--version", required=True, help="the package's version")


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    keys = group(sub, "keys", help="update signing keys", description="Make update signing keys.")
    p = add_command(
        keys, "keys create", create_keys, help="make a key pair", description=KEYS_HELP, parents=parents
    )
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="where to write the private key")

    artifacts = group(
        sub, "artifacts", help="update packages", description="Sign, upload and manage update packages."
    )
    p = add_command(
        artifacts,
        "artifacts sign",
        sign_file,
        help="sign a package (offline)",
        description=SIGN_HELP,
        parents=parents,
    )
    _target_args(p)
    p.add_argument("--key", required=True, type=Path, metavar="FILE", help="the private key (PEM)")
    p = add_command(
        artifacts,
        "artifacts upload",
        upload,
        help="upload a package",
        description=UPLOAD_HELP,
        parents=parents,
    )
    _target_args(p)
    p.add_argument("--signature", default="", help="base64 signature (default: the Manager signs)")
    p = add_command(
        artifacts,
        "artifacts list",
        list_all,
        help="list packages",
        description="List stored packages.",
        parents=parents,
    )
    p.add_argument("--component", default=None, help="only this component")
    for name, handler, what in (
        ("show", show, "show one package"),
        ("delete", delete, "delete a package (admin)"),
    ):
        p = add_command(
            artifacts, f"artifacts {name}", handler, help=what, description=what + ".", parents=parents
        )
        p.add_argument("artifact_id", type=int, metavar="ID", help="the artifact's id")


def create_keys(s: Session, args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists():
        raise UsageError(f"{out} exists; not overwriting a key")
    keys = create_key_pair()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(keys.private_pem)
    out.with_name(out.name + ".pub").write_text(keys.public_b64 + "\n")
    data = {"private_key_file": str(out), "public_key": keys.public_b64}
    s.out.emit(data, lambda: s.out.line(keys.public_b64))
    return EXIT_OK


def _checked(args: argparse.Namespace) -> Path:
    try:
        check_target(args.component, args.version)
    except InvalidArgument as exc:
        raise UsageError(exc.message) from exc
    path: Path = args.file
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return path


def sign_file(s: Session, args: argparse.Namespace) -> int:
    path = _checked(args)
    try:
        pem = Path(args.key).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the key {args.key}: {exc.strerror}") from exc
    digest, size = sha256_file(path)
    signature = sign(pem, args.component, args.version, digest)
    data = {
        "component": args.component,
        "version": args.version,
        "sha256": digest,
        "size": size,
        "signature": signature,
    }
    s.out.emit(data, lambda: s.out.line(signature))
    return EXIT_OK


def upload(s: Session, args: argparse.Namespace) -> int:
    path = _checked(args)
    data = s.api().upload_artifact(
        path, component=args.component, version=args.version, signature=args.signature
    )
    s.out.emit(data, lambda: _show(s, data))
    return EXIT_OK


def list_all(s: Session, args: argparse.Namespace) -> int:
    data = s.api().list_artifacts(args.component)

    def render() -> None:
        t = table(None, "ID", "COMPONENT", "VERSION", "SIZE", "SHA256", "SIGNED BY", "CREATED")
        for a in data["artifacts"]:
            signer = "manager" if a["signed_by_manager"] else "uploader"
            t.add_row(
                str(a["id"]),
                a["component"],
                a["version"],
                str(a["size"]),
                a["sha256"][:16],
                signer,
                a["created_at"],
            )
        s.out.show(t)

    s.out.emit(data, render)
    return EXIT_OK


def show(s: Session, args: argparse.Namespace) -> int:
    data = s.api().artifact(args.artifact_id)
    s.out.emit(data, lambda: _show(s, data))
    return EXIT_OK


def delete(s: Session, args: argparse.Namespace) -> int:
    data = s.api().delete_artifact(args.artifact_id)
    s.out.emit(
        data, lambda: s.out.message(f"deleted artifact {data['id']} ({data['component']} {data['version']})")
    )
    return EXIT_OK


def _show(s: Session, data: dict[str, Any]) -> None:
    for key in (
        "id",
        "component",
        "version",
        "filename",
        "size",
        "sha256",
        "signature",
        "signed_by_manager",
        "created_at",
        "created_by",
    ):
        s.out.line(f"{key}: {data[key]}")
