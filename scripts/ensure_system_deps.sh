#!/usr/bin/env bash
# Installs the system packages tfvgs needs (espeak-ng speaks the captions) when running as root; otherwise prints
# the exact command to run and fails, so nothing later breaks in a confusing way.
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "tfvgs needs: ${missing[*]}. Install it with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
