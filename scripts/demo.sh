#!/usr/bin/env bash
# pyfetchmail end-to-end demo on a fresh Debian 12 machine:
#   sudo bash scripts/demo.sh          (add --mda to deliver with procmail)
# Installs what is needed (scripts/setup.sh), starts a private Dovecot with
# five sample messages, fetches them with pyfetchmail over POP3 + verified
# STLS, delivers them through Postfix (user pfmtest) or procmail, and shows
# the result. Exits non-zero if the mail did not arrive.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

bash scripts/setup.sh
echo
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m testbed.demo "$@"
