#!/usr/bin/env bash
# A real S3-protocol server for the S3 tests: moto in server mode (PyPI's `moto[server]`), in a
# virtual environment in the git-ignored .tools/moto. Each test starts its own server on a free
# port with `.tools/moto/bin/moto_server -H 127.0.0.1 -p PORT` (no state shared between tests).
#   scripts/s3-server.sh install   (idempotent)
#   scripts/s3-server.sh path      (prints the server binary)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.tools/moto"
server="$venv/bin/moto_server"
version="5.1.22"

case "${1:-install}" in
install)
    if [ -x "$server" ] && "$venv/bin/python" -c "import moto, flask" 2>/dev/null; then exit 0; fi
    command -v python3 >/dev/null || { echo "python3 is missing: install Debian's python3" >&2; exit 1; }
    echo "installing moto[server] $version into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$version" >&2
    ;;
path)
    echo "$server"
    ;;
*)
    echo "usage: scripts/s3-server.sh install|path" >&2
    exit 2
    ;;
esac
