"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose services must run exactly the commands of minewatch.stack (which `minewatch up`
runs, and which tests/deploy/test_stack.py runs against real servers), with a healthcheck and a
volume each, mounting files that exist and environment files that minewatch.security writes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

from minewatch.security import write_deploy_secrets
from minewatch.stack import STORAGE_JOB, healthchecks, service_commands

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
TLS = yaml.safe_load((ROOT / "docker-compose.tls.yml").read_text())
SERVICES = COMPOSE["services"]
APP = {"ingest-0", "ingest-1", "api", "simulator"}


def test_the_services_of_a_deployment() -> None:
    assert set(SERVICES) == {"mosquitto", "influxdb", "storage", "prometheus", "grafana"} | APP
    assert re.fullmatch(r"influxdb:1\.\d+", SERVICES["influxdb"]["image"])  # the 1.x API the code speaks
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto:2.")


def test_app_services_run_the_commands_of_minewatch_up() -> None:
    want = service_commands(partitions=2, data_dir="/data")
    for name in APP | {"storage"}:
        assert SERVICES[name]["command"] == (STORAGE_JOB if name == "storage" else want[name]), name
        assert SERVICES[name]["image"].startswith("minewatch:") and "entrypoint" not in SERVICES[name]
    assert "ENTRYPOINT [\"minewatch\"]" in (ROOT / "Dockerfile").read_text()


def test_each_service_has_a_healthcheck_and_a_volume() -> None:
    checks = healthchecks()
    for name, svc in SERVICES.items():
        if svc.get("restart") == "no":  # the storage job runs once and exits
            assert svc["healthcheck"] == {"disable": True}
            continue
        test = svc["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        if name in APP:
            assert test[1:] == checks[name.split("-")[0]], name
        assert svc.get("volumes"), name
    assert TLS["services"]["api"]["healthcheck"]["test"][1:] == healthchecks(tls=True)["api"]
    assert set(TLS["services"]) <= set(SERVICES)


def test_app_services_wait_for_the_broker_and_storage() -> None:
    for name in APP - {"simulator"}:
        deps = SERVICES[name]["depends_on"]
        assert deps["mosquitto"]["condition"] == "service_healthy"
        assert deps["storage"]["condition"] == "service_completed_successfully"
    assert SERVICES["simulator"]["profiles"] == ["simulator"]  # never beside real robots by default


def test_mounted_files_exist_and_env_files_are_the_ones_written(tmp_path: Path) -> None:
    for name, svc in {**SERVICES, **TLS["services"]}.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./") and not src.startswith("./deploy/secrets"):
                assert (ROOT / src).exists(), (name, src)
    written = write_deploy_secrets(tmp_path / "secrets")
    for name, svc in SERVICES.items():
        if "env_file" in svc:
            assert svc["env_file"].startswith("deploy/secrets/"), name
            assert (tmp_path / "secrets" / Path(svc["env_file"]).name) in written.values(), name
    env = dict(ln.split("=", 1) for ln in (tmp_path / "secrets" / "ingest.env").read_text().splitlines())
    assert env["MINEWATCH_MQTT_URL"].startswith("mqtt://ingest:") and env["MINEWATCH_MQTT_URL"].endswith("@mosquitto:1884")
    assert env["MINEWATCH_INFLUX_URL"] == "http://influxdb:8086" and env["MINEWATCH_INFLUX_USER"] == "ingest"
    # The broker container finds what deploy/mosquitto.conf names where compose mounts it.
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text() + (ROOT / "deploy" / "mosquitto-tls.conf").read_text()
    mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["mosquitto"]["volumes"]}
    for path in re.findall(r"^(?:password_file|acl_file|include_dir|persistence_location) (\S+)", conf, re.M):
        mount = next((m for m in mounts if path.rstrip("/").startswith(m)), None)
        assert mount is not None, path
        if mounts[mount] == "./deploy/secrets":
            assert (tmp_path / "secrets" / Path(path).relative_to(mount)).exists() or "/tls/" in path, path
    # Robots and integrators reach the public listeners; the service listeners stay inside.
    published = {p.split(":")[-1] for p in SERVICES["mosquitto"]["ports"]}
    assert published == {"1883", "8883"}, published


def test_the_image_installs_every_package(tmp_path: Path) -> None:
    """Do what the Dockerfile's build stage does, from only the files it copies: a wheel that
    holds every package of the distribution and the API's static files."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M)
    src = tmp_path / "src"
    src.mkdir()
    for line in copies:
        for item in line.split():
            path = ROOT / item
            assert path.exists(), item
            dest = src / item
            if path.is_dir():
                subprocess.run(["cp", "-r", str(path), str(dest)], check=True)
            else:
                dest.write_bytes(path.read_bytes())
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {p.rstrip("*") for p in packages}
    assert copied <= {Path(c.split()[0]).name for c in copies}, "a package of pyproject.toml is not copied into the image"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "wheels"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheels").glob("minewatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for pkg in copied:
        assert f"{pkg}/__init__.py" in names, pkg
    assert any(n.startswith("minewatch-") and n.endswith("entry_points.txt") for n in names)
