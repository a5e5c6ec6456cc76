#!/usr/bin/env bash
# Installs, idempotently, everything the test suite needs besides the Rust toolchain:
#   - Debian packages (only what is missing; `apt-get update` at most once): curl, mosquitto (benchmark
#     reference peer) and mosquitto-clients (mosquitto_pub/sub, the broker tests' peers), chromium (headless browser test of the web UI), nats-server (the uplink's
#     JetStream peer; Debian's 2.9.10), victoria-metrics (the historian benchmark's peer and
#     `millwright central`'s), postgresql-15 (central's event store; the test runs its own cluster with initdb),
#   - a Python venv with the peer tools (pymodbus, influxdb-client, pysparkplug, paho-mqtt 1.6 — pysparkplug
#     needs paho-mqtt < 2; 1.6 speaks MQTT 3.1.1 and 5.0; playwright, which drives the Debian chromium
#     above in the login-page test — its bundled driver only, never `playwright install`: no browser is
#     downloaded) at $MW_VENV (default ~/.cache/millwright/venv).
# Safe to run repeatedly; it skips what is present.
set -euo pipefail

MW_VENV="${MW_VENV:-$HOME/.cache/millwright/venv}"
APT_PACKAGES=(python3-venv curl mosquitto mosquitto-clients chromium nats-server victoria-metrics postgresql-15)
PY_PACKAGES=("pymodbus>=3.10,<4" "influxdb-client>=1.40,<2" "pysparkplug>=0.6,<0.7" "paho-mqtt>=1.6,<2" "playwright>=1.50,<2")

need=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
# python3-venv is only needed when the interpreter cannot create venvs by itself
if [ ${#need[@]} -gt 0 ] && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  filtered=(); for p in "${need[@]}"; do [ "$p" = python3-venv ] || filtered+=("$p"); done; need=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: missing Debian packages (${need[*]}); install them as root" >&2
  fi
fi

if [ ! -x "$MW_VENV/bin/python" ]; then
  echo "setup: creating Python venv at $MW_VENV"
  python3 -m venv "$MW_VENV"
fi
if ! "$MW_VENV/bin/python" - "${PY_PACKAGES[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    r = Requirement(spec)
    if not r.specifier.contains(version(r.name), prereleases=True):
        sys.exit(1)
PY
then
  echo "setup: installing Python packages: ${PY_PACKAGES[*]}"
  "$MW_VENV/bin/pip" install -q --upgrade pip packaging >/dev/null
  "$MW_VENV/bin/pip" install -q "${PY_PACKAGES[@]}"
fi
echo "setup: ok (python: $MW_VENV/bin/python, pymodbus $("$MW_VENV/bin/python" -c 'import pymodbus; print(pymodbus.__version__)'))"
