#!/usr/bin/env bash
# System packages the course uses when it can: bubblewrap (the grader's sandbox per submission)
# and Debian's Prometheus (week 10's real server).
# Best effort: without root, apt-get or the network, it says so and the course falls back
# (the grader grades "not isolated"; Prometheus plots from a direct scrape; the tests that need
# either skip with the reason).
set -uo pipefail

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's bubblewrap for the grader's sandbox"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null 2>&1; } \
      || echo "note: could not install bubblewrap; submissions are graded not isolated"
  else
    echo "note: bubblewrap is not installed and this is not a root Debian shell; submissions are graded not isolated"
  fi
fi

if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: prometheus is not installed and this is not a root Debian shell; week 10 falls back to a direct scrape"
  exit 0
fi
echo "installing Debian's prometheus (--no-install-recommends) for week 10"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || echo "note: could not install prometheus; week 10 falls back to a direct scrape"
fi
# Debian's package may start a system-wide server on :9090 (we just installed it, so it is
# ours to stop); the course runs its own Prometheus, on free ports, when it needs one.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
exit 0
