from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driftsafe.engine import Engine, get_engine
from driftsafe.errors import EngineError
from driftsafe.settings import Settings


def test_embedded_version(engine: Engine, tmp_path: Path) -> None:
    result = engine.run(["version"], cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("Terraform v1.15.")
    assert result.env["TF_CLI_CONFIG_FILE"].endswith("terraform.rc")
    assert Path(result.env["TF_CLI_CONFIG_FILE"]).is_file()
    assert all(line.t >= result.started_at for line in result.lines)


def test_stdout_and_stderr_are_separate(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('resource "terraform_data" "x" {\n  input = \n}\n')
    result = engine.run(["validate", "-no-color"], cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "Error" in result.stderr
    assert "Error" not in result.stdout


def test_apply_terraform_data(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('resource "terraform_data" "x" {\n  input = "a"\n}\n')
    assert engine.run(["init", "-no-color"], cwd=tmp_path, timeout=120).returncode == 0
    applied = engine.run(["apply", "-auto-approve", "-no-color"], cwd=tmp_path, timeout=120)
    assert applied.returncode == 0, applied.stderr
    again = engine.run(["apply", "-auto-approve", "-no-color"], cwd=tmp_path, timeout=120)
    assert "No changes." in again.stdout


def _fake_terraform(tmp_path: Path, body: str = "pass") -> Path:
    record = tmp_path / "record.json"
    script = tmp_path / "fake-terraform"
    script.write_text(
        "#!" + sys.executable + "\n"
        "import json, os, sys, time\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ), 'cwd': os.getcwd()}}, "
        f"open({str(record)!r}, 'w'))\n"
        "print('fake out'); print('fake err', file=sys.stderr)\n"
        "sys.stdout.flush()\n"
        f"{body}\n"
        "sys.exit(3)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_external_engine_gets_argv_env_and_cwd(settings: Settings, tmp_path: Path) -> None:
    script = _fake_terraform(tmp_path)
    engine = get_engine(settings, str(script))
    work = tmp_path / "work"
    work.mkdir()
    result = engine.run(["plan", "-lock-timeout=5s"], cwd=work, env={"TF_VAR_x": "s3cret"})
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["argv"] == ["plan", "-lock-timeout=5s"]
    assert record["cwd"] == str(work)
    assert record["env"]["TF_VAR_x"] == "s3cret"
    assert Path(record["env"]["TF_CLI_CONFIG_FILE"]).is_file()
    assert result.returncode == 3
    assert result.stdout == "fake out\n" and result.stderr == "fake err\n"
    # the transcript never carries the secret
    assert result.env["TF_VAR_x"] == "<redacted>"


def test_external_engine_on_path(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    script = _fake_terraform(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tofu").symlink_to(script)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    engine = get_engine(settings, "tofu")
    assert engine.run(["version"], cwd=tmp_path).returncode == 3


def test_missing_engine_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(EngineError, match="not found on PATH"):
        get_engine(settings, "no-such-terraform-binary")
    with pytest.raises(EngineError, match="not an executable"):
        get_engine(settings, "/nonexistent/terraform")


def test_timeout_interrupts(settings: Settings, tmp_path: Path) -> None:
    engine = get_engine(settings, str(_fake_terraform(tmp_path, "time.sleep(30)")))
    t0 = time.monotonic()
    result = engine.run(["apply"], cwd=tmp_path, timeout=0.5)
    assert result.timed_out
    assert time.monotonic() - t0 < 15


def test_sigkill_and_sigstop(settings: Settings, tmp_path: Path) -> None:
    engine = get_engine(settings, str(_fake_terraform(tmp_path, "time.sleep(30)")))
    proc = engine.start(["apply"], cwd=tmp_path)
    try:
        assert proc.wait_for_output("fake out", timeout=10)
        proc.send_signal(signal.SIGSTOP)
        # The kernel stops the process asynchronously: poll briefly for state T.
        deadline = time.monotonic() + 10
        state = ""
        while time.monotonic() < deadline:
            state = Path(f"/proc/{proc.pid}/stat").read_text().split()[2]
            if state == "T":
                break
            time.sleep(0.02)
        assert state == "T"
        proc.send_signal(signal.SIGCONT)
    finally:
        proc.kill()  # never leave a stopped child behind, even when an assertion fails
    result = proc.wait(timeout=10)
    assert result.signal == signal.SIGKILL


def test_tf_cli_passthrough(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("driftsafe")
    out = subprocess.run([str(exe), "tf", "version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.startswith("Terraform v1.15.")
    assert "embedded" in out.stdout
    bad = subprocess.run(
        [str(exe), "tf", "no-such-subcommand"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1


def test_launcher_is_the_same_whichever_python_name_runs(tmp_path: Path) -> None:
    """`python` and `python3` of one venv must write the same launcher (lock-file checksum)."""
    home = tmp_path / "home"
    outs = []
    for name in ("python", "python3"):
        exe = Path(sys.prefix) / "bin" / name
        if not exe.exists():
            pytest.skip(f"{exe} missing")
        subprocess.run(
            [
                str(exe),
                "-c",
                "from pathlib import Path; "
                "from driftsafe.engine.cliconfig import ensure_cli_config; "
                f"ensure_cli_config(Path({str(home)!r}))",
            ],
            check=True,
            timeout=60,
        )
        outs.append(b"".join(p.read_bytes() for p in sorted(home.rglob("terraform-provider-*"))))
    assert outs[0] == outs[1]
