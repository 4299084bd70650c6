#!/usr/bin/env bash
# Installs the system packages tfvgs needs when running as root on Debian/Ubuntu: espeak-ng (speaks the captions)
# and python3-venv (when this Python cannot create virtual envs). Otherwise prints the exact command and fails, so
# nothing later breaks in a confusing way.
set -euo pipefail
PYTHON=${PYTHON:-python3}
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
"$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "tfvgs needs: ${missing[*]}. Install with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
