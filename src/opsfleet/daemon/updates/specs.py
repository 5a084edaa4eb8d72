"""The ``{package_dir}`` placeholder of agent specs.

An agent installed by updates names its files relative to the installed package:
``binary_path: "{package_dir}/bin/filebeat"``. The placeholder is replaced (in
``binary_path``, ``args``, ``work_dir`` and ``config_file``) by the directory of the
version that runs; the spec's ``version`` becomes that version.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from opsfleet.daemon.supervisor.config import AgentSpec

PLACEHOLDER = "{package_dir}"


def uses_package(spec: AgentSpec) -> bool:
    texts = [spec.binary_path, spec.work_dir, spec.config_file, *(spec.args or [])]
    return any(PLACEHOLDER in text for text in texts)


def resolve(spec: AgentSpec, package_dir: Path, version: str) -> AgentSpec:
    """``spec`` running the package in ``package_dir`` at ``version``."""
    where = str(package_dir)

    def fill(text: str) -> str:
        return text.replace(PLACEHOLDER, where)

    return replace(
        spec,
        version=version,
        binary_path=fill(spec.binary_path),
        args=None if spec.args is None else [fill(arg) for arg in spec.args],
        work_dir=fill(spec.work_dir),
        config_file=fill(spec.config_file),
    )
