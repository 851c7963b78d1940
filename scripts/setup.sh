#!/usr/bin/env bash
# Prepare a Debian 12 (bookworm) machine for pyfetchmail's tests, benchmarks
# and demo. Run as root from anywhere; idempotent and non-interactive.
#
#  1. apt: fetchmail (the reference), Dovecot POP3/IMAP/LMTP, procmail,
#     Postfix, openssl, GNU time for bench/, man-db and groff for the man-page
#     test (only when something is missing).
#  2. Make sure no system-wide Dovecot runs (tests start private ones).
#  3. Postfix: loopback-only local delivery into ~/Maildir/, started.
#  4. Unix user "pfmtest" for tests that deliver through Postfix.
#  5. pip install -e '.[test]' (the package and its test tools).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

say() { printf '==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh must run as root (try: sudo bash scripts/setup.sh)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
packages=(fetchmail dovecot-imapd dovecot-pop3d dovecot-lmtpd procmail postfix openssl
          ca-certificates time man-db groff-base)

# --- 1. packages ----------------------------------------------------------------
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    # Postfix asks how it should work; "Local only" with this host's name.
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    echo "postfix postfix/mailname string $(hostname)" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
else
    say "system packages already installed"
fi

# --- 2. no system-wide Dovecot ------------------------------------------------------
# Packages may start one where an init system exists; tests use private
# instances on their own ports, and the system one is not needed.
if [ -r /run/dovecot/master.pid ] && kill -0 "$(cat /run/dovecot/master.pid)" 2>/dev/null; then
    say "stopping the system-wide dovecot"
    doveadm stop 2>/dev/null || kill "$(cat /run/dovecot/master.pid)" || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
fi

# --- 3. Postfix: loopback only, local delivery to ~/Maildir/ -----------------------
say "configuring postfix (loopback only)"
before="$(postconf -n | md5sum)"
postconf -e \
    "inet_interfaces = loopback-only" \
    "inet_protocols = ipv4" \
    "mydestination = localhost, localhost.localdomain, \$myhostname" \
    "mynetworks = 127.0.0.0/8" \
    "home_mailbox = Maildir/" \
    "mailbox_command =" \
    "smtputf8_enable = no" \
    "relayhost =" \
    "default_transport = error:outside mail is not delivered on this test machine" \
    "maillog_file = /var/log/postfix.log"
[ -f /etc/aliases ] || echo "postmaster: root" >/etc/aliases
newaliases

# --- 4. the test user ---------------------------------------------------------------
if ! id pfmtest >/dev/null 2>&1; then
    say "creating user pfmtest"
    useradd --create-home --shell /usr/sbin/nologin pfmtest
fi
pfm_home="$(getent passwd pfmtest | cut -d: -f6)"
install -d -o pfmtest -g pfmtest -m 0700 "$pfm_home" "$pfm_home/Maildir" \
    "$pfm_home/Maildir/cur" "$pfm_home/Maildir/new" "$pfm_home/Maildir/tmp"

# inet_interfaces/inet_protocols take effect only on a full restart.
if postfix status >/dev/null 2>&1; then
    if [ "$before" != "$(postconf -n | md5sum)" ]; then
        say "restarting postfix"
        postfix stop >/dev/null 2>&1 || true
        postfix start >/dev/null 2>&1
    else
        say "postfix already running"
    fi
else
    say "starting postfix"
    postfix start >/dev/null 2>&1 || { postfix check; postfix start; }
fi
# Wait (bounded) until smtpd greets on 127.0.0.1:25.
python3 - <<'PY'
import socket, sys, time
deadline = time.monotonic() + 15
while True:
    try:
        with socket.create_connection(("127.0.0.1", 25), timeout=3) as s:
            s.settimeout(3)
            if s.recv(512).startswith(b"220"):
                s.sendall(b"QUIT\r\n")
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("postfix does not answer on 127.0.0.1:25; see /var/log/postfix.log")
    time.sleep(0.2)
PY
postfix status

# --- 5. Python package and test tools ----------------------------------------------
say "pip install -e '.[test]'"
pip_args=(install -q --disable-pip-version-check -e ".[test]")
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q python3-pip python3-venv </dev/null
fi
# Build in place when the build backend is already there (faster, no download).
if python3 -c 'import setuptools, wheel, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 64)' \
        2>/dev/null; then
    pip_args+=(--no-build-isolation)
fi
if ! python3 -m pip "${pip_args[@]}" 2>/tmp/pfm-pip.err; then
    if grep -q externally-managed-environment /tmp/pfm-pip.err; then
        # Debian's own python3 (PEP 668): this is a throw-away test machine.
        python3 -m pip "${pip_args[@]}" --break-system-packages
    else
        cat /tmp/pfm-pip.err >&2
        exit 1
    fi
fi
say "setup done"
