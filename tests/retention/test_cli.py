"""`smsq purge`: a dry run counts, a purge deletes and exports, a bad age or export name exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from models.db import database_time, make_engine, make_session_factory
from models.tables import Job
from tests.conftest import ROOT
from tests.retention.conftest import REDIS_URL
from tests.retention.support import Seeder, existing

SMSQ = str(Path(sys.executable).parent / "smsq")


def smsq(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
    env.update(SMSQ_DATABASE_URL=database_url, SMSQ_BROKER_URL=REDIS_URL, PYTHONPATH=str(ROOT))
    return subprocess.run([SMSQ, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_purge_command_counts_deletes_and_exports(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    seed = Seeder(make_session_factory(engine), datetime.fromtimestamp(database_time(engine), UTC))
    for _ in range(3):
        seed.job("old", timedelta(days=10))
    seed.job("young", timedelta(hours=2))
    seed.job("open", timedelta(days=10), "queued")

    dry = smsq(["purge", "--older-than", "7d", "--dry-run", "--json"], sqlite_url)
    assert dry.returncode == 0, dry.stderr
    assert {k: json.loads(dry.stdout)[k] for k in ("jobs", "recipients", "dry_run")} == {
        "jobs": 3,
        "recipients": 6,
        "dry_run": True,
    }
    out = tmp_path / "purged.jsonl"
    done = smsq(["purge", "--older-than", "168h", "--batch", "2", "--export", str(out), "--json"], sqlite_url)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["jobs"], report["batches"], report["exported"]) == (3, 2, 3)
    assert len(out.read_text().splitlines()) == 3
    assert existing(seed.sessions, Job, seed.made["old"]) == set()
    assert existing(seed.sessions, Job, [*seed.made["young"], *seed.made["open"]]) == {
        *seed.made["young"],
        *seed.made["open"],
    }
    engine.dispose()

    bad_age = smsq(["purge", "--older-than", "a week"], sqlite_url)
    assert bad_age.returncode == 2 and bad_age.stderr.startswith("error: --older-than:")
    bad_file = smsq(["purge", "--older-than", "30d", "--export", str(tmp_path / "x.xlsx")], sqlite_url)
    assert bad_file.returncode == 2 and "--export" in bad_file.stderr
