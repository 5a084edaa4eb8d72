"""keys create, artifacts sign/upload/list/show/delete and rollouts as real subprocesses."""

from __future__ import annotations

import hashlib
from pathlib import Path

from opsfleet.common.signing import Verifier
from tests.integration.cli.support import Cli, InProcess
from tests.integration.web.support import Web


async def test_keys_sign_upload_list_show_delete(
    cli: Cli, run_main: InProcess, manager: Web, tmp_path: Path
) -> None:
    key = tmp_path / "release.key"
    made = await cli.run("keys", "create", "--out", str(key), "--json")
    public = made.json()["public_key"]
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "release.key.pub").read_text().strip() == public
    again = await run_main("keys", "create", "--out", str(key))
    assert again.code == 2 and "not overwriting" in again.stderr

    package = tmp_path / "agent-2.tar.gz"
    package.write_bytes(b"\x1f\x8b" + b"z" * 3000)
    signed = await run_main(
        "artifacts", "sign", str(package), "--component", "agent:web", "--version", "2", "--key", str(key)
    )
    assert signed.code == 0, signed
    signature = signed.stdout.strip()
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    Verifier([public]).verify("agent:web", "2", digest, signature)

    await run_main.login()
    up = await cli.run(
        "artifacts", "upload", str(package), "--component", "agent:web", "--version", "2",
        "--signature", signature, "--json",
    )  # fmt: skip
    stored = up.json()
    assert (stored["sha256"], stored["size"], stored["signature"]) == (digest, 3002, signature)
    assert stored["filename"] == "agent-2.tar.gz"
    listed = await run_main("artifacts", "list", "--json")
    assert [a["version"] for a in listed.json()["artifacts"]] == ["2"]
    table = await run_main("artifacts", "list")
    assert "agent:web" in table.stdout and digest[:16] in table.stdout
    shown = await run_main("artifacts", "show", str(stored["id"]))
    assert f"sha256: {digest}" in shown.stdout

    unsigned = await run_main(
        "artifacts", "upload", str(package), "--component", "agent:web", "--version", "3"
    )
    assert unsigned.code == 1 and "signing key" in unsigned.stderr
    bad = await run_main("artifacts", "upload", str(package), "--component", "agent", "--version", "3")
    assert bad.code == 2 and "component" in bad.stderr

    nobody = await run_main(
        "rollouts", "start", "--component", "agent:web", "--version", "2", "--selector", "env=x"
    )
    assert nobody.code == 1 and "no node matches" in nobody.stderr
    empty = await run_main("rollouts", "list", "--json")
    assert empty.json() == {"rollouts": [], "count": 0}

    gone = await run_main("artifacts", "delete", str(stored["id"]))
    assert gone.code == 0 and "deleted artifact" in gone.stdout
    missing = await run_main("artifacts", "show", str(stored["id"]))
    assert missing.code == 6
