"""Package unpacking, version switching and the self-update trial, on real files."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.errors import InvalidArgument
from opsfleet.daemon.updates import package, selfupdate
from opsfleet.daemon.updates.status import StatusBook, UpdateStatus
from opsfleet.daemon.updates.versions import VersionStore


def test_unpack_tar_zip_and_single_file(tmp_path: Path) -> None:
    tgz = tmp_path / "p.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        info = tarfile.TarInfo("bin/run")
        info.size, info.mode = 3, 0o755
        archive.addfile(info, io.BytesIO(b"abc"))
    package.unpack(tgz, tmp_path / "v1", "agent")
    assert (tmp_path / "v1" / "bin" / "run").read_bytes() == b"abc"
    assert os.access(tmp_path / "v1" / "bin" / "run", os.X_OK)

    zipped = tmp_path / "p.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        entry = zipfile.ZipInfo("tool")
        entry.external_attr = 0o755 << 16
        archive.writestr(entry, "x")
    package.unpack(zipped, tmp_path / "v2", "agent")
    assert os.access(tmp_path / "v2" / "tool", os.X_OK)

    single = tmp_path / "exe"
    single.write_bytes(b"#!/bin/sh\n")
    package.unpack(single, tmp_path / "v3", "web")
    assert os.access(tmp_path / "v3" / "web", os.X_OK)


@pytest.mark.parametrize("name", ["../evil", "/abs/evil"])
def test_unsafe_archives_are_refused_and_leave_nothing(tmp_path: Path, name: str) -> None:
    zipped = tmp_path / "bad.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr(name, "x")
    with pytest.raises(InvalidArgument, match="unsafe path"):
        package.unpack(zipped, tmp_path / "out" / "v1", "agent")
    assert not (tmp_path / "out" / "v1").exists()
    assert list((tmp_path / "out").iterdir()) == []

    tgz = tmp_path / "bad.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    if name.startswith(".."):
        with pytest.raises(InvalidArgument):
            package.unpack(tgz, tmp_path / "out" / "v2", "agent")
        assert not (tmp_path / "out" / "v2").exists()
    else:  # tarfile's "data" filter keeps an absolute member inside the target
        package.unpack(tgz, tmp_path / "out" / "v2", "agent")
        assert (tmp_path / "out" / "v2" / "abs" / "evil").is_file()
    assert not (tmp_path / "evil").exists() and not Path("/abs/evil").exists()


def test_switch_and_prune_keep_the_current_version(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    for i, version in enumerate(("1", "2", "3")):
        path = store.version_dir("agent:a", version)
        path.mkdir(parents=True)
        os.utime(path, (1000 + i, 1000 + i))
    store.switch("agent:a", "1")
    assert store.current("agent:a") == "1"
    assert store.prune("agent:a", 2) == []  # "1" is the oldest but current
    store.switch("agent:a", "3")
    assert store.prune("agent:a", 2) == ["1"]
    store.switch("agent:a", None)
    assert store.current("agent:a") is None


def test_boot_settles_a_trial_and_execs_the_current_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    execs: list[tuple[str, list[str], dict[str, str]]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> Any:
        execs.append((path, argv, env))

    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.delenv(selfupdate.ENV_ACTIVE, raising=False)
    store = VersionStore(tmp_path / "versions")
    for version in ("1.0", "2.0"):
        store.version_dir("daemon", version).mkdir(parents=True)
    store.switch("daemon", "2.0")
    book = StatusBook(tmp_path / "updates" / "status.json")
    book.put(UpdateStatus("daemon", "2.0", "watching", previous_version="1.0"))
    selfupdate.write_trial(tmp_path, selfupdate.Trial("2.0", "1.0", deadline=9e9))

    selfupdate.boot(tmp_path)  # first start of the trial version
    assert selfupdate.read_trial(tmp_path) == selfupdate.Trial("2.0", "1.0", 9e9, booted=True)
    assert execs[-1][2][selfupdate.ENV_ACTIVE] == "2.0"
    assert str(store.version_dir("daemon", "2.0")) in execs[-1][2]["PYTHONPATH"]

    selfupdate.boot(tmp_path)  # back in the launcher: the trial version died
    assert selfupdate.read_trial(tmp_path) is None
    assert store.current("daemon") == "1.0"
    assert execs[-1][2][selfupdate.ENV_ACTIVE] == "1.0"
    status = StatusBook(tmp_path / "updates" / "status.json").get("daemon")
    assert status is not None and status.state == "rolled_back"
    assert "stopped before registering" in status.message and "rolled back to 1.0" in status.message


def test_confirm_ends_the_trial_of_the_running_version_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = VersionStore(tmp_path / "versions")
    store.version_dir("daemon", "2.0").mkdir(parents=True)
    store.switch("daemon", "2.0")
    StatusBook(tmp_path / "updates" / "status.json").put(UpdateStatus("daemon", "2.0", "watching"))
    selfupdate.write_trial(tmp_path, selfupdate.Trial("2.0", None, deadline=9e9, booted=True))
    monkeypatch.setenv(selfupdate.ENV_ACTIVE, "1.9")
    assert not selfupdate.confirm(tmp_path, keep=3)
    monkeypatch.setenv(selfupdate.ENV_ACTIVE, "2.0")
    assert selfupdate.confirm(tmp_path, keep=3)
    assert selfupdate.read_trial(tmp_path) is None
    status = StatusBook(tmp_path / "updates" / "status.json").get("daemon")
    assert status is not None and status.state == "done"
