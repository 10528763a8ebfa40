#!/usr/bin/env bash
# Builds the Debian package target/debian/fathometer_<version>-1_<arch>.deb: the release
# binary, the manual pages and completions it generates itself (`fathometer manual`), and
# /etc/fathometer/fathometer.toml, which is config.example.toml with the state under
# /var/lib/fathometer. Needs cargo-deb (`cargo install cargo-deb --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets"
target/release/fathometer manual --out "$assets" >/dev/null
gzip -9n "$assets"/man/*
sed -e 's|^state_dir = "./state"$|state_dir = "/var/lib/fathometer"|' \
    -e 's|^maildir = "./state/Maildir"$|maildir = "/var/lib/fathometer/Maildir"|' \
    config.example.toml >"$assets/fathometer.toml"
# The example changed shape if these did not apply: fail rather than ship ./state.
grep -qx 'state_dir = "/var/lib/fathometer"' "$assets/fathometer.toml"
grep -qx 'maildir = "/var/lib/fathometer/Maildir"' "$assets/fathometer.toml"
# Stripped: the package ships no debug symbols (panics still name their source line
# in a debug build, not here).
cargo deb --no-build --locked --strip "$@"
