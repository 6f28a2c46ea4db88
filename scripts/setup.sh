#!/usr/bin/env bash
# Set up everything domainvit needs on a Debian machine: system packages, a virtual
# environment in .venv, and the package with all its extras (editable).
# Idempotent: each step is skipped when already done, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: libusb for open3d (lidar I/O); mricron-data for the real brain scans and
# atlases (Colin27, AAL) the medical sample benchmarks are built from; python3-spectral for
# the real AVIRIS band set and laboratory spectra the hyperspectral benchmark is built from;
# chromium, the browser the dashboard's end-to-end tests drive through Playwright (which
# then downloads no browser of its own).
APT_PACKAGES=(libusb-1.0-0 mricron-data python3-spectral chromium)
PYTHON=${PYTHON:-python3}
VENV=.venv

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  # apt's own output (one line per unpacked package) goes to a log, shown if it fails
  apt_log="${TMPDIR:-/tmp}/domainvit-setup-apt.log"
  echo "setup: installing system packages: ${missing[*]} (log: $apt_log)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! { $SUDO apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
           "${missing[@]}"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    echo "setup: installing system packages failed (log above: $apt_log)" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Reinstall when the packaging files change; otherwise nothing to do.
stamp="$VENV/.domainvit-$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing domainvit and its extras into $VENV (a few minutes the first time)"
  # -qq: errors only. The editable install uses setuptools' import finder for the mapped
  # folders (domainvit/_layout.py), which setuptools reports at length on every install.
  "$VENV/bin/python" -m pip install -qq --upgrade pip setuptools wheel
  "$VENV/bin/python" -m pip install -qq -e ".[all]"
  rm -f "$VENV"/.domainvit-*
  touch "$stamp"
fi
