"""The wheel works on its own: built from the sources, installed into a fresh venv, run outside the repository.

The wheel is built from a copy of what the image copies (pyproject.toml, README.md and the five packages), so
the build writes no build/ or *.egg-info into the working tree and sees nothing the image would not. The venv
has no system site-packages and no PYTHONPATH, so `smsq` and `import worker` can only come from the wheel.
Dependencies come from the package index at the versions of constraints.txt (as the image and scripts/test
install them); only the base install, no extras: Flower and the sandbox stack must stay out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT

#: What the Dockerfile copies before `pip install /app`.
SOURCES = ["pyproject.toml", "README.md", "models", "worker", "scheduler", "sandbox", "migrations"]
#: Packages of the extras (flower, sandbox) that `pip install smsq` must not pull.
EXTRAS_ONLY = ["flower", "tornado", "starlette", "uvicorn"]


def run(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH (it would reach the repository) and without SMSQ_ settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SMSQ_", "FLOWER_")) and k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the smsq wheel installed; returns the venv's bin directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    env = clean_env()
    dist = tmp / "dist"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(src)],
        cwd=tmp, env=env, timeout_s=180,
    )  # fmt: skip
    assert built.returncode == 0, f"building the wheel failed:\n{built.stdout}\n{built.stderr}"
    wheels = sorted(dist.glob("smsq-*.whl"))
    assert len(wheels) == 1, f"expected one smsq wheel in {dist}: {list(dist.iterdir())}"

    target = tmp / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(target)
    bin_dir = target / "bin"
    install = run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
         "-c", str(ROOT / "constraints.txt"), str(wheels[0])],
        cwd=tmp, env=env, timeout_s=300,
    )  # fmt: skip
    assert install.returncode == 0, (
        f"pip install of {wheels[0].name} failed:\n{install.stdout}\n{install.stderr}"
    )
    return bin_dir


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the repository (no alembic.ini, no packages next to it)."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    assert ROOT not in cwd.parents
    return cwd


def test_smsq_migrate_from_the_wheel_reaches_head_outside_the_repository(installed, outside, tmp_path):
    db = tmp_path / "x.db"
    env = clean_env(SMSQ_DATABASE_URL=f"sqlite:///{db}")
    first = run([str(installed / "smsq"), "migrate"], cwd=outside, env=env, timeout_s=60)
    assert first.returncode == 0, f"smsq migrate failed:\n{first.stdout}\n{first.stderr}"
    assert "(head)" in first.stdout and "database at revision" in first.stdout, first.stdout
    assert db.exists()
    # Nothing on stderr: no deprecation warning (license table) fills an operator's first screen.
    assert first.stderr.strip() == ""
    again = run([str(installed / "smsq"), "migrate"], cwd=outside, env=env, timeout_s=60)
    assert again.returncode == 0 and "(head)" in again.stdout, f"{again.stdout}\n{again.stderr}"


def test_packages_import_from_the_venv_and_the_extras_stay_out(installed, outside):
    probe = (
        "import importlib.util, json, models, scheduler, worker, migrations\n"
        "import worker.cli.main\n"
        "print(json.dumps({'worker': worker.__file__, "
        f"'missing': [m for m in {EXTRAS_ONLY!r} if importlib.util.find_spec(m) is None]}}))\n"
    )
    result = run([str(installed / "python"), "-c", probe], cwd=outside, env=clean_env(), timeout_s=60)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    found = json.loads(result.stdout)
    venv_dir = installed.parent
    assert Path(found["worker"]).resolve().is_relative_to(venv_dir.resolve()), found["worker"]
    assert sorted(found["missing"]) == sorted(EXTRAS_ONLY), "the base install pulled an extra's package"
    for marker in ["models", "worker", "scheduler", "sandbox"]:
        typed = run(
            [str(installed / "python"), "-c",
             f"import importlib.resources as r; print(r.files({marker!r}).joinpath('py.typed').is_file())"],
            cwd=outside, env=clean_env(), timeout_s=30,
        )  # fmt: skip
        assert typed.stdout.strip() == "True", f"{marker}/py.typed is not in the wheel: {typed.stderr}"


def test_sandbox_without_its_extra_has_help_and_a_one_line_message(installed, outside):
    smsq = str(installed / "smsq")
    helped = run([smsq, "sandbox", "--help"], cwd=outside, env=clean_env(), timeout_s=60)
    assert helped.returncode == 0, f"{helped.stdout}\n{helped.stderr}"
    assert "Usage: smsq sandbox" in helped.stdout

    started = run([smsq, "sandbox", "--port", "1"], cwd=outside, env=clean_env(), timeout_s=60)
    assert started.returncode == 1, f"{started.stdout}\n{started.stderr}"
    output = (started.stdout + started.stderr).strip()
    assert "needs the sandbox extra" in output and "smsq[sandbox]" in output, output
    assert len(output.splitlines()) == 1, f"more than one line (a traceback?):\n{output}"
